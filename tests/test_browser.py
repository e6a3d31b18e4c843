"""A real browser (Debian's chromium, headless, driven by playwright) uses an example, runs a tab and sees results.

Never downloads a browser: without /usr/bin/chromium the test is skipped, or fails when $CI is set.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a browser
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path("/tmp/app_screenshot.png")
SWEEP_SCREENSHOT = Path("/tmp/app_sweep_screenshot.png")


def chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    reason = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def opened_page(url: str, tmp_path: Path) -> Iterator:
    """A page of headless chromium (a fresh profile under tmp_path) at the app's url."""
    from playwright.sync_api import sync_playwright

    browser = chromium()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(browser),
            headless=True,
            args=ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = context.new_page()
            page.goto(url)
            yield page
        finally:
            context.close()


def test_face_tab_runs_an_example_and_the_backbone_selector_updates_the_status(app_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with opened_page(app_url, tmp_path) as page:
        expect(page.locator("#status")).to_contain_text("embedded world", timeout=60_000)
        expect(page.locator("#status")).to_contain_text("of 8 places taken")  # the line, as the page opens

        page.locator('#face-examples [data-testid="dataset-cell-1-0"]').click()
        expect(page.locator("#face-reference img[src*='face_ginger']")).to_be_visible()  # the example is loaded
        samples = page.locator("#face-samples input[type=number]")
        samples.fill("2")
        samples.press("Enter")

        page.locator("#face-run").click()
        # previews of x0_hat fill the gallery while the run goes; the final images' captions carry the NFE
        expect(page.locator("#face-gallery")).to_contain_text("NFE", timeout=180_000)
        expect(page.locator("#face-gallery img")).to_have_count(6)
        for plot in ("#face-time-plot", "#face-energy-plot"):  # matplotlib figures arrive as <img>
            drawn = page.locator(f"{plot} img")
            expect(drawn).to_be_visible()
            assert drawn.evaluate("img => img.naturalWidth") > 100
        expect(page.locator("#face-metrics")).to_contain_text("figd+dsg")
        expect(page.locator("#status")).to_contain_text("loaded")

        page.screenshot(path=str(tmp_path / "app.png"), full_page=True)

        page.locator("#backbone input").click()
        page.get_by_role("option", name="Stable Diffusion", exact=True).click()  # the model's folder is missing: no family yet
        expect(page.locator("#status")).to_contain_text("Stable Diffusion")
        expect(page.locator("#status")).to_contain_text("loads on its first run")
    shutil.copyfile(tmp_path / "app.png", SCREENSHOT)
    assert (tmp_path / "app.png").stat().st_size > 10_000


def test_solvers_tab_shows_its_benchmark_plot(app_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    import app

    figure = app.benchmark_figures("solvers")[0]
    with opened_page(app_url, tmp_path) as page:
        page.get_by_role("tab", name="Solvers").click()
        page.get_by_text("Benchmark plots: python -m guidance.bench solvers").click()
        plot = page.locator(f"#solvers-benchmark-{figure.stem} img")
        expect(plot).to_be_visible(timeout=30_000)
        assert plot.evaluate("img => img.naturalWidth") > 500


def test_classes_tab_runs_a_sweep_and_draws_its_grid_and_plots(app_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from guidance.playground.tasks import SWEEP_DEFAULTS, SWEEP_SETTINGS

    with opened_page(app_url, tmp_path) as page:
        page.get_by_role("tab", name="Classes").click()
        settings = page.locator("#classes-method-settings")
        settings.get_by_text("Method settings").click()  # GFCG's fused variant and its one call exclude each other
        fused, one_call = settings.get_by_label(re.compile("Fused with")), settings.get_by_label(re.compile("One batched call"))
        expect(one_call).to_be_checked()  # the classes preset's
        fused.check()
        expect(one_call).not_to_be_checked()
        one_call.check()
        expect(fused).not_to_be_checked()
        steps = page.locator("#classes-steps input[type=number]")
        steps.fill("4")
        steps.press("Enter")
        page.locator("#classes-sweep").get_by_text("Sweep: one setting, 3 to 8 values").click()
        values = page.locator("#classes-sweep-values textarea, #classes-sweep-values input").first
        expect(values).to_have_value(SWEEP_DEFAULTS["gfcg_max_scale"])
        page.locator("#classes-sweep-setting input").click()  # picking another setting puts its default values in
        page.get_by_role("option", name=SWEEP_SETTINGS["cfg_scale"]).click()
        expect(values).to_have_value(SWEEP_DEFAULTS["cfg_scale"])  # a new value: the pick's event has landed
        values.fill("1, 1.5, 2, 2.5")
        page.locator("#classes-sweep-run").click()
        grid = page.locator("#classes-sweep-grid img")
        expect(grid).to_be_visible(timeout=180_000)
        assert grid.evaluate("img => img.naturalWidth") > 4 * 96  # a label column and four value columns
        for plot in ("#classes-sweep-metric", "#classes-sweep-seconds"):
            drawn = page.locator(f"{plot} img")
            expect(drawn).to_be_visible()
            assert drawn.evaluate("img => img.naturalWidth") > 100
        page.locator("#classes-sweep").scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "sweep.png"), full_page=True)
    shutil.copyfile(tmp_path / "sweep.png", SWEEP_SCREENSHOT)
    assert (tmp_path / "sweep.png").stat().st_size > 10_000

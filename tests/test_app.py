"""The app through its API (gradio_client) on the embedded world: every tab, defaults, bad input, stopping."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import gradio as gr
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

import app
from guidance.tasks import SPECS
from app_fixtures import app_url, trained_for_real, world_path  # noqa: F401  (fixtures)

METRICS = {"face": "id_distance", "style": "style_distance", "control": "edge_f1", "classes": "class_probability", "solvers": "class_probability"}
TABS = {spec.name: spec for spec in SPECS}


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


def fast(task: str, steps: int = 4) -> dict:
    """Few steps, so a call takes a second or two."""
    return {"nfe" if task == "solvers" else "steps": steps}


def check_outputs(outputs: tuple, task: str, steps: int, samples: int = 1) -> dict:
    """Images, per-step timings and metrics of every default method; returns the JSON summary."""
    images, summary, time_plot, energy_plot, table, _used, files, status = outputs
    labels = list(TABS[task].selected)
    assert list(summary) == labels
    assert len(images) == samples * len(labels)
    for item in images:
        assert Image.open(item["image"]).size == (64, 64)
        assert " s · " in item["caption"] and "NFE" in item["caption"]
    for stats in summary.values():
        assert stats["steps"] == len(stats["ms_per_step"]) == len(stats["energy_per_step"]) == steps
        assert all(ms > 0 for ms in stats["ms_per_step"]) and stats["seconds"] > 0
        assert math.isclose(1000 * stats["seconds"], sum(stats["ms_per_step"]), rel_tol=1e-6)
        assert stats["nfe"] == sum(stats["nfe_per_step"]) and steps <= stats["nfe"] <= 3 * steps
        assert stats["metric_name"] == METRICS[task] and len(stats["metric"]) == samples
        assert all(math.isfinite(v) for v in stats["metric"] + stats["energy_per_step"])
        if stats["metric_name"] in ("class_probability", "edge_f1"):
            assert all(0 <= v <= 1 for v in stats["metric"])
        assert not stats["cancelled"]
    for plot in (time_plot, energy_plot):
        assert plot["type"] == "matplotlib" and plot["plot"].startswith("data:image/png;base64,")
    assert [row[0] for row in table["data"]] == labels
    names = sorted(Path(f).name for f in files)
    assert names == ["images.zip", "results.json"]
    assert json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text()).keys() == summary.keys()
    assert "embedded world" in status and "device" in status
    return summary


def test_every_tab_is_an_endpoint_whose_inputs_all_have_defaults(client: Client) -> None:
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/face", "/style", "/control", "/classes", "/solvers", "/stop"} <= set(endpoints)
    for task in TABS:
        parameters = endpoints[f"/{task}"]["parameters"]
        assert parameters[0]["parameter_name"] == "backbone"
        assert all(p["parameter_has_default"] for p in parameters), task


@pytest.mark.parametrize("task", list(TABS))
def test_each_tab_runs_its_methods_side_by_side(client: Client, task: str) -> None:
    check_outputs(client.predict(**fast(task), api_name=f"/{task}"), task, steps=4)


def test_face_tab_shows_the_face_crop_and_runs_several_samples(client: Client) -> None:
    outputs = client.predict(steps=3, samples=2, seed=5, api_name="/face")
    check_outputs(outputs, "face", steps=3, samples=2)
    assert [item["caption"] for item in outputs[5]] == ["face crop"]


def test_control_tab_takes_a_ready_map_with_a_face_on_top(client: Client) -> None:
    ready_map = handle_file(str(app.EXAMPLES / "control_canny.png"))
    outputs = client.predict(control_image=ready_map, annotator="none", extra="face", steps=4, api_name="/control")
    check_outputs(outputs, "control", steps=4)
    assert sorted(item["caption"] for item in outputs[5]) == ["control map", "face crop"]


def test_solvers_tab_spends_one_model_call_per_step_and_sample(client: Client) -> None:
    summary = client.predict(nfe=6, guidance="plain", api_name="/solvers")[1]
    assert {label: stats["nfe"] for label, stats in summary.items()} == dict.fromkeys(TABS["solvers"].selected, 6.0)


@pytest.mark.parametrize("task", ["face", "solvers"])  # the uploaded-image default, and the cheapest tab
def test_a_call_without_arguments_runs_the_first_example(client: Client, task: str) -> None:
    tab = TABS[task]
    check_outputs(client.predict(api_name=f"/{task}"), task, steps=tab.steps)


def _write(path: Path, image: Image.Image | bytes) -> Path:
    path.write_bytes(image) if isinstance(image, bytes) else image.save(path)
    return path


def test_an_image_without_a_face_is_refused_with_a_message(client: Client, world_path: Path, tmp_path: Path) -> None:
    if not trained_for_real(world_path, "detector"):
        pytest.skip("the smoke world's face detector is untrained: it finds a face in anything")
    grey = _write(tmp_path / "grey.png", Image.new("RGB", (96, 96), (128, 128, 128)))
    with pytest.raises(AppError, match="face"):
        client.predict(reference=handle_file(str(grey)), **fast("face"), api_name="/face")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.png", b"these are not the pixels you are looking for\n", "could not read the image"),
        ("huge.png", Image.new("RGB", (8000, 6000), (20, 90, 160)), "megapixels"),
        ("tiny.png", Image.new("RGB", (8, 8)), "at least"),
    ],
)
def test_unusable_uploads_are_refused_with_a_message(client: Client, tmp_path: Path, name: str, content, message: str) -> None:
    upload = handle_file(str(_write(tmp_path / name, content)))
    with pytest.raises(AppError, match=message):
        client.predict(reference=upload, **fast("style"), api_name="/style")


def test_unavailable_weights_are_named_not_traced(client: Client) -> None:
    with pytest.raises(AppError, match="not available"):
        client.predict(backbone=app.SD, **fast("classes"), api_name="/classes")


def test_bad_settings_are_explained(client: Client) -> None:
    with pytest.raises(AppError, match="DDIM with eta > 0"):
        client.predict(methods=["figd+dsg"], eta=0, **fast("face"), api_name="/face")
    with pytest.raises(AppError, match="window"):
        client.predict(window_start=0.8, window_end=0.2, **fast("face"), api_name="/face")


SLIDER_BREAKERS = [  # values an API client can send that no slider would
    ("/solvers", {"samples": 1000}, r"samples must lie in \[1, 16\]"),
    ("/classes", {"steps": 0}, r"steps must lie in \[1, 1000\], got 0"),
    ("/classes", {"steps": -5}, r"steps must lie in \[1, 1000\], got -5"),
    ("/classes", {"steps": 100000}, r"steps must lie in \[1, 1000\], got 100000"),
    ("/classes", {"seed": 2**70}, "seed must lie in"),
    ("/classes", {"condition": "red hair"}, "unknown class 'red hair'; this world knows: .*ginger hair"),
    ("/face", {"condition": "red hair", "steps": 2}, "red hair"),
    ("/classes", {"cfg_scale": 1e9}, r"cfg_scale must lie in \[0, 20\]"),
    ("/face", {"scale": 1e6}, r"scale must lie in \[0, 100\]"),
    ("/classes", {"gfcg_max_scale": 1e6}, r"gfcg_max_scale must lie in \[0, 10\]"),
    ("/face", {"eta": 5}, r"eta must lie in \[0, 1\], got 5"),
]


@pytest.mark.parametrize(("api_name", "values", "message"), SLIDER_BREAKERS, ids=[f"{a}-{next(iter(v))}" for a, v, _ in SLIDER_BREAKERS])
def test_values_no_slider_sends_get_a_readable_error(client: Client, api_name: str, values: dict, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(AppError, match=message):
        client.predict(**values, api_name=api_name)
    assert time.monotonic() - started < 60  # refused before sampling, not after


def test_stop_ends_the_run_between_steps_with_partial_results_and_a_warning(client: Client, monkeypatch) -> None:
    warnings: list[str] = []
    warn = gr.Warning
    monkeypatch.setattr(gr, "Warning", lambda message, **kw: (warnings.append(message), warn(message, **kw)))
    job = client.submit(methods=["figd", "freedom"], steps=500, api_name="/face")
    deadline = time.monotonic() + 60
    while not job.status().progress_data and time.monotonic() < deadline:
        time.sleep(0.05)
    client.predict(api_name="/stop")
    images, summary = job.result(timeout=60)[:2]
    assert list(summary) == ["figd"] and summary["figd"]["cancelled"]
    assert 0 < summary["figd"]["steps"] < 500
    assert len(images) == 1 and Image.open(images[0]["image"]).size == (64, 64)
    assert warnings and "Stopped" in warnings[0] and "partial results" in warnings[0]
    after = client.predict(methods=["figd"], steps=2, api_name="/face")[1]
    assert not after["figd"]["cancelled"] and after["figd"]["steps"] == 2


def test_benchmark_figures_prefer_the_full_run(tmp_path: Path) -> None:
    for name in ("solvers-embedded-quick-nfe.png", "gfcg-embedded-quick-methods.png"):
        (tmp_path / name).write_bytes(b"png")
    assert [p.name for p in app.benchmark_figures("solvers", tmp_path)] == ["solvers-embedded-quick-nfe.png"]
    (tmp_path / "solvers-embedded-full-nfe.png").write_bytes(b"png")
    assert [p.name for p in app.benchmark_figures("solvers", tmp_path)] == ["solvers-embedded-full-nfe.png"]
    assert app.benchmark_figures("dsg", tmp_path) == []


def test_classes_and_solvers_tabs_show_the_committed_benchmark_plots(client: Client) -> None:
    shown = {c["props"].get("elem_id") for c in client.config["components"]}
    for tab in ("classes", "solvers"):
        figures = app.benchmark_figures(TABS[tab].benchmark)
        assert figures, f"no committed plots for the {tab} tab under docs/figures"
        assert {f"{tab}-benchmark-{p.stem}" for p in figures} <= shown

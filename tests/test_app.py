"""The app through its API (gradio_client) on the embedded world: every tab, defaults, bad input, stopping."""

from __future__ import annotations

import json
import math
import shlex
import time
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import pytest
from helpers import trained_for_real
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

import app
from guidance.playground.export import TABLE_COLUMNS
from guidance.playground.space import MAX_SECONDS, gpu_seconds
from guidance.playground.tasks import SPECS
from guidance.playground.views import HEADER_HEIGHT, LABEL_WIDTH
from guidance.sweep import cli as sweep_cli

METRICS = {
    "face": "id_distance",
    "style": "style_distance",
    "control": "edge_f1",
    "classes": "class_probability",
    "solvers": "class_probability",
}
TABS = {spec.name: spec for spec in SPECS}
EXTRA_METRICS = {"style": ("pattern_agreement",)}  # the embedded world judges a style's pattern


@pytest.fixture(scope="module")
def client(app_url: str) -> Client:
    return Client(app_url, verbose=False)


def fast(task: str, steps: int = 4) -> dict:
    """Few steps, so a call takes a second or two."""
    return {"nfe" if task == "solvers" else "steps": steps}


def check_outputs(outputs: tuple, task: str, steps: int, samples: int = 1) -> dict:
    """Images, per-step timings and metrics of every default method; returns the JSON summary."""
    images, summary, time_plot, energy_plot, table, _used, files, status, trajectory = outputs
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
        metric, step = stats["spread"]["metric"], stats["spread"]["ms_per_step"]
        assert metric["values"] == stats["metric"] and metric["n"] == samples and (metric["ci95"] is None) == (samples == 1)
        assert step["n"] == steps - 1 and step["iqr"][0] <= step["median"] <= step["iqr"][1]  # the warm-up step left out
    for plot in (time_plot, energy_plot):
        assert plot["type"] == "matplotlib" and plot["plot"].startswith("data:image/png;base64,")
    assert [row[0] for row in table["data"]] == labels
    metric_column = f"{TABS[task].metric_label} mean [95% CI]"
    extra = [f"{name.replace('_', ' ')} mean [95% CI]" for name in EXTRA_METRICS.get(task, ())]  # beside the metric
    columns = [[metric_column, *extra] if c == "metric mean [95% CI]" else [c] for c in TABLE_COLUMNS]
    assert table["headers"] == [c for group in columns for c in group]
    for stats in summary.values():
        assert sorted(stats["extra_metrics"]) == sorted(EXTRA_METRICS.get(task, ()))
        assert all(len(values) == samples and set(values) <= {0.0, 1.0} for values in stats["extra_metrics"].values())
    names = sorted(Path(f).name for f in files)
    assert names == ["images.zip", "results.json"]
    assert json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text()).keys() == summary.keys()
    assert "embedded world" in status and "device" in status
    rows, columns = len(labels), min(steps, app.SNAPSHOTS) + 1  # x0_hat at the snapshot steps, then the final image
    assert Image.open(trajectory).size == (LABEL_WIDTH + 80 * columns, HEADER_HEIGHT + 80 * rows)
    return summary


def test_every_tab_is_an_endpoint_whose_inputs_all_have_defaults(client: Client) -> None:
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/face", "/style", "/control", "/classes", "/solvers", "/stop"} <= set(endpoints)
    for task in TABS:
        for name in (task, f"{task}_sweep"):
            parameters = endpoints[f"/{name}"]["parameters"]
            assert parameters[0]["parameter_name"] == "backbone"
            assert all(p["parameter_has_default"] for p in parameters), name


@pytest.mark.slow
@pytest.mark.parametrize("task", list(TABS))
def test_each_tab_runs_its_methods_side_by_side(client: Client, task: str) -> None:
    check_outputs(client.predict(**fast(task), api_name=f"/{task}"), task, steps=4)


@pytest.mark.slow
def test_the_strength_slider_multiplies_each_methods_own_preset_and_the_table_shows_it(client: Client) -> None:
    """One slider moves every method, each from its own guiding value: its scale, or its dsg_rate under DSG."""
    own = TABS["style"].guiding
    methods = ["freedom", "figd", "figd+dsg"]
    outputs = client.predict(methods=methods, strength=2.0, steps=2, api_name="/style")
    summary, table = outputs[1], outputs[4]
    assert summary["freedom"]["options"]["scale"] == pytest.approx(2 * own["freedom"])
    assert summary["figd"]["options"]["scale"] == pytest.approx(2 * own["figd"])
    assert summary["figd+dsg"]["options"]["dsg_rate"] == pytest.approx(2 * own["figd+dsg"])
    shown = dict(zip([row[0] for row in table["data"]], [row[1] for row in table["data"]]))
    assert shown == {
        "freedom": f"scale {2 * own['freedom']:.3g}",
        "figd": f"scale {2 * own['figd']:.3g}",
        "figd+dsg": f"dsg_rate {2 * own['figd+dsg']:.3g}",
    }
    assert all(shown[item["caption"].split(" · ")[0]] in item["caption"] for item in outputs[0])


@pytest.mark.slow
def test_face_tab_shows_the_face_crop_and_runs_several_samples(client: Client) -> None:
    outputs = client.predict(steps=3, samples=2, seed=5, api_name="/face")
    check_outputs(outputs, "face", steps=3, samples=2)
    assert [item["caption"] for item in outputs[5]] == ["face crop"]


@pytest.mark.slow
def test_control_tab_takes_a_ready_map_with_a_face_on_top(client: Client) -> None:
    ready_map = handle_file(str(app.EXAMPLES / "control_canny.png"))
    outputs = client.predict(control_image=ready_map, annotator="none", extra="face", steps=4, api_name="/control")
    check_outputs(outputs, "control", steps=4)
    assert sorted(item["caption"] for item in outputs[5]) == ["control map", "face crop"]


@pytest.mark.slow
def test_solvers_tab_spends_one_model_call_per_step_and_sample(client: Client) -> None:
    summary = client.predict(nfe=6, guidance="plain", api_name="/solvers")[1]
    assert {label: stats["nfe"] for label, stats in summary.items()} == dict.fromkeys(TABS["solvers"].selected, 6.0)
    assert {stats["options"]["grid"] for stats in summary.values()} == {"quadratic"}  # the tab's default grid, for every solver


def test_solvers_tab_draws_the_paths_on_the_mixture_through_the_api(client: Client) -> None:
    plot = client.predict(["ddim", "dpmsolver++"], "edm", 6, api_name="/solvers_paths")
    assert plot["type"] == "matplotlib" and plot["plot"]  # a PNG of the paths


@pytest.mark.slow
def test_solvers_tab_gives_every_solver_the_chosen_grid(client: Client) -> None:
    summary = client.predict(nfe=4, guidance="plain", grid="logsnr", api_name="/solvers")[1]
    assert {stats["options"]["grid"] for stats in summary.values()} == {"logsnr"}


@pytest.mark.slow
@pytest.mark.parametrize("task, method", [("face", "figd"), ("classes", "atg+gfcg")])
def test_the_tiny_decoder_box_reaches_the_guidance_path(client: Client, task: str, method: str) -> None:
    on, off = (
        json.dumps(client.predict(**fast(task, 2), tiny_decoder=tiny, api_name=f"/{task}")[1][method]["options"])
        for tiny in (True, False)
    )
    assert '"tiny_decoder": true' in on and "tiny_decoder" not in off  # FreeDoM/FIGD's option, or GFCG's (its predictor)


@pytest.mark.slow
def test_the_one_call_box_and_the_interval_slider_reach_gfcg(client: Client) -> None:
    on, off = (
        client.predict(**fast("classes", 2), methods=["cfg+gfcg"], gfcg_one_call=one, gfcg_interval=1 + one, api_name="/classes")[
            1
        ]["cfg+gfcg"]["options"]
        for one in (True, False)
    )
    assert on["predictor"]["one_call"] is True and "one_call" not in off["predictor"]
    assert on["predictor"]["interval"] == 2 and "interval" not in off["predictor"]


@pytest.mark.slow
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
    ("/classes", {"steps": 0}, r"steps must lie in \[1, 999\], got 0"),
    ("/classes", {"steps": -5}, r"steps must lie in \[1, 999\], got -5"),
    ("/classes", {"steps": 100000}, r"steps must lie in \[1, 999\], got 100000"),
    ("/classes", {"seed": 2**70}, "seed must lie in"),
    ("/classes", {"condition": "red hair"}, "unknown class 'red hair'; this world knows: .*ginger hair"),
    ("/face", {"condition": "red hair", "steps": 2}, "red hair"),
    ("/classes", {"cfg_scale": 1e9}, r"cfg_scale must lie in \[0, 20\]"),
    ("/face", {"strength": 1e6}, r"strength must lie in \[0, 20\]"),
    ("/classes", {"gfcg_max_scale": 1e6}, r"gfcg_max_scale must lie in \[0, 10\]"),
    ("/classes", {"gfcg_interval": 2.5}, "gfcg_interval must be a whole number, got 2.5"),
    ("/classes", {"gfcg_interval": 0}, r"gfcg_interval must lie in \[1, 50\], got 0"),
    ("/face", {"repeats": 1.5}, "repeats must be a whole number, got 1.5"),
    ("/face", {"eta": 5}, r"eta must lie in \[0, 1\], got 5"),
]


@pytest.mark.parametrize(
    ("api_name", "values", "message"), SLIDER_BREAKERS, ids=[f"{a}-{next(iter(v))}" for a, v, _ in SLIDER_BREAKERS]
)
def test_values_no_slider_sends_get_a_readable_error(client: Client, api_name: str, values: dict, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(AppError, match=message):
        client.predict(**values, api_name=api_name)
    assert time.monotonic() - started < 60  # refused before sampling, not after


def wait_for_steps(job, timeout: float = 60) -> str:
    """Until the job reports sampling steps (not loading); returns the progress description."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = job.status().progress_data
        if progress and progress[0].unit == "steps" and progress[0].index:
            return progress[0].desc or ""
        time.sleep(0.05)
    raise AssertionError(f"no sampling step reported within {timeout} s")


@pytest.mark.slow
def test_stop_ends_the_run_between_steps_with_partial_results_and_a_warning(client: Client, monkeypatch) -> None:
    warnings: list[str] = []
    warn = gr.Warning
    monkeypatch.setattr(gr, "Warning", lambda message, **kw: (warnings.append(message), warn(message, **kw)))
    job = client.submit(methods=["figd", "freedom"], steps=500, api_name="/face")
    wait_for_steps(job)
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


@pytest.mark.slow
def test_a_run_streams_x0_hat_previews_before_its_final_result(client: Client) -> None:
    job = client.submit(methods=["freedom", "figd"], steps=6, api_name="/face")
    final = job.result(timeout=120)
    outputs = job.outputs()
    assert len(outputs) >= 2 and outputs[-1][1] == final[1]
    first = outputs[0]
    assert first[0] and all("x0_hat at step" in item["caption"] for item in first[0])
    assert first[3]["type"] == "matplotlib"  # the energy plot, drawn so far
    assert all("NFE" in item["caption"] for item in final[0])


@pytest.mark.slow
def test_a_sweep_is_a_grid_with_one_column_per_value_and_downloads(client: Client) -> None:
    grid, metric, seconds, files, summary, _command = client.predict(
        steps=3, sweep_setting="gfcg_max_scale", sweep_values="0, 1, 2", api_name="/classes_sweep"
    )
    labels = list(TABS["classes"].selected)
    assert summary["values"] == [0.0, 1.0, 2.0] and summary["methods"] == labels and summary["columns"] == 3
    assert Image.open(grid).size == (LABEL_WIDTH + 3 * 96, HEADER_HEIGHT + len(labels) * 96)
    for label in labels:
        assert summary["series"][label]["values"] == [0.0, 1.0, 2.0]
        assert all(0 <= p <= 1 for p in summary["series"][label]["metric"])
    assert len(set(summary["series"]["cfg"]["metric"])) == 1  # CFG ignores w_max: sampled once, shown in each column
    for plot in (metric, seconds):
        assert plot["type"] == "matplotlib" and plot["plot"].startswith("data:image/png;base64,")
    assert sorted(Path(f).name for f in files) == ["grid.png", "metric.png", "seconds_per_image.png", "sweep.json"]
    assert json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text())["values"] == [0.0, 1.0, 2.0]


@pytest.mark.slow
def test_seeds_per_value_give_means_with_intervals_and_the_named_command_repeats_the_sweep(
    client: Client, tmp_path: Path
) -> None:
    """2 seeds per value: every cell holds 2 samples, the plot's mean and interval; the command the section names
    runs the same cells (the same seeds, one sample each) through `python -m guidance.sweep`."""
    inputs = {"steps": 3, "seed": 4, "sweep_setting": "gfcg_max_scale", "sweep_values": "0, 2, 4", "sweep_seeds": 2}
    *_, summary, command = client.predict(**inputs, api_name="/classes_sweep")
    labels = list(TABS["classes"].selected)
    for label in labels:
        series = summary["series"][label]
        assert series["samples"] == [2, 2, 2]
        assert all(low <= mean <= high for mean, (low, high) in zip(series["metric"], series["metric_ci95"]))
    assert client.predict(**inputs, api_name="/classes_sweep_command") == command
    words = shlex.split(command)
    assert words[:4] == ["python", "-m", "guidance.sweep", "classes"] and words[words.index("--seeds") + 1] == "4:6"
    assert words[words.index("--methods") + 1] == ",".join(labels) and words[words.index("--values") + 1] == "0,2,4"
    words[words.index("--out") + 1] = str(tmp_path / "sweep")
    assert sweep_cli.main(words[3:]) == 0
    again = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["summary"]
    for label in labels:
        assert again[label]["metric"] == pytest.approx(summary["series"][label]["metric"], rel=1e-6)
    face = shlex.split(client.predict(sweep_setting="scale", sweep_values="0.05, 0.1", api_name="/face_sweep_command"))
    assert Path(face[face.index("--reference") + 1]).is_file() and face[face.index("--seeds") + 1] == "0:1"


@pytest.mark.slow
def test_a_sweep_of_steps_takes_a_range_and_bad_values_are_explained(client: Client) -> None:
    summary = client.predict(methods=["ddim", "evodiff"], sweep_setting="steps", sweep_values="3:5:3", api_name="/solvers_sweep")[
        4
    ]
    assert summary["values"] == [3, 4, 5] and summary["methods"] == ["ddim", "evodiff"]
    with pytest.raises(AppError, match="3 to 8 values"):
        client.predict(sweep_setting="steps", sweep_values="3, 4", api_name="/solvers_sweep")


@pytest.mark.slow
def test_stopping_a_sweep_returns_the_finished_part(client: Client) -> None:
    job = client.submit(
        methods=["figd"], steps=300, sweep_setting="scale", sweep_values="0.02, 0.05, 0.1", api_name="/face_sweep"
    )
    assert wait_for_steps(job).startswith("method 1 of 1, value 1 of 3, step ")
    client.predict(api_name="/stop")
    summary = job.result(timeout=60)[4]
    assert summary["cancelled"] and summary["columns"] == 1
    assert summary["series"]["figd"]["cancelled"] == [True]


class RecordingSpaces:
    """Stands in for Hugging Face's `spaces` package: records each spaces.GPU(duration=...) and the handler."""

    def __init__(self) -> None:
        self.calls: list[tuple[Callable, Callable]] = []

    def GPU(self, duration):  # noqa: N802  (the package's name)
        def wrap(handler):
            self.calls.append((handler, duration))
            return handler

        return wrap


def test_on_zerogpu_every_endpoint_holds_the_gpu_for_its_steps_and_samples(world_path: Path, monkeypatch) -> None:
    spaces = RecordingSpaces()
    monkeypatch.setattr(app, "spaces", spaces)
    app.build_app(world_path, sd_model=None)
    names = [handler.__name__ for handler, _ in spaces.calls]
    assert names == ["run", "run_sweep"] * len(TABS)
    run_duration, sweep_duration = spaces.calls[0][1], spaces.calls[1][1]  # the face tab's
    methods = ["freedom", "figd", "figd+dsg"]
    assert run_duration(None, None, steps=50, samples=2, methods=methods) == gpu_seconds(50, 2, 3)
    assert run_duration(None, None, steps=10, samples=1, methods=methods) < run_duration(
        None, None, steps=20, samples=1, methods=methods
    )
    assert run_duration(None, None, steps=20, samples=1, methods=methods) < run_duration(
        None, None, steps=20, samples=2, methods=methods
    )
    assert run_duration(None, None, steps=100, samples=4, methods=methods) == MAX_SECONDS
    sweep = {"steps": 10, "samples": 1, "methods": methods, "sweep_setting": "scale"}
    assert sweep_duration(None, None, **sweep, sweep_values="0.1, 0.2, 0.3") == gpu_seconds(10, 1, 3, 3)
    assert sweep_duration(None, None, **sweep, sweep_values="0.1:x") == gpu_seconds(10, 1, 3, 8)  # the sweep explains the values
    solvers_run = spaces.calls[8][1]
    assert solvers_run(None, None, nfe=12, samples=1, methods=["ddim", "evodiff"]) == gpu_seconds(12, 1, 2)


@pytest.mark.slow
def test_a_cached_example_shows_what_run_gives_for_the_inputs_it_sets(
    client: Client, world_path: Path, tmp_path: Path, monkeypatch
) -> None:
    """Gradio's example caching (lazy here): an example row sets every input of the tab, so its cached outputs are
    the run's for those inputs; the second click reads the cache and samples nothing."""
    monkeypatch.setenv("GRADIO_CACHE_EXAMPLES", "true")
    monkeypatch.setenv("GRADIO_CACHE_MODE", "lazy")
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "cache"))
    built, runs = {}, []
    section, example = app.examples_section, app.make_example

    def record_section(spec, *args, **kwargs):
        built[spec.name] = section(spec, *args, **kwargs)
        return built[spec.name]

    def count_runs(run, names, backbone):
        inner = example(run, names, backbone)
        return lambda *row: runs.append(row) or inner(*row)

    monkeypatch.setattr(app, "examples_section", record_section)
    monkeypatch.setattr(app, "make_example", count_runs)
    app.build_app(world_path, sd_model=None)
    solvers = built["solvers"]
    assert len(solvers.inputs) > len(TABS["solvers"].example_fields)  # the hidden columns: every other input at its default
    condition, nfe = TABS["solvers"].examples[1]
    cached = solvers.load_from_cache(1)
    assert len(runs) == 1 and solvers.load_from_cache(1) and len(runs) == 1
    summary = cached[1].value if hasattr(cached[1], "value") else cached[1]
    direct = client.predict(condition=condition, nfe=nfe, api_name="/solvers")[1]
    assert list(summary) == list(direct) == list(TABS["solvers"].selected)
    for label in direct:
        assert summary[label]["nfe"] == direct[label]["nfe"] == 2 * nfe  # CFG: two model calls per solver step
        assert summary[label]["metric"] == pytest.approx(direct[label]["metric"], abs=1e-5)


def test_examples_are_cached_lazily_on_a_space_and_gradio_settings_win(monkeypatch) -> None:
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("GRADIO_CACHE_MODE", raising=False)
    assert app.ExampleCache("embedded") == app.ExampleCache("embedded", None, "lazy")  # None: GRADIO_CACHE_EXAMPLES decides
    monkeypatch.setenv("SPACE_ID", "someone/playground")
    monkeypatch.setenv("GRADIO_CACHE_MODE", "eager")
    assert app.ExampleCache("embedded") == app.ExampleCache("embedded", True, None)  # None: Gradio reads GRADIO_CACHE_MODE

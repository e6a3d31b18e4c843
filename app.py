"""The playground's web app: one tab per task, each run one call to guidance.tasks.run_task.

    python app.py [--host HOST] [--port PORT] [--world PATH] [--sd-model ID_OR_PATH] [--controlnet ID_OR_PATH] [--share]

Tabs: Face, Style, Control map, Classes, Solvers. Each tab's run is an API endpoint (/face, /style,
/control, /classes, /solvers) whose inputs all default to the tab's first example, streaming x0_hat previews
before its result; each tab's sweep is another (/face_sweep, ...); /stop stops the caller's run or sweep
between two steps. The launcher decides which weights may be loaded: the embedded world
from --world (env GUIDANCE_WORLD, default assets/world), Stable Diffusion 1.5 from --sd-model and
--controlnet (env GUIDANCE_SD_MODEL, GUIDANCE_CONTROLNET; "none" offers no SD).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: idle OpenMP threads sleep, not spin, on a busy CPU

try:  # ZeroGPU: `spaces` must be imported before torch initialises CUDA
    import spaces
except ImportError:
    spaces = None

import argparse
import io
import json
import math
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from conditions.control import ANNOTATORS
from conditions.images import MAX_FILE_BYTES, load_image, to_pil
from guidance.errors import (
    DeviceOutOfMemoryError, GuidanceError, ImageInputError, MethodConfigError, NoFaceFoundError,
    SamplingNaNError, WeightsUnavailableError,
)  # fmt: skip
from guidance.methods import Settings
from guidance.methods.figd import FISHER_WEIGHTS
from guidance.methods.gfcg import SCALE_RULES
from guidance.schedulers import SCHEDULERS
from guidance.preview import Frame, stream_task
from guidance.space import gpu_seconds, on_gpu
from guidance.tasks import (
    PRESETS, SWEEP_DEFAULTS, SWEEP_SETTINGS, SWEEP_VALUES, TASK_SWEEPS, TaskOutcome, TaskRequest, parse_values, preset, sweep,
)  # fmt: skip
from guidance.views import SWEEP_SERIES, sweep_figure, sweep_grid, sweep_summary, trajectory_strip, write_sweep_files
from guidance.world import ASSETS
from guidance.world.render import CLASS_NAMES
from guidance.worlds import World

EXAMPLES = Path(__file__).resolve().parent / "assets" / "examples"
BENCH_FIGURES = Path(__file__).resolve().parent / "docs" / "figures"  # written by `python -m guidance.bench report`
EMBEDDED, SD = "embedded", "sd15"
SD_CLASSES = ("cat", "dog", "fox", "wolf", "lion", "tiger", "owl", "eagle")
ENERGY_METHODS = ("plain", "freedom", "figd", "dps", "freedom+dsg", "figd+dsg", "dps+dsg")
CLASS_METHODS = ("plain", "cfg", "atg", "gfcg", "cfg+gfcg", "atg+gfcg")
GUIDED_BASES = ("plain", "cfg", "atg")
METRIC_LABELS = {
    "id_distance": "ID distance", "style_distance": "style distance",
    "edge_f1": "edge F1", "class_probability": "class probability",
}  # fmt: skip
SNAPSHOTS = 8  # x0_hat kept at 8 evenly spaced steps per method: the live preview's frames and the trajectory strip
TABLE_COLUMNS = ("method", "seconds", "NFE", "steps", "ms / step", "metric", "final energy", "peak MB")
ERROR_TITLES = {
    NoFaceFoundError: "No face found", ImageInputError: "Unusable image", WeightsUnavailableError: "Weights not available",
    MethodConfigError: "Invalid settings", SamplingNaNError: "Sampling diverged", DeviceOutOfMemoryError: "Out of memory",
}  # fmt: skip


@dataclass(frozen=True)
class Tab:
    """A tab: its task, the methods offered and selected, default settings and examples."""

    task: str
    title: str
    intro: str
    methods_label: str
    choices: tuple[str, ...]
    selected: tuple[str, ...]
    condition: str  # the embedded world's default class ("" is unconditional)
    examples: tuple[tuple[Any, ...], ...]
    sd_prompt: str = ""  # the default prompt on Stable Diffusion (tabs by class offer its class names)
    steps: int = 20
    eta: float = 0.0
    benchmark: str | None = None  # the guidance.bench suite whose committed plots the tab shows

    @property
    def energy(self) -> bool:
        """Whether the tab guides with an energy gradient (FreeDoM, FIGD, DPS, DSG)."""
        return self.task in ("face", "style", "control")

    @property
    def by_class(self) -> bool:
        """Whether the condition is a class scored by the evaluator (Classes, Solvers)."""
        return self.task in ("classes", "solvers")


def _example(name: str) -> str:
    return str(EXAMPLES / name)


TABS = (
    Tab(
        task="face", title="Face",
        intro="Identity guidance: the generated face should be the uploaded person (ID distance, lower is better).",
        methods_label="Methods (FreeDoM is the baseline)", choices=ENERGY_METHODS, selected=("freedom", "figd", "figd+dsg"),
        condition="", sd_prompt="a headshot photo of a person",
        examples=((_example("face_blond.png"), ""), (_example("face_ginger.png"), ""), (_example("face_black_beard.png"), "")),
        eta=0.5,  # FreeDoM's face set-up: DDIM eta 0.5
    ),
    Tab(
        task="style", title="Style",
        intro="Style guidance: match the Gram matrices of early features of the uploaded image (style distance, lower is better).",
        methods_label="Methods (FreeDoM is the baseline)", choices=ENERGY_METHODS, selected=("freedom", "figd", "figd+dsg"),
        condition="", sd_prompt="a portrait of a person, oil painting",
        examples=tuple((_example(f"style_{name}.png"), "") for name in ("stripes", "checker", "dots")),
        eta=1.0,  # DSG's official style runs: DDIM eta 1
    ),
    Tab(
        task="control", title="Control map",
        intro="Follow a control map with the ControlNet and/or the training-free edge energy (edge F1, higher is better).",
        methods_label="Methods (plain: the ControlNet alone; FreeDoM is the baseline)", choices=ENERGY_METHODS,
        selected=("plain", "freedom", "figd"), condition="", sd_prompt="a portrait of a person",
        examples=(
            (_example("control_face.png"), "canny", "none"), (_example("control_canny.png"), "none", "none"),
            (_example("control_canny.png"), "none", "face"),
        ),
        eta=1.0,
    ),
    Tab(
        task="classes", title="Classes",
        intro="Gradient-free classifier guidance (GFCG) against CFG and Autoguidance (class probability under a separate evaluator).",
        methods_label="Methods (CFG is the baseline; cfg+gfcg / atg+gfcg pick GFCG's base)", choices=CLASS_METHODS,
        selected=("cfg", "atg", "atg+gfcg"), condition="ginger hair",
        examples=(("ginger hair", 0), ("brown hair", 1), ("sunglasses", 2)),
        benchmark="gfcg",
    ),
    Tab(
        task="solvers", title="Solvers",
        intro="EVODiff against DDIM, DPM-Solver++(2M) and UniPC at the same number of steps (NFE).",
        methods_label="Solvers (DDIM is the baseline)", choices=SCHEDULERS, selected=("ddim", "dpmsolver++", "unipc", "evodiff"),
        condition="black hair", examples=(("black hair", 10), ("blue hair", 6), ("bald", 15)),
        steps=10, benchmark="solvers",
    ),
)


def weights_cached(source: str, file: str) -> bool:
    """Whether `file` of a hub id or local folder is on this machine (no network)."""
    if Path(source).exists():
        return (Path(source) / file).exists()
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(source, file), str)
    except ValueError:  # not a valid repository id
        return False


@dataclass
class Backbones:
    """The backbones the launcher allows, each loaded on its first use and then cached."""

    world: Path = ASSETS
    sd_model: str | None = None
    controlnet: str | None = None
    device: str = field(default_factory=lambda: "cuda" if torch.cuda.is_available() else "cpu")

    def __post_init__(self) -> None:
        self._loaded: dict[str, World] = {}
        self._lock = threading.Lock()

    def choices(self) -> list[tuple[str, str]]:
        options = [("Embedded world", EMBEDDED)]
        if self.sd_model:
            options.append(("Stable Diffusion 1.5" + (" + ControlNet" if self.controlnet else ""), SD))
        return options

    def default(self) -> str:
        """SD 1.5 on a GPU with its weights on disk, else the embedded world."""
        sd_ready = self.sd_model and weights_cached(self.sd_model, "unet/config.json")
        control_ready = not self.controlnet or weights_cached(self.controlnet, "config.json")
        return SD if self.device == "cuda" and sd_ready and control_ready else EMBEDDED

    def load(self, key: str) -> World:
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = self._load(key)
            return self._loaded[key]

    def _load(self, key: str) -> World:
        if key == EMBEDDED:
            from guidance.world import load_world

            return load_world(self.world, self.device)
        if key == SD and self.sd_model:
            from guidance.worlds import load_sd15_world

            return load_sd15_world(self.sd_model, self.controlnet, self.device, class_names=SD_CLASSES)
        raise MethodConfigError(f"unknown backbone {key!r}; this app offers {[value for _, value in self.choices()]}")

    def status(self, key: str) -> str:
        """One line: which backbone, from where, on which device, and whether it is loaded."""
        if key == SD:
            what = f"Stable Diffusion 1.5 (`{self.sd_model}`)" + (f" + ControlNet (`{self.controlnet}`)" if self.controlnet else "")
        else:
            what = f"embedded world (`{self.world}`)"
        world = self._loaded.get(key)
        device = world.backbone.device if world is not None else self.device
        state = "loaded" if world is not None else "loads on its first run"
        return f"**Backbone:** {what} · **device:** `{device}` · {state}"


class Stops:
    """A stop flag per session, registered while that session's run is going."""

    def __init__(self) -> None:
        self._events: dict[str | None, threading.Event] = {}
        self._lock = threading.Lock()

    @contextmanager
    def watch(self, session: str | None) -> Iterator[threading.Event]:
        event = threading.Event()
        with self._lock:
            self._events[session] = event
        try:
            yield event
        finally:
            with self._lock:
                if self._events.get(session) is event:
                    del self._events[session]

    def stop(self, session: str | None) -> bool:
        """Sets the session's flag; False when it has no run going."""
        with self._lock:
            event = self._events.get(session)
        if event is not None:
            event.set()
        return event is not None


# ----------------------------------------------------------------------------- widgets -> request


def _window(start: float, end: float, what: str) -> tuple[float, float]:
    if not 0 <= start < end <= 1:
        raise MethodConfigError(f"the {what} must satisfy 0 <= start < end <= 1, got {start:g}..{end:g}")
    return (float(start), float(end))


def settings_from(task: str, values: dict[str, Any]) -> Settings:
    """The tab's preset with the sliders' values."""
    overrides: dict[str, Any] = {"cfg_scale": float(values["cfg_scale"])}
    if "scale" in values:
        overrides |= {
            "scale": float(values["scale"]), "fisher_weight": values["fisher_weight"],
            "dsg_rate": float(values["dsg_rate"]), "dsg_interval": int(values["dsg_interval"]),
            "window": _window(values["window_start"], values["window_end"], "guidance window"),
            "repeats": int(values["repeats"]),
            "travel_window": _window(values["travel_start"], values["travel_end"], "time-travel window"),
        }  # fmt: skip
    if "gfcg_max_scale" in values:
        overrides |= {"gfcg_max_scale": float(values["gfcg_max_scale"]), "gfcg_rule": values["gfcg_rule"], "gfcg_fused": bool(values["gfcg_fused"])}
    return preset(task, **overrides)


def _image(upload: dict | None, what: str) -> Image.Image:
    """An uploaded file (gradio's file payload, not preprocessed) read by load_image, which checks it."""
    if not upload or not upload.get("path"):
        raise ImageInputError(f"upload {what}")
    return load_image(upload["path"])


def request_from(task: str, values: dict[str, Any]) -> TaskRequest:
    """A TaskRequest from a tab's raw widget values (keyed by API parameter name); the library validates names."""
    selected = list(values["methods"] or [])
    if not selected:
        raise MethodConfigError("select at least one method")
    common = {
        "task": task, "condition": values["condition"] or None, "samples": int(values["samples"]),
        "steps": int(values["nfe"] if task == "solvers" else values["steps"]), "eta": float(values["eta"]),
        "seed": int(values["seed"] or 0), "settings": settings_from(task, values),
    }  # fmt: skip
    if task == "solvers":
        return TaskRequest(methods=[values["guidance"]], schedulers=selected, **common)
    if task == "control":
        extra = None if values["extra"] == "none" else values["extra"]
        return TaskRequest(
            methods=selected, control_image=_image(values["control_image"], "an image or a control map"),
            annotator=values["annotator"], use_controlnet=bool(values["use_controlnet"]), edge_energy=bool(values["edge_energy"]),
            extra=extra, reference=_image(values["extra_reference"], f"a {extra} reference") if extra else None, **common,
        )  # fmt: skip
    if task in ("face", "style"):
        return TaskRequest(methods=selected, reference=_image(values["reference"], f"a {task} image"), **common)
    return TaskRequest(methods=selected, **common)


# ----------------------------------------------------------------------------- outcome -> outputs


def summarize(outcome: TaskOutcome) -> dict[str, dict[str, Any]]:
    """Per method: time, NFE, per-step timings and energies, final metric; what the API returns."""
    return {
        label: {
            "seconds": result.seconds, "nfe": result.nfe, "steps": len(result.steps),
            "ms_per_step": result.ms_per_step, "nfe_per_step": [step.nfe for step in result.steps],
            "energy_per_step": result.energy_per_step, "metric_name": result.metric_name, "metric": result.metric,
            "final_energy": result.final_energy, "peak_mem_mb": result.peak_mem_mb, "cancelled": result.cancelled,
            "options": result.options,
        }
        for label, result in outcome.results
    }  # fmt: skip


def _caption(label: str, stats: dict[str, Any], index: int) -> str:
    parts = [f"{label}{'' if index == 0 else f' #{index + 1}'}", f"{stats['seconds']:.2f} s", f"{stats['nfe']:g} NFE"]
    if stats["metric"] is not None:
        parts.append(f"{METRIC_LABELS.get(stats['metric_name'], stats['metric_name'])} {stats['metric'][index]:.3f}")
    return " · ".join(parts) + (" (stopped)" if stats["cancelled"] else "")


def gallery(outcome: TaskOutcome, summary: dict[str, dict[str, Any]]) -> list[tuple[Image.Image, str]]:
    """Every image, captioned with its method's seconds, NFE and metric."""
    return [
        (image, _caption(label, summary[label], index))
        for label, result in outcome.results
        for index, image in enumerate(to_pil(result.images))
    ]


def step_figure(summary: dict[str, dict[str, Any]], key: str, ylabel: str) -> Figure:
    """One line per method of a per-step series against the step number."""
    figure = Figure(figsize=(5, 3.2), layout="constrained")
    axes = figure.subplots()
    for label, stats in summary.items():
        values = [math.nan if v is None else v for v in stats[key]]
        axes.plot(range(1, len(values) + 1), values, marker=".", label=label)
    axes.set(xlabel="step", ylabel=ylabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return figure


def _mean(values: list[float] | None) -> float | None:
    return None if not values else round(sum(values) / len(values), 4)


def metrics_table(summary: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per method: totals and means over the samples."""
    rows = [
        {
            "method": label, "seconds": round(stats["seconds"], 3), "NFE": stats["nfe"], "steps": stats["steps"],
            "ms / step": _mean(stats["ms_per_step"]),
            METRIC_LABELS.get(stats["metric_name"], "metric"): _mean(stats["metric"]),
            "final energy": _mean(stats["final_energy"]), "peak MB": round(stats["peak_mem_mb"], 1),
        }
        for label, stats in summary.items()
    ]  # fmt: skip
    return pd.DataFrame(rows)


def write_downloads(root: Path, outcome: TaskOutcome, summary: dict[str, dict[str, Any]], keep_s: float = 3600) -> list[str]:
    """images.zip (one PNG per image) and results.json (the figures' data and the metrics) in a new folder.

    Folders older than `keep_s` are removed first (gradio has copied them to its own cache by then).
    """
    for old in root.iterdir():
        if time.time() - old.stat().st_mtime > keep_s:
            shutil.rmtree(old, ignore_errors=True)
    folder = root / uuid.uuid4().hex
    folder.mkdir()
    archive, results = folder / "images.zip", folder / "results.json"
    with zipfile.ZipFile(archive, "w") as zipped:
        for label, result in outcome.results:
            for index, image in enumerate(to_pil(result.images)):
                data = io.BytesIO()
                image.save(data, "PNG")
                zipped.writestr(f"{label.replace('+', '_')}_{index}.png", data.getvalue())
    results.write_text(json.dumps(summary, indent=1, default=str))
    return [str(archive), str(results)]


# ----------------------------------------------------------------------------- running


@contextmanager
def readable_errors() -> Iterator[None]:
    """The library's typed errors, and running out of memory, as gr.Error messages (no traceback)."""
    try:
        yield
    except GuidanceError as error:
        title = next((t for cls, t in ERROR_TITLES.items() if isinstance(error, cls)), "Error")
        raise gr.Error(str(error), title=title, print_exception=False) from error
    except (torch.OutOfMemoryError, MemoryError) as error:
        raise gr.Error("out of memory: try fewer samples, fewer methods or a smaller backbone", title="Out of memory", print_exception=False) from error


def _warn_if_stopped(outcome: TaskOutcome, requested: int) -> None:
    stopped = [(label, result) for label, result in outcome.results if result.cancelled]
    if stopped:
        label, result = stopped[0]
        shown = ", ".join(label for label, _ in outcome.results)
        gr.Warning(f"Stopped during {label} after {len(result.steps)} of {requested} steps; partial results shown ({shown}).")


def make_run(tab: Tab, backbones: Backbones, stops: Stops, downloads: Path) -> Callable[..., Iterator[tuple]]:
    """The tab's endpoint: widget values in; previews (x0_hat, energies) while it runs, then (gallery, summary, plots,
    table, artefacts, files, status, trajectory)."""

    def run(request: gr.Request, progress: gr.Progress = gr.Progress(), **values: Any) -> Iterator[tuple]:
        backbone = values.pop("backbone")
        with readable_errors(), stops.watch(request.session_hash) as stop:
            progress(0, desc=f"loading the {backbone} backbone")
            world = backbones.load(backbone)
            task_request = replace(request_from(tab.task, values), snapshots=SNAPSHOTS)
            tick = lambda frame: progress((frame.done, frame.total), desc=frame.label, unit="steps")  # noqa: E731
            for item in stream_task(world, task_request, should_stop=stop.is_set, progress=tick):
                if isinstance(item, Frame):
                    yield preview(item, task_request.steps)
                else:
                    outcome = item
        _warn_if_stopped(outcome, task_request.steps)
        summary = summarize(outcome)
        yield (
            gallery(outcome, summary),
            summary,
            step_figure(summary, "ms_per_step", "ms per step"),
            step_figure(summary, "energy_per_step", "energy of the x0 estimate"),
            metrics_table(summary),
            [(image, name) for name, image in outcome.artefacts.items()],
            write_downloads(downloads, outcome, summary),
            backbones.status(backbone),
            trajectory_strip(outcome.results),
        )

    return on_gpu(run, lambda *_, **values: run_seconds(tab, values), spaces)


def preview(frame: Frame, steps: int) -> tuple:
    """A live frame: the gallery shows each method's latest x0_hat and the energy plot grows; the rest waits."""
    return (frame.gallery(steps), gr.skip(), gr.skip(), frame.energy_figure(), *[gr.skip()] * 5)


def run_seconds(tab: Tab, values: dict[str, Any], sweep_values: int = 1) -> int:
    """ZeroGPU's hold for a run (or a sweep of `sweep_values` values) of the tab's widget values."""
    steps = int(values.get("nfe" if tab.task == "solvers" else "steps", tab.steps))
    runs = len(values.get("methods") or tab.selected)
    return gpu_seconds(steps, int(values.get("samples", 1)), runs, sweep_values)


# ----------------------------------------------------------------------------- sweeps


def make_sweep(tab: Tab, backbones: Backbones, stops: Stops, downloads: Path) -> Callable[..., tuple]:
    """The tab's sweep endpoint: its widget values plus a setting and 3-8 values in; grid, plots, files, JSON out."""

    def run_sweep(request: gr.Request, progress: gr.Progress = gr.Progress(), **values: Any) -> tuple:
        backbone, setting, text = values.pop("backbone"), values.pop("sweep_setting"), values.pop("sweep_values")
        with readable_errors(), stops.watch(request.session_hash) as stop:
            progress(0, desc=f"loading the {backbone} backbone")
            world = backbones.load(backbone)
            outcome = sweep(
                world, request_from(tab.task, values), setting, parse_values(setting, text),
                progress=lambda where: progress((where.step, where.steps), desc=str(where), unit="steps"), should_stop=stop.is_set,
            )  # fmt: skip
        if outcome.cancelled:
            gr.Warning(f"Stopped after {len(outcome.columns) - 1} of {len(outcome.values)} values; finished cells shown.")
        figures = {key: sweep_figure(outcome, key) for key in SWEEP_SERIES}
        files = write_sweep_files(downloads / uuid.uuid4().hex, outcome, figures)
        return sweep_grid(outcome), figures["metric"], figures["seconds_per_image"], files, sweep_summary(outcome)

    def seconds(*_, **values: Any) -> int:
        try:
            count = len(parse_values(values["sweep_setting"], values["sweep_values"]))
        except GuidanceError:  # the sweep itself reports bad values
            count = SWEEP_VALUES[1]
        return run_seconds(tab, values, count)

    return on_gpu(run_sweep, seconds, spaces)


def sweep_section(tab: Tab, backbone: gr.Dropdown, inputs: dict[str, gr.components.Component], run_sweep: Callable) -> None:
    """Every selected method at 3-8 values of one setting, from the same seed: a grid and two plots."""
    settings = TASK_SWEEPS[tab.task]
    with gr.Accordion("Sweep: one setting, 3 to 8 values (Stop above ends it)", open=False, elem_id=f"{tab.task}-sweep"):
        with gr.Row():
            setting = gr.Dropdown([(SWEEP_SETTINGS[s], s) for s in settings], value=settings[0], label="Setting", elem_id=f"{tab.task}-sweep-setting")
            values = gr.Textbox(SWEEP_DEFAULTS[settings[0]], label="Values", info="a list (0.02, 0.05, 0.1) or a range start:stop:count",
                                elem_id=f"{tab.task}-sweep-values")  # fmt: skip
            start = gr.Button("Sweep", variant="primary", elem_id=f"{tab.task}-sweep-run")
        grid = gr.Image(label="Grid: methods x values", type="pil", format="png", interactive=False, elem_id=f"{tab.task}-sweep-grid")
        with gr.Row():
            metric = gr.Plot(label="Metric against the value", format="png", elem_id=f"{tab.task}-sweep-metric")
            seconds = gr.Plot(label="Seconds per image against the value", format="png", elem_id=f"{tab.task}-sweep-seconds")
        files = gr.File(label="Download: grid and figures as PNG, data as JSON", file_count="multiple", elem_id=f"{tab.task}-sweep-downloads")
        with gr.Accordion("Sweep data (JSON)", open=False):
            summary = gr.JSON(label="Per method", elem_id=f"{tab.task}-sweep-json")
    setting.change(lambda key: SWEEP_DEFAULTS[key], setting, values, api_visibility="private", concurrency_limit=None)
    start.click(
        run_sweep, inputs_kwargs={"backbone": backbone, **inputs, "sweep_setting": setting, "sweep_values": values},
        outputs=[grid, metric, seconds, files, summary], api_name=f"{tab.task}_sweep", concurrency_id="sampling",
        show_progress_on=grid, preprocess=False,
    )  # fmt: skip


# ----------------------------------------------------------------------------- layout


def condition_widget(tab: Tab, backbone: str) -> dict[str, Any]:
    """Choices and value of the prompt / class widget for a backbone."""
    if backbone == EMBEDDED:
        names = list(CLASS_NAMES)
        choices = names if tab.by_class else [("(unconditional)", ""), *names]
        return {"choices": choices, "value": tab.condition}
    if tab.by_class:
        return {"choices": list(SD_CLASSES), "value": SD_CLASSES[0]}
    return {"choices": [tab.sd_prompt], "value": tab.sd_prompt}


def common_inputs(tab: Tab, backbone: str) -> dict[str, gr.components.Component]:
    """Prompt or class, methods, samples, seed, steps (NFE), CFG scale, eta."""
    settings: Settings = PRESETS[tab.task]
    inputs = {
        "condition": gr.Dropdown(
            label="Class" if tab.by_class else "Prompt or class", allow_custom_value=True,
            info="a class of the embedded world, or free text for Stable Diffusion", **condition_widget(tab, backbone),
        ),
        "methods": gr.Dropdown(list(tab.choices), value=list(tab.selected), multiselect=True, label=tab.methods_label),
    }  # fmt: skip
    if tab.task == "solvers":
        inputs["guidance"] = gr.Radio(list(GUIDED_BASES), value="cfg", label="Guidance used with every solver")
    with gr.Row():
        inputs["samples"] = gr.Slider(1, 4, value=1, step=1, label="Samples", elem_id=f"{tab.task}-samples")
        inputs["seed"] = gr.Number(0, precision=0, label="Seed")
        steps = "nfe" if tab.task == "solvers" else "steps"
        inputs[steps] = gr.Slider(
            4, 100, value=tab.steps, step=1, label="NFE (solver steps)" if steps == "nfe" else "Steps", elem_id=f"{tab.task}-steps"
        )
    with gr.Row():
        inputs["cfg_scale"] = gr.Slider(1, 10, value=settings.cfg_scale, step=0.1, label="CFG / guidance scale", info="1: off")
        inputs["eta"] = gr.Slider(0, 1, value=tab.eta, step=0.05, label="DDIM eta", info="DSG needs eta > 0")
    return inputs


def gradient_inputs(settings: Settings) -> dict[str, gr.components.Component]:
    """FreeDoM / FIGD / DPS / DSG sliders, preset from the papers (guidance.tasks.PRESETS)."""
    return {
        "scale": gr.Slider(0, 2, value=settings.scale, step=0.01, label="Guidance strength k", info="normalised step size"),
        "fisher_weight": gr.Radio(list(FISHER_WEIGHTS), value=settings.fisher_weight, label="FIGD Fisher weight w_t"),
        "dsg_rate": gr.Slider(0, 1, value=settings.dsg_rate, step=0.01, label="DSG guidance rate"),
        "dsg_interval": gr.Slider(1, 10, value=settings.dsg_interval, step=1, label="DSG interval (guide every n steps)"),
        "window_start": gr.Slider(0, 1, value=settings.window[0], step=0.05, label="Guidance window start"),
        "window_end": gr.Slider(0, 1, value=settings.window[1], step=0.05, label="Guidance window end"),
        "repeats": gr.Slider(1, 5, value=settings.repeats, step=1, label="Time-travel repeats"),
        "travel_start": gr.Slider(0, 1, value=settings.travel_window[0], step=0.05, label="Time-travel window start"),
        "travel_end": gr.Slider(0, 1, value=settings.travel_window[1], step=0.05, label="Time-travel window end"),
    }  # fmt: skip


def gfcg_inputs(settings: Settings) -> dict[str, gr.components.Component]:
    """GFCG's options; its base (CFG or Autoguidance) is picked with the method (cfg+gfcg, atg+gfcg)."""
    return {
        "gfcg_max_scale": gr.Slider(0, 5, value=settings.gfcg_max_scale, step=0.1, label="GFCG maximum scale w_max"),
        "gfcg_rule": gr.Radio(list(SCALE_RULES), value=settings.gfcg_rule, label="GFCG scale rule"),
        "gfcg_fused": gr.Checkbox(settings.gfcg_fused, label="Fused with Autoguidance (atg+gfcg at ATG's cost)"),
    }


def task_inputs(tab: Tab) -> dict[str, gr.components.Component]:
    """The tab's uploads and map options; their defaults are the first example."""
    first = tab.examples[0]
    if tab.task in ("face", "style"):
        return {"reference": gr.Image(first[0], type="filepath", label=f"{tab.title} image", height=200, elem_id=f"{tab.task}-reference")}
    if tab.task != "control":
        return {}
    inputs = {
        "control_image": gr.Image(first[0], type="filepath", label="Image or control map", height=200),
        "annotator": gr.Dropdown([*ANNOTATORS, "none"], value=first[1], label="Annotator", info="none: the upload is already a map"),
    }
    with gr.Row():
        inputs["use_controlnet"] = gr.Checkbox(True, label="ControlNet")
        inputs["edge_energy"] = gr.Checkbox(True, label="Edge energy (training-free)")
    with gr.Accordion("Face or style on top (optional)", open=False):
        inputs["extra"] = gr.Radio(["none", "face", "style"], value=first[2], label="Also guide by")
        inputs["extra_reference"] = gr.Image(_example("face_blond.png"), type="filepath", label="Face or style image", height=160)
    return inputs


def example_inputs(tab: Tab, inputs: dict[str, gr.components.Component]) -> list[gr.components.Component]:
    if tab.task in ("face", "style"):
        return [inputs["reference"], inputs["condition"]]
    if tab.task == "control":
        return [inputs["control_image"], inputs["annotator"], inputs["extra"]]
    return [inputs["condition"], inputs["seed" if tab.task == "classes" else "nfe"]]


def benchmark_figures(suite: str, folder: Path = BENCH_FIGURES) -> list[Path]:
    """The suite's committed plots on the embedded world: the full run's where there is one, else the quick run's."""
    for mode in ("full", "quick"):
        if found := sorted(folder.glob(f"{suite}-embedded-{mode}-*.png")):
            return found
    return []


def benchmark_panel(tab: Tab) -> None:
    """The tab's benchmark plots from docs/benchmarks.md, in a closed accordion (nothing when none are committed)."""
    figures = benchmark_figures(tab.benchmark) if tab.benchmark else []
    if figures:
        with gr.Accordion(f"Benchmark plots: python -m guidance.bench {tab.benchmark} (docs/benchmarks.md)", open=False):
            for path in figures:
                gr.Image(str(path), show_label=False, interactive=False, elem_id=f"{tab.task}-benchmark-{path.stem}")


def result_outputs(tab: Tab) -> list[gr.components.Component]:
    """Gallery, summary JSON, time and energy plots, metrics table, what was used, downloads."""
    images = gr.Gallery(label="Results", columns=4, height="auto", format="png", object_fit="contain", elem_id=f"{tab.task}-gallery")
    with gr.Row():
        time_plot = gr.Plot(label="Time per step", format="png", elem_id=f"{tab.task}-time-plot")
        energy_plot = gr.Plot(label="Energy per step", format="png", elem_id=f"{tab.task}-energy-plot")
    table = gr.Dataframe(headers=list(TABLE_COLUMNS), label="Metrics", interactive=False, elem_id=f"{tab.task}-metrics")
    with gr.Row():
        used = gr.Gallery(
            label="Face crop / control map used", columns=3, height="auto", format="png", object_fit="contain", allow_preview=False,
            elem_id=f"{tab.task}-artefacts",
        )
        files = gr.File(label="Download: images and figures as JSON", file_count="multiple", elem_id=f"{tab.task}-downloads")
    with gr.Accordion("Timings and metrics (JSON)", open=False):
        summary = gr.JSON(label="Per method", elem_id=f"{tab.task}-json")
    return [images, summary, time_plot, energy_plot, table, used, files]


def trajectory_output(tab: Tab) -> gr.Image:
    """After a run: per method, x0_hat at evenly spaced steps, then the final image."""
    return gr.Image(label=f"Trajectory: x0_hat at {SNAPSHOTS} steps per method", type="pil", format="png", interactive=False,
                    elem_id=f"{tab.task}-trajectory")  # fmt: skip


def build_tab(tab: Tab, backbone: gr.Dropdown, status: gr.Markdown, run: Callable, run_sweep: Callable) -> tuple[gr.Dropdown, gr.Button]:
    """One tab; returns its condition widget (the backbone selector updates it) and its Stop button."""
    with gr.Tab(tab.title, id=tab.task):
        gr.Markdown(tab.intro)
        with gr.Row():
            with gr.Column(scale=2):
                inputs = task_inputs(tab)
                inputs |= common_inputs(tab, backbone.value)
                if tab.energy or tab.task == "classes":
                    with gr.Accordion("Method settings", open=False):
                        inputs |= gradient_inputs(PRESETS[tab.task]) if tab.energy else gfcg_inputs(PRESETS[tab.task])
                with gr.Row():
                    start = gr.Button("Run", variant="primary", elem_id=f"{tab.task}-run")
                    halt = gr.Button("Stop", variant="stop", elem_id=f"{tab.task}-stop")
                gr.Examples([list(e) for e in tab.examples], example_inputs(tab, inputs), label="Examples", elem_id=f"{tab.task}-examples")
            with gr.Column(scale=3):
                outputs = result_outputs(tab)
                trajectory = trajectory_output(tab)
                benchmark_panel(tab)
        sweep_section(tab, backbone, inputs, run_sweep)
        start.click(
            run, inputs_kwargs={"backbone": backbone, **inputs}, outputs=[*outputs, status, trajectory],
            api_name=tab.task, concurrency_id="sampling", show_progress_on=outputs[0],
            preprocess=False,  # uploads reach load_image unopened
        )  # fmt: skip
    return inputs["condition"], halt


def build_app(world: str | Path = ASSETS, sd_model: str | None = None, controlnet: str | None = None) -> gr.Blocks:
    """The whole UI; every run goes through guidance.tasks.run_task. Queued, one run at a time."""
    backbones = Backbones(Path(world), sd_model, controlnet)
    stops, downloads = Stops(), Path(tempfile.mkdtemp(prefix="guidance-app-"))

    def stop(request: gr.Request) -> None:
        """Stops the caller's run before its next step."""
        if not stops.stop(request.session_hash):
            gr.Info("Nothing is running.")

    def switch(key: str) -> list:
        """The status line and every tab's prompt / class widget for the chosen backbone."""
        return [backbones.status(key), *(gr.Dropdown(**condition_widget(tab, key)) for tab in TABS)]

    with gr.Blocks(title="Training-free guidance playground", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# Training-free guided diffusion\nFreeDoM, FIGD, DSG, GFCG and EVODiff side by side, from the same seed.")
        with gr.Row():
            default = backbones.default()
            backbone = gr.Dropdown(backbones.choices(), value=default, label="Backbone", scale=1, elem_id="backbone")
            status = gr.Markdown(backbones.status(default), label="Status", elem_id="status")
        conditions, halts = zip(*(
            build_tab(tab, backbone, status, make_run(tab, backbones, stops, downloads), make_sweep(tab, backbones, stops, downloads))
            for tab in TABS
        ))  # fmt: skip
        gr.on([halt.click for halt in halts], stop, api_name="stop", concurrency_limit=None)
        backbone.change(switch, backbone, [status, *conditions], api_visibility="private", concurrency_limit=None)
    return demo.queue(default_concurrency_limit=1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from guidance.sd15 import SD15

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--world", type=Path, default=Path(os.environ.get("GUIDANCE_WORLD", ASSETS)), help="embedded-world folder")
    parser.add_argument("--sd-model", default=os.environ.get("GUIDANCE_SD_MODEL", SD15), help="SD 1.5 hub id or folder; 'none' offers none")
    parser.add_argument("--controlnet", default=os.environ.get("GUIDANCE_CONTROLNET"), help="ControlNet hub id or folder for SD 1.5")
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    args = parser.parse_args(argv)
    args.sd_model = None if str(args.sd_model).lower() in ("", "none") else args.sd_model
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    demo = build_app(args.world, args.sd_model, args.controlnet)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, max_file_size=MAX_FILE_BYTES)


if __name__ == "__main__":
    main()

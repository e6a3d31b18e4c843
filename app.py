"""The playground's web app: one tab per task, each run one call to guidance.tasks.run_task.

    python app.py [--host HOST] [--port PORT] [--world PATH] [--sd-model ID_OR_PATH] [--controlnet ID_OR_PATH] [--share]

Tabs: Face, Style, Control map, Classes, Solvers. Each tab's run is an API endpoint (/face, /style,
/control, /classes, /solvers) whose inputs all default to the tab's first example; /stop stops the
caller's run between two steps. The launcher decides which weights may be loaded: the embedded world
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
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gradio as gr
import torch
from PIL import Image

from conditions.control import ANNOTATORS
from conditions.images import MAX_FILE_BYTES, load_image, to_pil
from guidance.errors import (
    DeviceOutOfMemoryError, GuidanceError, ImageInputError, MethodConfigError, NoFaceFoundError,
    SamplingNaNError, WeightsUnavailableError,
)  # fmt: skip
from guidance.export import TABLE_COLUMNS, metrics_table, step_figure, summarize, write_downloads
from guidance.methods import LIMITS, Settings
from guidance.methods.figd import FISHER_WEIGHTS
from guidance.methods.gfcg import SCALE_RULES
from guidance.stops import Stops
from guidance.tasks import EXAMPLES, EXTRAS, GUIDED_BASES, SPECS, TaskOutcome, TaskRequest, TaskSpec, preset, run_task
from guidance.worlds.embedded import ASSETS
from guidance.worlds.registry import EMBEDDED, SD, WorldRegistry

BENCH_FIGURES = Path(__file__).resolve().parent / "docs" / "figures"  # written by `python -m guidance.bench report`
ERROR_TITLES = {
    NoFaceFoundError: "No face found", ImageInputError: "Unusable image", WeightsUnavailableError: "Weights not available",
    MethodConfigError: "Invalid settings", SamplingNaNError: "Sampling diverged", DeviceOutOfMemoryError: "Out of memory",
}  # fmt: skip


# ----------------------------------------------------------------------------- widgets -> request


def settings_from(task: str, values: dict[str, Any]) -> Settings:
    """The task's preset with the sliders' values; Settings checks every one."""
    overrides: dict[str, Any] = {"cfg_scale": float(values["cfg_scale"])}
    if "scale" in values:
        overrides |= {
            "scale": float(values["scale"]), "fisher_weight": values["fisher_weight"],
            "dsg_rate": float(values["dsg_rate"]), "dsg_interval": int(values["dsg_interval"]),
            "window": (float(values["window_start"]), float(values["window_end"])), "repeats": int(values["repeats"]),
            "travel_window": (float(values["travel_start"]), float(values["travel_end"])),
        }  # fmt: skip
    if "gfcg_max_scale" in values:
        overrides |= {"gfcg_max_scale": float(values["gfcg_max_scale"]), "gfcg_rule": values["gfcg_rule"], "gfcg_fused": bool(values["gfcg_fused"])}
    return preset(task, **overrides)


def _image(upload: dict | None, what: str) -> Image.Image:
    """An uploaded file (gradio's file payload, not preprocessed) read by load_image, which checks it."""
    if not upload or not upload.get("path"):
        raise ImageInputError(f"upload {what}")
    return load_image(upload["path"])


def request_from(spec: TaskSpec, values: dict[str, Any]) -> TaskRequest:
    """A TaskRequest from a tab's raw widget values (keyed by API parameter name); the library checks them."""
    selected = list(values["methods"] or [])
    by_scheduler = spec.runs_over == "schedulers"
    request: dict[str, Any] = {
        "task": spec.name, "condition": values["condition"] or None, "samples": int(values["samples"]),
        "steps": int(values["nfe" if by_scheduler else "steps"]), "eta": float(values["eta"]),
        "seed": int(values["seed"] or 0), "settings": settings_from(spec.name, values),
        "methods": [values["guidance"]] if by_scheduler else selected,
    }  # fmt: skip
    if by_scheduler:
        request["schedulers"] = selected
    if "reference" in spec.inputs:
        request["reference"] = _image(values["reference"], f"a {spec.name} image")
    if "control_map" in spec.inputs:
        extra = None if values["extra"] == "none" else values["extra"]
        request |= {
            "control_image": _image(values["control_image"], "an image or a control map"), "annotator": values["annotator"],
            "use_controlnet": bool(values["use_controlnet"]), "edge_energy": bool(values["edge_energy"]), "extra": extra,
            "reference": _image(values["extra_reference"], f"a {extra} reference") if extra else None,
        }  # fmt: skip
    return TaskRequest(**request)


# ----------------------------------------------------------------------------- outcome -> outputs


def _caption(label: str, stats: dict[str, Any], index: int, metric_label: str) -> str:
    parts = [f"{label}{'' if index == 0 else f' #{index + 1}'}", f"{stats['seconds']:.2f} s", f"{stats['nfe']:g} NFE"]
    if stats["metric"] is not None:
        parts.append(f"{metric_label} {stats['metric'][index]:.3f}")
    return " · ".join(parts) + (" (stopped)" if stats["cancelled"] else "")


def gallery(outcome: TaskOutcome, summary: dict[str, dict[str, Any]], metric_label: str) -> list[tuple[Image.Image, str]]:
    """Every image, captioned with its method's seconds, NFE and metric."""
    return [
        (image, _caption(label, summary[label], index, metric_label))
        for label, result in outcome.results
        for index, image in enumerate(to_pil(result.images))
    ]


def status(worlds: WorldRegistry, key: str) -> str:
    """One line: which backbone, from where, on which device, and whether it is loaded."""
    world = worlds.loaded(key)
    device = world.backbone.device if world is not None else worlds.device
    state = "loaded" if world is not None else "loads on its first run"
    return f"**Backbone:** {worlds.source(key)} · **device:** `{device}` · {state}"


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


def make_run(spec: TaskSpec, worlds: WorldRegistry, stops: Stops, downloads: Path) -> Callable[..., tuple]:
    """The tab's endpoint: widget values in, (gallery, summary, plots, table, artefacts, files, status) out."""

    def run(request: gr.Request, progress: gr.Progress = gr.Progress(), **values: Any) -> tuple:
        backbone = values.pop("backbone")
        with readable_errors(), stops.watch(request.session_hash) as stop:
            progress(0, desc=f"loading the {backbone} backbone")
            world = worlds.load(backbone)
            task_request = request_from(spec, values)
            tick = lambda done, total, label: progress((done, total), desc=label, unit="steps")  # noqa: E731
            outcome = run_task(world, task_request, progress=tick, should_stop=stop.is_set)
        _warn_if_stopped(outcome, task_request.steps)
        summary = summarize(outcome)
        return (
            gallery(outcome, summary, spec.metric_label),
            summary,
            step_figure(summary, "ms_per_step", "ms per step"),
            step_figure(summary, "energy_per_step", "energy of the x0 estimate"),
            metrics_table(summary, spec.metric_label),
            [(image, name) for name, image in outcome.artefacts.items()],
            write_downloads(downloads, outcome, summary),
            status(worlds, backbone),
        )

    return spaces.GPU(run) if spaces is not None else run


# ----------------------------------------------------------------------------- layout


def slider(name: str, value: float, step: float, label: str, **kwargs: Any) -> gr.Slider:
    """A slider over the range the library offers for `name` (guidance.methods.LIMITS)."""
    low, high = LIMITS[name].shown
    return gr.Slider(low, high, value=value, step=step, label=label, **kwargs)


def condition_widget(spec: TaskSpec, worlds: WorldRegistry, key: str) -> dict[str, Any]:
    """Choices and value of the prompt / class widget for a world."""
    names = list(worlds.class_names(key))
    if spec.by_class:
        return {"choices": names, "value": spec.condition if key == EMBEDDED else names[0] if names else None}
    if key == EMBEDDED:
        return {"choices": [("(unconditional)", ""), *names], "value": spec.condition}
    return {"choices": [spec.sd_prompt], "value": spec.sd_prompt}


def common_inputs(spec: TaskSpec, condition: dict[str, Any]) -> dict[str, gr.components.Component]:
    """Prompt or class, methods, samples, seed, steps (NFE), CFG scale, eta."""
    inputs = {
        "condition": gr.Dropdown(
            label="Class" if spec.by_class else "Prompt or class", allow_custom_value=True,
            info="a class of the embedded world, or free text for Stable Diffusion", **condition,
        ),
        "methods": gr.Dropdown(list(spec.choices), value=list(spec.selected), multiselect=True, label=spec.choices_label),
    }  # fmt: skip
    if spec.runs_over == "schedulers":
        inputs["guidance"] = gr.Radio(list(GUIDED_BASES), value="cfg", label="Guidance used with every solver")
    with gr.Row():
        inputs["samples"] = slider("samples", 1, 1, "Samples", elem_id=f"{spec.name}-samples")
        inputs["seed"] = gr.Number(0, precision=0, minimum=LIMITS["seed"].low, maximum=LIMITS["seed"].high, label="Seed")
        steps = "nfe" if spec.runs_over == "schedulers" else "steps"
        inputs[steps] = slider("steps", spec.steps, 1, "NFE (solver steps)" if steps == "nfe" else "Steps", elem_id=f"{spec.name}-steps")
    with gr.Row():
        inputs["cfg_scale"] = slider("cfg_scale", spec.preset.cfg_scale, 0.1, "CFG / guidance scale", info="1: off")
        inputs["eta"] = slider("eta", spec.eta, 0.05, "DDIM eta", info="DSG needs eta > 0")
    return inputs


def gradient_inputs(settings: Settings) -> dict[str, gr.components.Component]:
    """FreeDoM / FIGD / DPS / DSG sliders, preset from the papers (guidance.tasks.SPECS)."""
    return {
        "scale": slider("scale", settings.scale, 0.01, "Guidance strength k", info="normalised step size"),
        "fisher_weight": gr.Radio(list(FISHER_WEIGHTS), value=settings.fisher_weight, label="FIGD Fisher weight w_t"),
        "dsg_rate": slider("dsg_rate", settings.dsg_rate, 0.01, "DSG guidance rate"),
        "dsg_interval": slider("dsg_interval", settings.dsg_interval, 1, "DSG interval (guide every n steps)"),
        "window_start": gr.Slider(0, 1, value=settings.window[0], step=0.05, label="Guidance window start"),
        "window_end": gr.Slider(0, 1, value=settings.window[1], step=0.05, label="Guidance window end"),
        "repeats": slider("repeats", settings.repeats, 1, "Time-travel repeats"),
        "travel_start": gr.Slider(0, 1, value=settings.travel_window[0], step=0.05, label="Time-travel window start"),
        "travel_end": gr.Slider(0, 1, value=settings.travel_window[1], step=0.05, label="Time-travel window end"),
    }  # fmt: skip


def gfcg_inputs(settings: Settings) -> dict[str, gr.components.Component]:
    """GFCG's options; its base (CFG or Autoguidance) is picked with the method (cfg+gfcg, atg+gfcg)."""
    return {
        "gfcg_max_scale": slider("gfcg_max_scale", settings.gfcg_max_scale, 0.1, "GFCG maximum scale w_max"),
        "gfcg_rule": gr.Radio(list(SCALE_RULES), value=settings.gfcg_rule, label="GFCG scale rule"),
        "gfcg_fused": gr.Checkbox(settings.gfcg_fused, label="Fused with Autoguidance (atg+gfcg at ATG's cost)"),
    }


OPTION_INPUTS = {"gradient": gradient_inputs, "gfcg": gfcg_inputs}


def task_inputs(spec: TaskSpec) -> dict[str, gr.components.Component]:
    """The task's uploads and map options; their defaults are the first example."""
    first = dict(zip(spec.example_fields, spec.examples[0]))
    inputs = {}
    if "reference" in spec.inputs:
        inputs["reference"] = gr.Image(first["reference"], type="filepath", label=f"{spec.title} image", height=200, elem_id=f"{spec.name}-reference")
    if "control_map" in spec.inputs:
        inputs["control_image"] = gr.Image(first["control_image"], type="filepath", label="Image or control map", height=200)
        inputs["annotator"] = gr.Dropdown([*ANNOTATORS, "none"], value=first["annotator"], label="Annotator", info="none: the upload is already a map")
        with gr.Row():
            inputs["use_controlnet"] = gr.Checkbox(True, label="ControlNet")
            inputs["edge_energy"] = gr.Checkbox(True, label="Edge energy (training-free)")
        with gr.Accordion("Face or style on top (optional)", open=False):
            inputs["extra"] = gr.Radio(["none", *EXTRAS], value=first["extra"], label="Also guide by")
            inputs["extra_reference"] = gr.Image(str(EXAMPLES / "face_blond.png"), type="filepath", label="Face or style image", height=160)
    return inputs


def benchmark_figures(suite: str, folder: Path = BENCH_FIGURES) -> list[Path]:
    """The suite's committed plots on the embedded world: the full run's where there is one, else the quick run's."""
    for mode in ("full", "quick"):
        if found := sorted(folder.glob(f"{suite}-embedded-{mode}-*.png")):
            return found
    return []


def benchmark_panel(spec: TaskSpec) -> None:
    """The task's benchmark plots from docs/benchmarks.md, in a closed accordion (nothing when none are committed)."""
    figures = benchmark_figures(spec.benchmark) if spec.benchmark else []
    if figures:
        with gr.Accordion(f"Benchmark plots: python -m guidance.bench {spec.benchmark} (docs/benchmarks.md)", open=False):
            for path in figures:
                gr.Image(str(path), show_label=False, interactive=False, elem_id=f"{spec.name}-benchmark-{path.stem}")


def result_outputs(spec: TaskSpec) -> list[gr.components.Component]:
    """Gallery, summary JSON, time and energy plots, metrics table, what was used, downloads."""
    images = gr.Gallery(label="Results", columns=4, height="auto", format="png", object_fit="contain", elem_id=f"{spec.name}-gallery")
    with gr.Row():
        time_plot = gr.Plot(label="Time per step", format="png", elem_id=f"{spec.name}-time-plot")
        energy_plot = gr.Plot(label="Energy per step", format="png", elem_id=f"{spec.name}-energy-plot")
    table = gr.Dataframe(headers=list(TABLE_COLUMNS), label="Metrics", interactive=False, elem_id=f"{spec.name}-metrics")
    with gr.Row():
        used = gr.Gallery(
            label="Face crop / control map used", columns=3, height="auto", format="png", object_fit="contain", allow_preview=False,
            elem_id=f"{spec.name}-artefacts",
        )
        files = gr.File(label="Download: images and figures as JSON", file_count="multiple", elem_id=f"{spec.name}-downloads")
    with gr.Accordion("Timings and metrics (JSON)", open=False):
        summary = gr.JSON(label="Per method", elem_id=f"{spec.name}-json")
    return [images, summary, time_plot, energy_plot, table, used, files]


def build_tab(spec: TaskSpec, backbone: gr.Dropdown, condition: dict[str, Any], status_line: gr.Markdown, run: Callable) -> tuple:
    """One tab; returns its condition widget (the backbone selector updates it) and its Stop button."""
    with gr.Tab(spec.title, id=spec.name):
        gr.Markdown(spec.intro)
        with gr.Row():
            with gr.Column(scale=2):
                inputs = task_inputs(spec)
                inputs |= common_inputs(spec, condition)
                if spec.option_groups:
                    with gr.Accordion("Method settings", open=False):
                        for group in spec.option_groups:
                            inputs |= OPTION_INPUTS[group](spec.preset)
                with gr.Row():
                    start = gr.Button("Run", variant="primary", elem_id=f"{spec.name}-run")
                    halt = gr.Button("Stop", variant="stop", elem_id=f"{spec.name}-stop")
                examples = [list(e) for e in spec.examples]
                gr.Examples(examples, [inputs[f] for f in spec.example_fields], label="Examples", elem_id=f"{spec.name}-examples")
            with gr.Column(scale=3):
                outputs = result_outputs(spec)
                benchmark_panel(spec)
        start.click(
            run, inputs_kwargs={"backbone": backbone, **inputs}, outputs=[*outputs, status_line],
            api_name=spec.name, concurrency_id="sampling", show_progress_on=outputs[0],
            preprocess=False,  # uploads reach load_image unopened
        )  # fmt: skip
    return inputs["condition"], halt


def build_app(world: str | Path = ASSETS, sd_model: str | None = None, controlnet: str | None = None) -> gr.Blocks:
    """The whole UI; every run goes through guidance.tasks.run_task. Queued, one run at a time."""
    worlds = WorldRegistry(Path(world), sd_model, controlnet)
    stops, downloads = Stops(), Path(tempfile.mkdtemp(prefix="guidance-app-"))

    def stop(request: gr.Request) -> None:
        """Stops the caller's run before its next step."""
        if not stops.stop(request.session_hash):
            gr.Info("Nothing is running.")

    def switch(key: str) -> list:
        """The status line and every tab's prompt / class widget for the chosen backbone."""
        return [status(worlds, key), *(gr.Dropdown(**condition_widget(spec, worlds, key)) for spec in SPECS)]

    with gr.Blocks(title="Training-free guidance playground", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# Training-free guided diffusion\nFreeDoM, FIGD, DSG, GFCG and EVODiff side by side, from the same seed.")
        with gr.Row():
            default = worlds.default()
            choices = [(worlds.title(key), key) for key in worlds.keys()]
            backbone = gr.Dropdown(choices, value=default, label="Backbone", scale=1, elem_id="backbone")
            status_line = gr.Markdown(status(worlds, default), label="Status", elem_id="status")
        tabs = [
            build_tab(spec, backbone, condition_widget(spec, worlds, default), status_line, make_run(spec, worlds, stops, downloads))
            for spec in SPECS
        ]
        conditions, halts = zip(*tabs)
        gr.on([halt.click for halt in halts], stop, api_name="stop", concurrency_limit=None)
        backbone.change(switch, backbone, [status_line, *conditions], api_visibility="private", concurrency_limit=None)
    return demo.queue(default_concurrency_limit=1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from guidance.worlds.sd15 import SD15

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

"""The web app's handlers, for any task (a guidance.playground.tasks.TaskSpec): widget values to a TaskRequest (each
of the task's inputs parses its own, guidance.playground.tasks.inputs), and a run's or a sweep's outcome to the tab's
outputs. app.py lays out the page and wires its widgets to `make_run` and `make_sweep`; the work itself is the
library's (run_task through guidance.playground.preview.stream_task, guidance.playground.tasks.sweep).

Wherever a function takes them:
    spec: the tab's TaskSpec.
    values: the tab's raw widget values, by API parameter name.
    worlds: the app's WorldRegistry, which loads the backbone a run names.
    stops: the app's per-session stop flags (the Stop button, /stop).
    downloads: the folder the tab's download files are written under.
    spaces: the imported `spaces` module on a Hugging Face ZeroGPU Space, else None.
    admissions: who holds a run (guidance.playground.crowd); a run or sweep counts as its session's while it goes, and
        gives back the memory it freed when it ends (guidance.playground.upkeep).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gradio as gr
import torch
from PIL import Image

from conditions.images import to_pil
from guidance.errors import (
    DeviceOutOfMemoryError,
    GuidanceError,
    ImageInputError,
    MethodConfigError,
    NoFaceFoundError,
    SamplingNaNError,
    WeightsUnavailableError,
)
from guidance.methods import LIMITS
from guidance.playground.crowd import Admissions
from guidance.playground.export import metrics_table, step_figure, guiding_text, summarize, write_downloads
from guidance.playground.preview import Frame, stream_task
from guidance.playground.space import gpu_seconds, on_gpu
from guidance.playground.stops import Stops
from guidance.playground.tasks import SWEEP_VALUES, TaskOutcome, TaskRequest, TaskSpec, make_request, parse_values, sweep
from guidance.playground.tasks.command import SweepInputs, setting_pairs, sweep_command
from guidance.playground.tasks.inputs import checked_grid
from guidance.playground.upkeep import released
from guidance.playground.views import (
    SWEEP_SERIES,
    paths_figure,
    sweep_figure,
    sweep_grid,
    sweep_summary,
    trajectory_strip,
    write_sweep_files,
)
from guidance.playground.widgets import settings_from
from guidance.schedulers.grids import LABELS, SOLVERS
from guidance.worlds.embedded import ASSETS
from guidance.worlds.mixture import MixtureBackbone, solver_paths
from guidance.worlds.registry import EMBEDDED, SD, WorldRegistry

SNAPSHOTS = 8  # x0_hat kept at 8 evenly spaced steps per method: the live preview's frames and the trajectory strip
ERROR_TITLES = {
    NoFaceFoundError: "No face found",
    ImageInputError: "Unusable image",
    WeightsUnavailableError: "Weights not available",
    MethodConfigError: "Invalid settings",
    SamplingNaNError: "Sampling diverged",
    DeviceOutOfMemoryError: "Out of memory",
}


# ----------------------------------------------------------------------------- widgets -> request


def request_from(spec: TaskSpec, values: dict[str, Any]) -> TaskRequest:
    """A TaskRequest from a tab's raw widget values; the library checks them.

    Returns:
        The TaskRequest.

    Raises:
        ImageInputError: an upload is missing or unusable.
        MethodConfigError: a value is not allowed.
    """
    request: dict[str, Any] = {
        "task": spec.name,
        "condition": values["condition"] or None,
        "samples": int(values["samples"]),
        "steps": int(values[spec.runs.steps_key]),
        "eta": float(values["eta"]),
        "seed": int(values["seed"] or 0),
        "settings": settings_from(spec, values),
        "strength": float(values["strength"]) if "strength" in values else None,
    }
    for kind in spec.all_inputs:
        request |= kind.parse(spec, values)
    return make_request(**request)


# ----------------------------------------------------------------------------- outcome -> outputs


def _caption(label: str, stats: dict[str, Any], index: int, metric_label: str) -> str:
    parts = [
        f"{label}{'' if index == 0 else f' #{index + 1}'}",
        guiding_text(stats["options"]),
        f"{stats['seconds']:.2f} s",
        f"{stats['nfe']:g} NFE",
    ]
    if stats["metric"] is not None:
        parts.append(f"{metric_label} {stats['metric'][index]:.3f}")
    parts += [f"{name.replace('_', ' ')} {values[index]:g}" for name, values in (stats.get("extra_metrics") or {}).items()]
    return " · ".join(part for part in parts if part) + (" (stopped)" if stats["cancelled"] else "")


def gallery(outcome: TaskOutcome, summary: dict[str, dict[str, Any]], metric_label: str) -> list[tuple[Image.Image, str]]:
    """The result gallery: every image, captioned with its method's guiding setting, seconds, NFE and metric.

    Args:
        outcome: the run's TaskOutcome.
        summary: its summary, per run label (guidance.playground.export.summarize).
        metric_label: what the task's metric is called.

    Returns:
        (image, caption) pairs, run by run.
    """
    return [
        (image, _caption(label, summary[label], index, metric_label))
        for label, result in outcome.results
        for index, image in enumerate(to_pil(result.images))
    ]


def preview(frame: Frame, steps: int) -> tuple:
    """A live frame: the gallery shows each method's latest x0_hat and the energy plot grows; the rest waits.

    Args:
        frame: the preview's Frame.
        steps: the steps of each run.

    Returns:
        The run endpoint's outputs, gr.skip() for those a frame leaves alone.
    """
    return (frame.gallery(steps), gr.skip(), gr.skip(), frame.energy_figure(), *[gr.skip()] * 5)


def status(worlds: WorldRegistry, key: str) -> str:
    """The status line: which backbone, from where, on which device, and whether it is loaded.

    Args:
        key: the backbone's key in `worlds`.

    Returns:
        One line of Markdown.
    """
    world = worlds.loaded(key)
    device = world.backbone.device if world is not None else worlds.device
    state = "loaded" if world is not None else "loads on its first run"
    return f"**Backbone:** {worlds.source(key)} · **device:** `{device}` · {state}"


# ----------------------------------------------------------------------------- running


@contextmanager
def readable_errors() -> Iterator[None]:
    """Inside the block, the library's typed errors, and running out of memory, become gr.Error messages (no
    traceback), titled by ERROR_TITLES.

    Any other exception (a bug, or a custom energy that raises) becomes a gr.Error naming it, its traceback printed on
    the server: the visitor reads what failed, and the app goes on serving the next run.

    Raises:
        gr.Error: in place of any exception.
    """
    try:
        yield
    except gr.Error:
        raise
    except GuidanceError as error:
        title = next((t for cls, t in ERROR_TITLES.items() if isinstance(error, cls)), "Error")
        raise gr.Error(str(error), title=title, print_exception=False) from error
    except (torch.OutOfMemoryError, MemoryError) as error:
        raise gr.Error(
            "out of memory: try fewer samples, fewer methods or a smaller backbone", title="Out of memory", print_exception=False
        ) from error
    except Exception as error:
        raise gr.Error(
            f"the run failed ({type(error).__name__}: {error}). The app is fine: change a setting or try again.",
            title="Run failed",
        ) from error


def _warn_if_stopped(outcome: TaskOutcome, requested: int) -> None:
    stopped = [(label, result) for label, result in outcome.results if result.cancelled]
    if stopped:
        label, result = stopped[0]
        shown = ", ".join(label for label, _ in outcome.results)
        gr.Warning(f"Stopped during {label} after {len(result.steps)} of {requested} steps; partial results shown ({shown}).")


def run_seconds(spec: TaskSpec, values: dict[str, Any], sweep_values: int = 1) -> int:
    """How long ZeroGPU holds the GPU for a run of the tab's widget values.

    Args:
        sweep_values: values of a sweep (1 for a single run).

    Returns:
        Whole seconds (guidance.playground.space.gpu_seconds).
    """
    steps = int(values.get(spec.runs.steps_key, spec.steps))
    runs = len(values.get("methods") or spec.selected)
    return gpu_seconds(steps, int(values.get("samples", 1)), runs, sweep_values)


def make_run(
    spec: TaskSpec, worlds: WorldRegistry, stops: Stops, downloads: Path, spaces: Any = None, admissions: Admissions | None = None
) -> Callable[..., Iterator[tuple]]:
    """The tab's run endpoint. Under ZeroGPU (`spaces`) it holds the GPU for its steps.

    Returns:
        A generator handler: the backbone's key and the tab's widget values in; previews (x0_hat, energies) while it
        runs, then (gallery, summary, time plot, energy plot, table, artefacts, files, status, trajectory). Errors
        reach the page as gr.Error (readable_errors).
    """
    admissions = admissions or Admissions()

    def run(request: gr.Request, progress: gr.Progress = gr.Progress(), **values: Any) -> Iterator[tuple]:
        backbone = values.pop("backbone")
        with released(), admissions.running(request.session_hash), readable_errors():
            with stops.watch(request.session_hash) as stop:
                progress(0, desc=f"loading the {backbone} backbone")
                world = worlds.load(backbone)
                task_request = replace(request_from(spec, values), snapshots=SNAPSHOTS)
                tick = lambda frame: progress((frame.done, frame.total), desc=frame.label, unit="steps")  # noqa: E731
                for item in stream_task(world, task_request, should_stop=stop.is_set, progress=tick):
                    if isinstance(item, Frame):
                        yield preview(item, task_request.steps)
                    else:
                        outcome = item
            _warn_if_stopped(outcome, task_request.steps)
            summary = summarize(outcome)
            yield (
                gallery(outcome, summary, spec.metric_label),
                summary,
                step_figure(summary, "ms_per_step", "ms per step", medians=True),
                step_figure(summary, "energy_per_step", "energy of the x0 estimate"),
                metrics_table(summary, spec.metric_label),
                [(image, name) for name, image in outcome.artefacts.items()],
                write_downloads(downloads, outcome, summary),
                status(worlds, backbone),
                trajectory_strip(outcome.results),
            )

    return on_gpu(run, lambda *_, **values: run_seconds(spec, values), spaces)


def world_options(worlds: WorldRegistry, backbone: str) -> dict[str, str | None]:
    """The sweep command's world for a backbone of the app.

    Args:
        backbone: the backbone's key in `worlds`.

    Returns:
        SweepInputs fields: the embedded world ("embedded" for the shipped one, else its folder), or Stable Diffusion
        1.5 with the app's ControlNet and tiny decoder.
    """
    if backbone == SD:
        return {"world": worlds.sd_model, "controlnet_model": worlds.controlnet, "tiny_vae": worlds.tiny_vae}
    shipped = Path(worlds.embedded).resolve() == ASSETS.resolve()
    return {"world": EMBEDDED if shipped else str(worlds.embedded)}


def sweep_inputs(spec: TaskSpec, request: TaskRequest, values: dict[str, Any], world: dict[str, str | None]) -> SweepInputs:
    """The tab's inputs as the sweep command takes them.

    Args:
        request: the TaskRequest of the tab's values.
        world: the sweep command's world (`world_options`).

    Returns:
        The SweepInputs: the request's settings, and what each of the task's inputs gives (its uploads by file path).
    """
    fields: dict[str, Any] = {
        **world,
        "task": spec.name,
        "steps": request.steps,
        "eta": request.eta,
        "condition": request.condition or "",
        "strength": request.strength,
        "settings": setting_pairs(spec.name, request.settings),
    }
    for kind in spec.all_inputs:
        fields |= kind.sweep_fields(request, values)
    return SweepInputs(**fields)


def sweep_command_of(spec: TaskSpec, worlds: WorldRegistry, values: dict[str, Any]) -> str:
    """The command line that runs the tab's sweep at scale: its current inputs, setting, values and seeds (the tab's
    seed and the ones after it, one sample each), every input checked as a run's would be.

    Args:
        values: the tab's raw widget values, with "backbone", "sweep_setting", "sweep_values" and "sweep_seeds".

    Returns:
        The `python -m guidance.sweep` command line.

    Raises:
        ImageInputError: an upload is missing or unusable.
        MethodConfigError: a value is not allowed.
    """
    values = dict(values)
    backbone, setting, text = values.pop("backbone"), values.pop("sweep_setting"), values.pop("sweep_values")
    seeds = int(values.pop("sweep_seeds", 1))
    request = request_from(spec, values)
    methods = spec.runs.selected(request)
    inputs = sweep_inputs(spec, request, values, world_options(worlds, backbone))
    return sweep_command(
        inputs,
        setting,
        text.replace(" ", ""),
        tuple(methods),
        range(request.seed, request.seed + seeds),
        f"runs/sweep-{spec.name}",
    )


def make_sweep(
    spec: TaskSpec, worlds: WorldRegistry, stops: Stops, downloads: Path, spaces: Any = None, admissions: Admissions | None = None
) -> Callable[..., tuple]:
    """The tab's sweep endpoint. Under ZeroGPU (`spaces`) it holds the GPU for every value's steps.

    Returns:
        A handler: the backbone's key, the tab's widget values, a setting, 3-8 values and seeds per value in; (grid,
        metric plot, seconds plot, files, JSON, the command that runs the same sweep at scale) out. Errors reach the
        page as gr.Error (readable_errors).
    """
    admissions = admissions or Admissions()

    def run_sweep(request: gr.Request, progress: gr.Progress = gr.Progress(), **values: Any) -> tuple:
        with released(), admissions.running(request.session_hash), readable_errors():
            command = sweep_command_of(spec, worlds, values)
            backbone, setting, text = values.pop("backbone"), values.pop("sweep_setting"), values.pop("sweep_values")
            seeds = int(values.pop("sweep_seeds", 1))
            with stops.watch(request.session_hash) as stop:
                progress(0, desc=f"loading the {backbone} backbone")
                world = worlds.load(backbone)
                outcome = sweep(
                    world,
                    request_from(spec, values),
                    setting,
                    parse_values(setting, text),
                    progress=lambda where: progress((where.step, where.steps), desc=str(where), unit="steps"),
                    should_stop=stop.is_set,
                    seeds=seeds,
                )
            if outcome.cancelled:
                gr.Warning(f"Stopped after {len(outcome.columns) - 1} of {len(outcome.values)} values; finished cells shown.")
            figures = {key: sweep_figure(outcome, key) for key in SWEEP_SERIES}
            files = write_sweep_files(downloads / uuid.uuid4().hex, outcome, figures)
            return sweep_grid(outcome), figures["metric"], figures["seconds_per_image"], files, sweep_summary(outcome), command

    def seconds(*_, **values: Any) -> int:
        try:
            count = len(parse_values(values["sweep_setting"], values["sweep_values"]))
        except GuidanceError:  # the sweep itself reports bad values
            count = SWEEP_VALUES[1]
        samples = int(values.get("samples", 1)) * int(values.get("sweep_seeds", 1))
        return run_seconds(spec, values | {"samples": samples}, count)

    return on_gpu(run_sweep, seconds, spaces)


def make_sweep_command(spec: TaskSpec, worlds: WorldRegistry) -> Callable[..., str]:
    """The tab's endpoint that names the sweep command for its current inputs, without running anything.

    Returns:
        A handler: the tab's widget values as `sweep_command_of` takes them in, the command line out.
    """

    def sweep_command_line(**values: Any) -> str:
        with readable_errors():
            return sweep_command_of(spec, worlds, values)

    return sweep_command_line


def solver_paths_view(solvers: list[str], grid: str, nfe: int) -> Any:
    """The Solvers tab's teaching view: the selected solvers' paths from the same noise on a ring of Gaussians, whose
    denoiser is exact (guidance.worlds.mixture), on the tab's grid and NFE, one colour per solver.

    Raises:
        gr.Error: no solver that runs on every grid is selected, or a grid or NFE out of range.
    """
    with readable_errors():
        checked_grid(grid)
        LIMITS["steps"].check("NFE", nfe)
        shown = [s for s in solvers or [] if s in SOLVERS]
        if not shown:
            raise MethodConfigError(f"select one of {', '.join(SOLVERS)}: the paths compare the solvers that run on every grid")
        backbone = MixtureBackbone()
        paths = solver_paths(shown, grid, int(nfe), backbone=backbone)
        where = "each solver's own grid" if grid == "own" else LABELS[grid]
        return paths_figure(
            backbone.mixture.means.tolist(), {k: v.tolist() for k, v in paths.items()}, f"{where}, NFE {int(nfe)}"
        )


def make_admission(admissions: Admissions, names: list[str], shown_on: str) -> Callable[..., Any]:
    """The `validator` of a sampling event: Gradio calls it when the event asks to join the queue, before it is
    queued, and a refusal (guidance.playground.crowd.Admissions.admit) reaches the visitor at once.

    Args:
        names: the event's input names, in order (its `inputs_kwargs`).
        shown_on: the input whose widget shows the refusal in the page (API clients read it in the ValidationError).

    Returns:
        The validator: the event's inputs in, a gr.validate per input out (valid, or the refusal on `shown_on`).
    """
    index = names.index(shown_on)

    async def admit(request: gr.Request, **values: Any) -> list[dict]:  # on the event loop: no worker thread to wait for
        refusal = admissions.admit(request.session_hash)
        return [gr.validate(refusal is None or i != index, refusal or "") for i in range(len(names))]

    return admit


# ----------------------------------------------------------------------------- cached examples


@dataclass(frozen=True)
class ExampleCache:
    """How the tabs' example outputs are cached (gr.Examples' `cache_examples`, `cache_mode`).

    Lazy by default, because eager caching makes every example before the app opens, which on a CPU (the embedded
    world's examples) or a GPU (SD 1.5's) takes longer than a Space should spend starting (docs/benchmark-notes.md).

    Attributes:
        backbone: the backbone the examples are computed on (the start-up default).
        enabled: True on a Hugging Face Space (SPACE_ID set), else None, which lets Gradio read GRADIO_CACHE_EXAMPLES.
        mode: None where GRADIO_CACHE_MODE is set (Gradio reads it), else "lazy": each example is made on its first
            click and kept for every visitor after.
    """

    backbone: str
    enabled: bool | None = field(default_factory=lambda: True if os.environ.get("SPACE_ID") else None)
    mode: str | None = field(default_factory=lambda: None if os.environ.get("GRADIO_CACHE_MODE") else "lazy")


def make_example(run: Callable[..., Iterator[tuple]], names: list[str], backbone: str) -> Callable[..., tuple]:
    """gr.Examples' function, whose outputs Gradio caches.

    Args:
        run: the tab's run handler (`make_run`).
        names: the API parameter names of an example row's values, in order.
        backbone: the backbone's key the examples run on.

    Returns:
        A function from a full row of the tab's widget values to the run's final outputs less the status line;
        previews are skipped.
    """

    def example(*row: Any) -> tuple:
        *_, final = run(gr.Request(), backbone=backbone, **dict(zip(names, row)))
        return (*final[:7], final[8])

    return example

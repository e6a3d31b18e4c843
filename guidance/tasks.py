"""The playground's tasks as library calls: build the energy, run each method, collect the results.

The app wires widgets to `run_task`; the benchmarks call it too. Presets are [ours]: step sizes use
FreeDoM's normalised rule (rho_t = k RMS(w_cfg (eps_c - eps_u)) / RMS(g), or RMS(eps) without CFG),
which makes k comparable across worlds; windows and DSG rates follow the papers' defaults.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from PIL import Image

from conditions.base import Energy
from conditions.classes import ClassEnergy
from conditions.control import EdgeEnergy, annotate, map_tensor
from conditions.face import FaceIDEnergy, crop
from conditions.images import to_pil, to_tensor
from conditions.style import StyleEnergy

from .backbone import Control
from .errors import MethodConfigError
from .methods import Settings, Term, Terms, Window, build_method
from .methods.figd import FISHER_WEIGHTS
from .sampling import SamplingResult, StepRecord, sample
from .worlds import World

TASKS = ("face", "style", "control", "classes", "solvers")
PRESETS = {
    # face: k and the DSG rate from the `dsg` benchmark's sweep (docs/benchmarks.md) on the embedded world
    "face": Settings(scale=0.05, step_rule="normalized", window=(0.0, 0.9), dsg_rate=0.1, noise_rule="freedom"),
    "style": Settings(scale=0.2, step_rule="normalized", window=(0.3, 0.7), repeats=3, travel_window=(0.3, 0.6), dsg_rate=0.1),
    "control": Settings(scale=0.2, step_rule="normalized", window=(0.0, 0.8), dsg_rate=0.1),
    "classes": Settings(cfg_scale=2.5, gfcg_max_scale=2.0),
    "solvers": Settings(cfg_scale=2.5),
}
# A condition on top of a control map guides in its own window with its own k (docs/methods.md, FreeDoM step 7):
# FreeDoM's ControlNet face-ID run guides index 39..0 of 100 with k = 0.08 and no time travel [code]
EXTRA_TERMS = {"face": {"window": Window(0.6, 1.0), "scale": 0.08}}


@dataclass
class TaskRequest:
    """One tab's inputs. `condition` is a prompt or class name (None: unconditional)."""

    task: str
    methods: list[str]
    condition: str | None = None
    samples: int = 1
    steps: int = 25
    scheduler: str = "ddim"
    eta: float = 0.0
    seed: int = 0
    settings: Settings = field(default_factory=Settings)
    reference: Image.Image | None = None  # the face or style image
    control_image: Image.Image | None = None  # an image to annotate, or a ready map
    annotator: str = "canny"  # "none": control_image is already a map
    use_controlnet: bool = True
    edge_energy: bool = True
    extra: str | None = None  # "face" or "style" on top of a control map, with `reference`
    schedulers: list[str] = field(default_factory=lambda: ["ddim", "dpmsolver++", "unipc", "evodiff"])
    snapshots: int = 0  # x0_hat decoded at this many evenly spaced steps: the live preview and the trajectory


@dataclass
class TaskOutcome:
    """Results in method order, and what was used: the face crop, the control map."""

    results: list[tuple[str, SamplingResult]]
    artefacts: dict[str, Image.Image] = field(default_factory=dict)


def preset(task: str, **overrides) -> Settings:
    if task not in PRESETS:
        raise MethodConfigError(f"unknown task {task!r}; known: {TASKS}")
    return replace(PRESETS[task], **overrides)


def build_energy(world: World, request: TaskRequest) -> tuple[Energy | None, Control | None, dict[str, Image.Image]]:
    """The task's energy, the ControlNet input, and pictures of what was used."""
    task, artefacts, control = request.task, {}, None
    if task in ("face", "style"):
        energy = _reference_energy(world, task, _need(request.reference, f"the {task} tab needs a reference image"), artefacts)
    elif task == "control":
        image = _need(request.control_image, "the control-map tab needs an image or a map")
        control_map = image if request.annotator == "none" else annotate(image, request.annotator)
        artefacts["control map"] = control_map.resize((world.backbone.image_size,) * 2, Image.NEAREST)
        tensor = map_tensor(control_map, world.backbone.image_size)
        if request.use_controlnet:
            control = world.backbone.prepare_control(tensor)
        terms = [Term(EdgeEnergy(tensor).to(world.backbone.device))] if request.edge_energy else []
        if request.extra:
            extra = _reference_energy(world, request.extra, _need(request.reference, f"{request.extra} needs a reference"), artefacts)
            terms.append(Term(extra, **EXTRA_TERMS.get(request.extra, {})))
        energy = Terms(terms) if terms else _edge_metric(tensor, world)
    elif task in ("classes", "solvers"):
        energy = ClassEnergy(world.evaluator, [_need(request.condition, "pick a class")] * request.samples)
    else:
        raise MethodConfigError(f"unknown task {task!r}; known: {TASKS}")
    return energy, control, artefacts


def _need(value, message: str):
    if value is None:
        raise MethodConfigError(message)
    return value


def _edge_metric(tensor: torch.Tensor, world: World) -> Energy:
    """ControlNet alone: the edge energy is only measured, never used for guidance."""
    return EdgeEnergy(tensor).to(world.backbone.device)


def _reference_energy(world: World, kind: str, reference: Image.Image, artefacts: dict) -> Energy:
    if kind == "face":
        energy = FaceIDEnergy(reference, world.face_embedder, world.face_detector)
        artefacts["face crop"] = to_pil(crop(to_tensor(reference), energy.box, 160))[0]
        return energy.to(world.backbone.device)
    if kind == "style":
        artefacts["style"] = reference.resize((160, 160))
        return StyleEnergy(reference, world.style_features).to(world.backbone.device)
    raise MethodConfigError(f"unknown extra condition {kind!r}: use 'face' or 'style'")


def planned_runs(request: TaskRequest) -> list[tuple[str, str, str]]:
    """(label, method, scheduler) per result: the methods, or on the solvers tab the schedulers."""
    if request.task == "solvers":
        return [(s, request.methods[0], s) for s in request.schedulers]
    return [(m, m, request.scheduler) for m in request.methods]


def _settings(request: TaskRequest) -> Settings:
    """The request's settings; without a condition there is nothing for CFG to contrast."""
    return request.settings if request.condition is not None else replace(request.settings, cfg_scale=1.0)


def _eta(request: TaskRequest, scheduler: str) -> float:
    return request.eta if scheduler in ("ddim", "ddpm") else 0.0


def run_task(
    world: World,
    request: TaskRequest,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_step: Callable[[str, StepRecord, torch.Tensor | None], None] | None = None,
) -> TaskOutcome:
    """Runs every requested method (or, on the solvers tab, every scheduler) from the same seed.

    `on_step(label, record, x0_hat)` sees every step, with the decoded x0_hat at `request.snapshots` steps.
    """
    energy, control, artefacts = build_energy(world, request)
    conditions = [request.condition] * request.samples
    settings, runs = _settings(request), planned_runs(request)
    total, results = len(runs) * request.steps, []
    for number, (label, method_name, scheduler) in enumerate(runs):
        method = build_method(method_name, settings, world.classifier)
        tick = None if progress is None else (lambda i, n, k=number: progress(k * request.steps + i, total))
        hook = None if on_step is None else (lambda record, picture, label=label: on_step(label, record, picture))
        result = sample(
            world.backbone, method, conditions, steps=request.steps, scheduler=scheduler,
            eta=_eta(request, scheduler), noise_rule=settings.noise_rule, seed=request.seed,
            energy=energy, control=control, progress=tick, should_stop=should_stop,
            snapshots=request.snapshots, on_step=hook,
        )  # fmt: skip
        results.append((label, result))
        if result.cancelled:
            break
    return TaskOutcome(results, artefacts)


# ----------------------------------------------------------------------------- sweeps

SWEEP_SETTINGS = {
    "scale": "guidance scale k", "dsg_rate": "DSG rate", "cfg_scale": "CFG scale", "gfcg_max_scale": "GFCG maximum scale",
    "fisher_weight": "FIGD Fisher weight", "steps": "steps / NFE", "eta": "DDIM eta",
}  # fmt: skip
ENERGY_SWEEPS = ("scale", "dsg_rate", "cfg_scale", "fisher_weight", "steps", "eta")
TASK_SWEEPS = {"face": ENERGY_SWEEPS, "style": ENERGY_SWEEPS, "control": ENERGY_SWEEPS,
               "classes": ("gfcg_max_scale", "cfg_scale", "steps", "eta"), "solvers": ("steps", "cfg_scale")}  # fmt: skip
SWEEP_VALUES = (3, 8)  # the fewest and most values of a sweep
SWEEP_DEFAULTS = {
    "scale": "0.02, 0.05, 0.1", "dsg_rate": "0.05, 0.1, 0.2", "cfg_scale": "1.5, 2.5, 4", "gfcg_max_scale": "0, 1, 2",
    "fisher_weight": "unit, flat-prior, gaussian-data", "steps": "6, 10, 20", "eta": "0.25, 0.5, 1",
}  # fmt: skip


@dataclass
class SweepProgress:
    """Where a sweep is: method m of M, value v of V, step s of S (all counted from 1)."""

    method: int
    methods: int
    value: int
    values: int
    step: int
    steps: int

    def __str__(self) -> str:
        return f"method {self.method} of {self.methods}, value {self.value} of {self.values}, step {self.step} of {self.steps}"


@dataclass
class SweepOutcome:
    """One TaskOutcome per finished (or stopped) value, in value order: columns of the grid, methods its rows."""

    setting: str
    values: list
    columns: list[TaskOutcome]
    labels: list[str]

    @property
    def cancelled(self) -> bool:
        return any(result.cancelled for column in self.columns for _, result in column.results)

    def cell(self, label: str, column: int) -> SamplingResult | None:
        return dict(self.columns[column].results).get(label) if column < len(self.columns) else None


def sweep_request(request: TaskRequest, setting: str, value) -> TaskRequest:
    """The request with one setting changed."""
    if setting in ("steps", "eta"):
        return replace(request, **{setting: value})
    return replace(request, settings=replace(request.settings, **{setting: value}))


def check_sweep(task: str, setting: str, values: Sequence) -> list:
    """The values, typed for the setting; MethodConfigError names what is wrong."""
    if setting not in TASK_SWEEPS.get(task, ()):
        raise MethodConfigError(f"the {task} tab sweeps one of {list(TASK_SWEEPS.get(task, ()))}, not {setting!r}")
    low, high = SWEEP_VALUES
    if not low <= len(values) <= high:
        raise MethodConfigError(f"a sweep takes {low} to {high} values, got {len(values)}")
    if setting == "fisher_weight":
        typed = [str(v) for v in values]
        if unknown := [v for v in typed if v not in FISHER_WEIGHTS]:
            raise MethodConfigError(f"unknown Fisher weights {unknown}; known: {list(FISHER_WEIGHTS)}")
    else:
        try:
            typed = [int(v) if setting == "steps" else float(v) for v in values]
        except (TypeError, ValueError) as error:
            raise MethodConfigError(f"{SWEEP_SETTINGS[setting]} takes numbers, got {list(values)}") from error
        if setting == "steps" and min(typed) < 2:
            raise MethodConfigError(f"steps must be at least 2, got {typed}")
        if min(typed) < 0 or (setting == "eta" and max(typed) > 1):
            raise MethodConfigError(f"{SWEEP_SETTINGS[setting]} must be {'in [0, 1]' if setting == 'eta' else '>= 0'}, got {typed}")
    if len(set(typed)) < len(typed):
        raise MethodConfigError(f"the sweep's values repeat: {typed}")
    return typed


def parse_values(setting: str, text: str) -> list:
    """A comma-separated list ("0.02, 0.05, 0.1"), or a range "start:stop:count" of evenly spaced values."""
    text = text.strip()
    if ":" not in text:
        return [part.strip() for part in text.split(",") if part.strip()]
    try:
        start, stop, count = (float(part) for part in text.split(":"))
    except ValueError as error:
        raise MethodConfigError(f"a range is start:stop:count, e.g. 0.02:0.2:4; got {text!r}") from error
    if count != int(count) or count < 2:
        raise MethodConfigError(f"a range's count is a whole number of at least 2, got {count:g}")
    values = [start + (stop - start) * i / (int(count) - 1) for i in range(int(count))]
    return [round(v) for v in values] if setting == "steps" else [round(v, 6) for v in values]


def _run_key(world: World, request: TaskRequest, label: str, method: str, scheduler: str) -> str:
    """What decides a result: a method's options, scheduler, steps and noise; equal keys are sampled once."""
    options = build_method(method, _settings(request), world.classifier).describe()
    noise = (_eta(request, scheduler), _settings(request).noise_rule)
    return json.dumps([label, options, scheduler, request.steps, noise], sort_keys=True, default=str)


def sweep(
    world: World,
    request: TaskRequest,
    setting: str,
    values: Sequence,
    progress: Callable[[SweepProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SweepOutcome:
    """Every method of `request` at every value of `setting`, from the request's seed, through run_task.

    A method whose options do not change with the setting (FIGD in a sweep of the DSG rate) is sampled once and
    shown in every column. Stopped, the outcome holds the finished columns and the one that was stopped.
    """
    values = check_sweep(request.task, setting, values)
    labels = [label for label, _, _ in planned_runs(request)]
    done: dict[str, SamplingResult] = {}
    outcome = SweepOutcome(setting, values, [], labels)
    for column, value in enumerate(values):
        current = sweep_request(request, setting, value)
        keys = {label: _run_key(world, current, label, method, scheduler) for label, method, scheduler in planned_runs(current)}
        missing = [label for label in labels if keys[label] not in done]
        ticker = _sweep_ticker(progress, labels, missing, column, len(values), current.steps)
        fresh = run_task(world, _only(current, missing), ticker, should_stop) if missing else TaskOutcome([])
        finished = dict(fresh.results)
        done |= {keys[label]: result for label, result in fresh.results if not result.cancelled}
        shown = [(label, finished.get(label) or done.get(keys[label])) for label in labels]
        outcome.columns.append(TaskOutcome([(label, result) for label, result in shown if result is not None], fresh.artefacts))
        if any(result.cancelled for result in finished.values()):
            break
    return outcome


def _only(request: TaskRequest, labels: list[str]) -> TaskRequest:
    """The request restricted to some of its methods (schedulers on the solvers tab)."""
    if request.task == "solvers":
        return replace(request, schedulers=[s for s in request.schedulers if s in labels])
    return replace(request, methods=[m for m in request.methods if m in labels])


def _sweep_ticker(progress, labels: list[str], running: list[str], column: int, columns: int, steps: int):
    """run_task's (done, total) over the methods it runs, as a SweepProgress over the whole sweep."""
    if progress is None:
        return None

    def tick(done: int, total: int) -> None:
        number = min((done - 1) // steps, len(running) - 1)
        step = done - number * steps
        progress(SweepProgress(labels.index(running[number]) + 1, len(labels), column + 1, columns, step, steps))

    return tick

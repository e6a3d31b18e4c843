"""The playground's tasks, each declared once as a TaskSpec, and `run_task`, which runs one.

The app builds a tab per spec and wires its widgets to `run_task`; the benchmarks call it too. Presets
are [ours]: step sizes use FreeDoM's normalised rule (rho_t = k RMS(w_cfg (eps_c - eps_u)) / RMS(g), or
RMS(eps) without CFG), which makes k comparable across worlds; windows and DSG rates follow the papers'
defaults. A new task is one more TaskSpec here, plus its energy in conditions/.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from PIL import Image
from torch import Tensor

from conditions.classes import ClassEnergy
from conditions.control import EdgeEnergy, annotate, map_tensor
from conditions.face import FaceIDEnergy, crop
from conditions.images import to_pil, to_tensor
from conditions.style import StyleEnergy
from guidance.backbone import Control
from guidance.energy import Energy
from guidance.errors import MethodConfigError
from guidance.methods import LIMITS, Settings, Term, Terms, Window, build_method
from guidance.sampling import SamplingResult, StepRecord, combine, sample
from guidance.schedulers.adapters import SCHEDULERS
from guidance.worlds import World

EXAMPLES = Path(__file__).resolve().parents[2] / "assets" / "examples"
ENERGY_METHODS = ("plain", "freedom", "figd", "dps", "freedom+dsg", "figd+dsg", "dps+dsg")
CLASS_METHODS = ("plain", "cfg", "atg", "gfcg", "cfg+gfcg", "atg+gfcg")
GUIDED_BASES = ("plain", "cfg", "atg")  # what guides every solver on a task that runs over schedulers
# A condition on top of a control map guides in its own window with its own k (docs/methods.md, FreeDoM step 7):
# FreeDoM's ControlNet face-ID run guides index 39..0 of 100 with k = 0.08 and no time travel [code]
EXTRA_TERMS = {"face": {"window": Window(0.6, 1.0), "scale": 0.08}}
EXTRAS = ("face", "style")  # the reference conditions a control map can carry on top


# What a sweep may vary (each TaskSpec names its own), its values' count, and the app's default values per setting
SWEEP_SETTINGS = {
    "strength": "strength (x each method's preset)", "scale": "guidance scale k (shared)", "dsg_rate": "DSG rate", "cfg_scale": "CFG scale", "gfcg_max_scale": "GFCG maximum scale",
    "fisher_weight": "FIGD Fisher weight", "steps": "steps / NFE", "eta": "DDIM eta",
}  # fmt: skip
ENERGY_SWEEPS = ("strength", "scale", "dsg_rate", "cfg_scale", "fisher_weight", "steps", "eta")
SWEEP_VALUES = (3, 8)  # the fewest and most values of a sweep
SWEEP_DEFAULTS = {
    "strength": "0.5, 1, 2", "scale": "0.02, 0.05, 0.1", "dsg_rate": "0.05, 0.1, 0.2", "cfg_scale": "1.5, 2.5, 4", "gfcg_max_scale": "0, 1, 2",
    "fisher_weight": "unit, flat-prior, gaussian-data", "steps": "6, 10, 20", "eta": "0.25, 0.5, 1",
}  # fmt: skip


@dataclass
class TaskRequest:
    """One run's inputs. `condition` is a prompt or class name (None: unconditional).

    `strength` None: every method runs at `settings` as given (one shared k and DSG rate). A number: each method with a
    preset strength on the task (TaskSpec.strengths) runs at that strength times this multiplier; 1 is the presets.
    samples, steps, seed, eta and strength are checked against guidance.methods.LIMITS when the request is built.
    """

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
    strength: float | None = None

    def __post_init__(self) -> None:
        spec(self.task)
        for name in ("samples", "steps", "seed", "eta", "strength"):
            if getattr(self, name) is not None:
                LIMITS[name].check(name, getattr(self, name))


@dataclass
class TaskOutcome:
    """Results in run order, and what was used: the face crop, the control map."""

    results: list[tuple[str, SamplingResult]]
    artefacts: dict[str, Image.Image] = field(default_factory=dict)


EnergyBuilder = Callable[[World, TaskRequest, dict[str, Image.Image]], tuple[Energy, Control | None]]


@dataclass(frozen=True)
class TaskSpec:
    """A task, declared once: what it takes, what it offers and selects, its preset, energy and examples.

    inputs: among "reference" (a face or style image), "control_map" (an image or map) and "class" (the condition is
    one of the world's classes). runs_over: "methods", or "schedulers" (every selected solver with one method).
    examples: rows of values for `example_fields`, the first row being every input's default.
    strengths: each guided method's own preset strength, chosen by the presets suite (docs/methods.md, Presets):
    its k, or its DSG rate for a "+dsg" method (`strength_setting`); a request's `strength` multiplies them.
    """

    name: str
    title: str
    intro: str
    inputs: tuple[str, ...]
    choices: tuple[str, ...]
    selected: tuple[str, ...]
    choices_label: str
    preset: Settings
    energy: EnergyBuilder
    example_fields: tuple[str, ...]
    examples: tuple[tuple[Any, ...], ...]
    metric_label: str
    runs_over: str = "methods"
    condition: str = ""  # the embedded world's default class ("" is unconditional)
    sd_prompt: str = ""  # the default prompt on Stable Diffusion (tasks by class offer its class names)
    steps: int = 20
    eta: float = 0.0
    benchmark: str | None = None  # the guidance.bench suite whose committed plots the app shows
    sweeps: tuple[str, ...] = ENERGY_SWEEPS  # the settings its sweep may vary (keys of SWEEP_SETTINGS), the first shown
    strengths: dict[str, float] = field(default_factory=dict)

    @property
    def by_class(self) -> bool:
        return "class" in self.inputs

    @property
    def option_groups(self) -> tuple[str, ...]:
        """Which method settings its choices use: "gradient" (FreeDoM, FIGD, DPS, DSG) and/or "gfcg"."""
        names = "+".join(self.choices)
        return tuple(g for g, part in (("gradient", "freedom"), ("gfcg", "gfcg")) if part in names)


def _need(value, message: str):
    if value is None:
        raise MethodConfigError(message)
    return value


def reference_energy(world: World, kind: str, reference: Image.Image, artefacts: dict) -> Energy:
    """The face-identity or style energy of a reference image; its crop or thumbnail goes to `artefacts`."""
    if kind == "face":
        energy = FaceIDEnergy(reference, world.face_embedder, world.face_detector)
        artefacts["face crop"] = to_pil(crop(to_tensor(reference), energy.box, 160))[0]
        return energy.to(world.backbone.device)
    if kind == "style":
        artefacts["style"] = reference.resize((160, 160))
        return StyleEnergy(reference, world.style_features, world.pattern_judge).to(world.backbone.device)
    raise MethodConfigError(f"unknown extra condition {kind!r}: use one of {EXTRAS}")


def _reference_task(kind: str) -> EnergyBuilder:
    def build(world: World, request: TaskRequest, artefacts: dict) -> tuple[Energy, None]:
        reference = _need(request.reference, f"the {kind} task needs a reference image")
        return reference_energy(world, kind, reference, artefacts), None

    return build


def control_energy(world: World, request: TaskRequest, artefacts: dict) -> tuple[Energy, Control | None]:
    """The edge energy of the map (only measured when it is off), the ControlNet input, and an extra condition."""
    image = _need(request.control_image, "the control-map task needs an image or a map")
    control_map = image if request.annotator == "none" else annotate(image, request.annotator)
    artefacts["control map"] = control_map.resize((world.backbone.image_size,) * 2, Image.NEAREST)
    tensor = map_tensor(control_map, world.backbone.image_size)
    control = world.backbone.prepare_control(tensor) if request.use_controlnet else None
    edges = EdgeEnergy(tensor).to(world.backbone.device)
    terms = [Term(edges)] if request.edge_energy else []
    if request.extra:
        reference = _need(request.reference, f"{request.extra} needs a reference")
        terms.append(Term(reference_energy(world, request.extra, reference, artefacts), **EXTRA_TERMS.get(request.extra, {})))
    return (Terms(terms) if terms else edges), control


def class_energy(world: World, request: TaskRequest, artefacts: dict) -> tuple[Energy, None]:
    """-log p(class) under the world's evaluator, which only measures (GFCG guides with `world.classifier`)."""
    return ClassEnergy(world.evaluator, [_need(request.condition, "pick a class")] * request.samples), None


def _example(name: str) -> str:
    return str(EXAMPLES / name)


def _strengths(k: dict[str, float], dsg_rate: dict[str, float]) -> dict[str, float]:
    """Per-method preset strengths of an energy task: k of FreeDoM, FIGD and DPS, the DSG rate of each "+dsg"; the
    presets suite's picks (docs/methods.md, Presets), DPS taking FreeDoM's (the same step under the normalised rule)."""
    return {**k, **{f"{method}+dsg": rate for method, rate in dsg_rate.items()}}


SPECS = (
    TaskSpec(
        name="face", title="Face",
        intro="Identity guidance: the generated face should be the uploaded person (ID distance, lower is better).",
        inputs=("reference",), choices=ENERGY_METHODS, selected=("freedom", "figd", "figd+dsg"),
        choices_label="Methods (FreeDoM is the baseline)",
        # scale and dsg_rate: the shared values a request without a strength runs at; each method's own are `strengths`
        preset=Settings(scale=0.1, step_rule="normalized", window=(0.0, 0.9), dsg_rate=0.1, noise_rule="freedom"),
        energy=_reference_task("face"), metric_label="ID distance", sd_prompt="a headshot photo of a person",
        example_fields=("reference", "condition"),
        examples=((_example("face_blond.png"), ""), (_example("face_ginger.png"), ""), (_example("face_black_beard.png"), "")),
        eta=0.5,  # FreeDoM's face set-up: DDIM eta 0.5
        strengths=_strengths({"freedom": 0.1, "figd": 0.2, "dps": 0.1}, {"freedom": 0.2, "figd": 0.4, "dps": 0.2}),
    ),
    TaskSpec(
        name="style", title="Style",
        intro=("Style guidance: match the Gram matrices of early features of the uploaded image (style distance, lower is better; "
               "on the embedded world also pattern agreement, the share of samples with the reference's pattern, higher is better)."),
        inputs=("reference",), choices=ENERGY_METHODS, selected=("freedom", "figd", "figd+dsg"),
        choices_label="Methods (FreeDoM is the baseline)",
        # shared scale and dsg_rate as on face; repeats 3 on (0.3, 0.6) and the window: FreeDoM's SD style script
        preset=Settings(scale=0.1, step_rule="normalized", window=(0.3, 0.7), repeats=3, travel_window=(0.3, 0.6), dsg_rate=0.1),
        energy=_reference_task("style"), metric_label="style distance", sd_prompt="a portrait of a person, oil painting",
        example_fields=("reference", "condition"),
        examples=tuple((_example(f"style_{name}.png"), "") for name in ("stripes", "checker", "dots")),
        eta=1.0,  # DSG's official style runs: DDIM eta 1
        strengths=_strengths({"freedom": 0.1, "figd": 0.2, "dps": 0.1}, {"freedom": 0.1, "figd": 0.4, "dps": 0.1}),
    ),
    TaskSpec(
        name="control", title="Control map",
        intro="Follow a control map with the ControlNet and/or the training-free edge energy (edge F1, higher is better).",
        inputs=("control_map",), choices=ENERGY_METHODS, selected=("plain", "freedom", "figd"),
        choices_label="Methods (plain: the ControlNet alone; FreeDoM is the baseline)",
        preset=Settings(scale=0.2, step_rule="normalized", window=(0.0, 0.8), dsg_rate=0.1),
        energy=control_energy, metric_label="edge F1", sd_prompt="a portrait of a person",
        example_fields=("control_image", "annotator", "extra"),
        examples=(
            (_example("control_face.png"), "canny", "none"), (_example("control_canny.png"), "none", "none"),
            (_example("control_canny.png"), "none", "face"),
        ),
        eta=1.0,
        strengths=_strengths({"freedom": 0.1, "figd": 0.2, "dps": 0.1}, {"freedom": 0.1, "figd": 0.1, "dps": 0.1}),
    ),
    TaskSpec(
        name="classes", title="Classes",
        intro="Gradient-free classifier guidance (GFCG) against CFG and Autoguidance (class probability under a separate evaluator).",
        inputs=("class",), choices=CLASS_METHODS, selected=("cfg", "atg", "atg+gfcg"),
        choices_label="Methods (CFG is the baseline; cfg+gfcg / atg+gfcg pick GFCG's base)",
        # one call and interval 3: the gfcg benchmark's pick, CFG+GFCG's accuracy at 1.23x CFG's step (docs/methods.md, GFCG)
        preset=Settings(cfg_scale=2.5, gfcg_max_scale=2.0, gfcg_threshold=0.05, gfcg_one_call=True, gfcg_interval=3),
        energy=class_energy, metric_label="class probability",
        condition="ginger hair", example_fields=("condition", "seed"),
        examples=(("ginger hair", 0), ("brown hair", 1), ("sunglasses", 2)), benchmark="gfcg",
        sweeps=("gfcg_max_scale", "cfg_scale", "steps", "eta"),
    ),
    TaskSpec(
        name="solvers", title="Solvers",
        intro="EVODiff against DDIM, DPM-Solver++(2M) and UniPC at the same number of steps (NFE).",
        inputs=("class",), choices=SCHEDULERS, selected=("ddim", "dpmsolver++", "unipc", "evodiff"),
        choices_label="Solvers (DDIM is the baseline)", runs_over="schedulers",
        preset=Settings(cfg_scale=2.5), energy=class_energy, metric_label="class probability",
        condition="black hair", example_fields=("condition", "nfe"),
        examples=(("black hair", 10), ("blue hair", 6), ("bald", 15)), steps=10, benchmark="solvers",
        sweeps=("steps", "cfg_scale"),
    ),
)  # fmt: skip
TASKS = tuple(s.name for s in SPECS)
PRESETS = {s.name: s.preset for s in SPECS}
TASK_SWEEPS = {s.name: s.sweeps for s in SPECS}


def spec(task: str) -> TaskSpec:
    """The task's spec; MethodConfigError naming the known tasks otherwise."""
    for candidate in SPECS:
        if candidate.name == task:
            return candidate
    raise MethodConfigError(f"unknown task {task!r}; known: {TASKS}")


def preset(task: str, **overrides) -> Settings:
    """The task's preset with `overrides`; every value is checked (guidance.methods.Settings)."""
    return replace(spec(task).preset, **overrides)


def build_energy(world: World, request: TaskRequest) -> tuple[Energy, Control | None, dict[str, Image.Image]]:
    """The task's energy, the ControlNet input, and pictures of what was used."""
    artefacts: dict[str, Image.Image] = {}
    energy, control = spec(request.task).energy(world, request, artefacts)
    return energy, control, artefacts


def runs_of(request: TaskRequest) -> list[tuple[str, str, str]]:
    """(label, method, scheduler) of each run: every method, or every scheduler with the one method."""
    if spec(request.task).runs_over == "schedulers":
        return [(s, request.methods[0], s) for s in request.schedulers] if request.methods else []
    return [(m, m, request.scheduler) for m in request.methods]


def strength_setting(method: str) -> str:
    """The setting that sets a method's strength: the DSG rate under DSG (k then only weighs terms), else k."""
    return "dsg_rate" if "dsg" in method.split("+") else "scale"


def _settings(request: TaskRequest) -> Settings:
    """The request's settings; without a condition there is nothing for CFG to contrast."""
    return request.settings if request.condition is not None else replace(request.settings, cfg_scale=1.0)


def method_settings(request: TaskRequest, method: str) -> Settings:
    """The settings `method` runs with: the request's, at the method's preset strength times `request.strength`
    where both are given; Settings checks the product."""
    settings, own = _settings(request), spec(request.task).strengths.get(method)
    if request.strength is None or own is None:
        return settings
    return replace(settings, **{strength_setting(method): own * request.strength})


def _eta(request: TaskRequest, scheduler: str) -> float:
    return request.eta if scheduler in ("ddim", "ddpm") else 0.0


def run_task(
    world: World,
    request: TaskRequest,
    progress: Callable[[int, int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_step: Callable[[str, StepRecord, Tensor | None], None] | None = None,
) -> TaskOutcome:
    """Runs every requested method (or scheduler) from the same seed.

    `progress(done, total, label)` counts steps over all runs and names the run in progress. `on_step(label, record,
    x0_hat)` sees every step, with x0_hat (latents, decoded after the run into the trajectory) at `request.snapshots`
    evenly spaced steps and None elsewhere.
    """
    energy, control, artefacts = build_energy(world, request)
    conditions = [request.condition] * request.samples
    runs = runs_of(request)
    if not runs:
        raise MethodConfigError("select at least one method")
    total, results = len(runs) * request.steps, []
    for number, (label, method_name, scheduler) in enumerate(runs):
        settings = method_settings(request, method_name)
        method = build_method(method_name, settings, world.classifier)
        tick = None if progress is None else (lambda i, n, k=number, name=label: progress(k * request.steps + i, total, name))
        hook = None if on_step is None else (lambda record, picture, name=label: on_step(name, record, picture))
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

@dataclass
class SweepProgress:
    """Where a sweep is: method m of M, value v of V, seed r of R, step s of S (all counted from 1)."""

    method: int
    methods: int
    value: int
    values: int
    step: int
    steps: int
    seed: int = 1
    seeds: int = 1

    def __str__(self) -> str:
        seed = f", seed {self.seed} of {self.seeds}" if self.seeds > 1 else ""
        return f"method {self.method} of {self.methods}, value {self.value} of {self.values}{seed}, step {self.step} of {self.steps}"


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
    """The request with one setting changed; TaskRequest and Settings check the value (guidance.methods.LIMITS).

    A sweep of k or of the DSG rate sets it for every method (no per-method presets); one of the strength multiplies
    each method's preset."""
    if setting in ("steps", "eta", "strength"):
        return replace(request, **{setting: value})
    shared = {"strength": None} if setting in ("scale", "dsg_rate") else {}
    return replace(request, settings=replace(request.settings, **{setting: value}), **shared)


def check_sweep(request: TaskRequest, setting: str, values: Sequence, counts: tuple[int, int] = SWEEP_VALUES) -> list:
    """The values, typed for the setting and each checked as the request's would be; MethodConfigError names what is wrong.

    `counts`: the fewest and most values allowed (the app's by default; guidance.sweep bounds its cells instead)."""
    allowed = spec(request.task).sweeps
    if setting not in allowed:
        raise MethodConfigError(f"the {request.task} task sweeps one of {list(allowed)}, not {setting!r}")
    low, high = counts
    if not low <= len(values) <= high:
        raise MethodConfigError(f"a sweep takes {low} to {high} values, got {len(values)}")
    try:
        typed = [str(v) if setting == "fisher_weight" else int(v) if setting == "steps" else float(v) for v in values]
    except (TypeError, ValueError) as error:
        raise MethodConfigError(f"{SWEEP_SETTINGS[setting]} takes numbers, got {list(values)}") from error
    if len(set(typed)) < len(typed):
        raise MethodConfigError(f"the sweep's values repeat: {typed}")
    for value in typed:
        sweep_request(request, setting, value)
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
    options = build_method(method, method_settings(request, method), world.classifier).describe()
    noise = (_eta(request, scheduler), _settings(request).noise_rule)
    return json.dumps([label, options, scheduler, request.steps, noise], sort_keys=True, default=str)


def sweep(
    world: World,
    request: TaskRequest,
    setting: str,
    values: Sequence,
    progress: Callable[[SweepProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    seeds: int = 1,
) -> SweepOutcome:
    """Every method of `request` at every value of `setting`, through run_task from `seeds` seeds: the request's seed
    and the ones after it, each with the request's samples. A cell holds every seed's samples, in seed order (with
    one sample per seed, the cells of `python -m guidance.sweep --seeds SEED:SEED+seeds`).

    A method whose options do not change with the setting (FIGD in a sweep of the DSG rate) is sampled once and
    shown in every column. Stopped, the outcome holds the finished columns and the one that was stopped.
    """
    values = check_sweep(request, setting, values)
    if seeds < 1:
        raise MethodConfigError(f"a sweep takes at least 1 seed per value, got {seeds}")
    LIMITS["seed"].check("seed", request.seed + seeds - 1)
    labels = [label for label, _, _ in runs_of(request)]
    done: dict[str, SamplingResult] = {}
    outcome = SweepOutcome(setting, values, [], labels)
    for column, value in enumerate(values):
        current = sweep_request(request, setting, value)
        keys = {label: _run_key(world, current, label, method, scheduler) for label, method, scheduler in runs_of(current)}
        missing = [label for label in labels if keys[label] not in done]
        ticker = partial(_sweep_ticker, progress, labels, missing, column, len(values), current.steps, seeds=seeds)  # ticker(seed)
        fresh = _over_seeds(world, _only(current, missing), seeds, ticker, should_stop) if missing else TaskOutcome([])
        finished = dict(fresh.results)
        done |= {keys[label]: result for label, result in fresh.results if not result.cancelled}
        shown = [(label, finished.get(label) or done.get(keys[label])) for label in labels]
        outcome.columns.append(TaskOutcome([(label, result) for label, result in shown if result is not None], fresh.artefacts))
        if any(result.cancelled for result in finished.values()):
            break
    return outcome


def _only(request: TaskRequest, labels: list[str]) -> TaskRequest:
    """The request restricted to some of its runs (methods, or schedulers on a task that runs over them)."""
    if spec(request.task).runs_over == "schedulers":
        return replace(request, schedulers=[s for s in request.schedulers if s in labels])
    return replace(request, methods=[m for m in request.methods if m in labels])


def _over_seeds(world: World, request: TaskRequest, seeds: int, ticker: Callable, should_stop) -> TaskOutcome:
    """run_task from the request's seed and the `seeds - 1` after it; per run, one result with every seed's samples
    (guidance.sampling.combine), cancelled where a stop left it without all of its seeds."""
    outcomes = []
    for offset in range(seeds):
        outcomes.append(run_task(world, replace(request, seed=request.seed + offset), ticker(offset), should_stop))
        if any(result.cancelled for _, result in outcomes[-1].results):
            break
    combined = []
    for label, _ in outcomes[0].results:
        runs = [dict(outcome.results)[label] for outcome in outcomes if label in dict(outcome.results)]
        result = combine(runs)
        result.cancelled = result.cancelled or len(runs) < seeds
        combined.append((label, result))
    return TaskOutcome(combined, outcomes[0].artefacts)


def _sweep_ticker(progress, labels: list[str], running: list[str], column: int, columns: int, steps: int, seed: int = 0,
                  seeds: int = 1):  # fmt: skip
    """run_task's (done, total, label) over the runs it does, as a SweepProgress over the whole sweep."""
    if progress is None:
        return None

    def tick(done: int, total: int, label: str) -> None:
        step = done - running.index(label) * steps
        progress(SweepProgress(labels.index(label) + 1, len(labels), column + 1, columns, step, steps, seed + 1, seeds))

    return tick

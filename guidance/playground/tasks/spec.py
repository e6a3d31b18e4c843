"""A task, declared once (TaskSpec), one run's inputs (TaskRequest, or the request of its kind), and the tasks by name.

A task is registered where it is declared (`register_task`, guidance/playground/tasks/catalog.py for the shipped
ones); `spec(name)` finds it, and a TaskRequest names one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Any

from PIL import Image

from guidance.backbone import Control
from guidance.energy import Energy
from guidance.errors import MethodConfigError
from guidance.methods import LIMITS, Option, Settings, options_of
from guidance.playground.tasks.inputs import METHOD_LIST, PROMPT, ClassCondition, MethodList, Prompt, TaskInput
from guidance.sampling import SamplingResult
from guidance.worlds import World

# What the sweep of an energy task may vary (TaskSpec.sweeps; the labels: guidance.methods.settings.SWEEPS)
ENERGY_SWEEPS = ("strength", "scale", "dsg_rate", "cfg_scale", "fisher_weight", "steps", "eta")
RUN_FIELDS = ("samples", "steps", "seed", "eta", "strength")  # checked against guidance.methods.LIMITS


@dataclass
class TaskRequest:
    """One run's inputs that every task shares: the task, what it runs, the condition and the run's settings, checked
    when built. A task whose inputs take more (an image, a control map, solvers) has a request of its own that adds
    them (ReferenceRequest, ControlRequest, SolverRequest; TaskSpec.request names it).

    Attributes:
        task: the name of a registered task.
        methods: the methods to run (under SchedulerList, the one method every solver runs with).
        condition: a prompt or class name; None is unconditional.
        samples: images per run.
        steps: denoising steps per run.
        scheduler: the solver every method runs with (guidance.schedulers.adapters.SCHEDULERS).
        eta: DDIM's eta (`run_eta`: 0 on solvers that take none).
        seed: the seed of the initial noise, the same for every run.
        settings: the methods' settings, shared by every run.
        snapshots: x0_hat decoded at this many evenly spaced steps: the live preview and the trajectory.
        strength: None: every method runs at `settings` as given (one shared scale and dsg_rate). A number: each
            method with a guiding value on the task (TaskSpec.guiding) runs at that value times this multiplier; 1 is
            the presets.

    Raises:
        MethodConfigError: the task is unknown or takes another kind of request, or samples, steps, seed, eta or
            strength lies outside its bound (guidance.methods.LIMITS).
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
    snapshots: int = 0
    strength: float | None = None

    def __post_init__(self) -> None:
        kind = spec(self.task).request
        if type(self) is not kind:
            raise MethodConfigError(f"the {self.task} task takes a {kind.__name__}, not a {type(self).__name__}")
        for name in RUN_FIELDS:
            if getattr(self, name) is not None:
                LIMITS[name].check(name, getattr(self, name))


@dataclass
class ReferenceRequest(TaskRequest):
    """A request of a task guided by a reference image (the face and style tabs).

    Attributes:
        reference: the face or style image.
    """

    reference: Image.Image | None = None


@dataclass
class ControlRequest(TaskRequest):
    """A request of a task guided by a control map (the control tab).

    Attributes:
        control_image: an image to annotate, or a ready map.
        annotator: "none": control_image is already a map.
        use_controlnet: feed the map to the ControlNet.
        edge_energy: guide by the map's edge energy (off, it only measures).
        extra: "face" or "style" on top of the map, with `reference`.
        reference: the extra's face or style image.
    """

    control_image: Image.Image | None = None
    annotator: str = "canny"
    use_controlnet: bool = True
    edge_energy: bool = True
    extra: str | None = None
    reference: Image.Image | None = None


@dataclass
class SolverRequest(TaskRequest):
    """A request that runs every selected solver with one method (the solvers tab).

    Attributes:
        schedulers: the solvers to run.
        grid: the time grid every solver shares (guidance.schedulers.grids.GRIDS; "own": each solver's own).
    """

    schedulers: list[str] = field(default_factory=lambda: ["ddim", "dpmsolver++", "unipc", "evodiff"])
    grid: str = "own"


def make_request(**given: Any) -> TaskRequest:
    """The request of the task that `given["task"]` names (TaskSpec.request), from the fields its inputs gave.

    Raises:
        MethodConfigError: a field that the task's request does not have, or as TaskRequest raises it.
    """
    kind = spec(given.get("task", "")).request
    unknown = sorted(set(given) - {f.name for f in fields(kind)})
    if unknown:
        raise MethodConfigError(f"the {given['task']} task takes no {', '.join(unknown)} (its request: {kind.__name__})")
    return kind(**given)


@dataclass
class TaskOutcome:
    """What a request gave.

    Attributes:
        results: (label, SamplingResult) of each run, in run order.
        artefacts: pictures of what was used ("face crop", "style", "control map"), by caption.
    """

    results: list[tuple[str, SamplingResult]]
    artefacts: dict[str, Image.Image] = field(default_factory=dict)


# A task's energy (TaskSpec.energy): from the world, the request and a dict that receives pictures of what was used
# (by caption), the energy that guides and measures every run, and the ControlNet input (None: no ControlNet).
EnergyBuilder = Callable[[World, TaskRequest, dict[str, Image.Image]], tuple[Energy, Control | None]]


@dataclass(frozen=True)
class TaskSpec:
    """A task, declared once: what it takes, what it offers and selects, its preset, energy and examples.

    Attributes:
        name: the task's name: its API endpoint and TaskRequest.task.
        title: the tab's title.
        intro: the line under the title: what the task does and its metric.
        inputs: the kinds of input it takes (guidance.playground.tasks.inputs: ReferenceImage, ControlMap,
            ClassCondition, SchedulerList, or a new TaskInput); each builds its widgets, parses their values and feeds
            the sweep command.
        choices: the methods (or, with SchedulerList, solvers) it offers.
        selected: those selected at first.
        choices_label: the label of their selector.
        preset: its methods' settings.
        energy: builds its energy (EnergyBuilder).
        example_fields: the inputs, by API name, that its examples set.
        examples: rows of values for `example_fields`, the first row being every input's default.
        metric_label: what its energy measures, as the tab names it.
        steps: its default number of steps.
        eta: its default DDIM eta.
        guiding: each guided method's own value of its guiding setting (`guiding_setting`: its scale, or its dsg_rate
            for a "+dsg" method), chosen by the presets suite (docs/methods.md, Presets); a request's `strength`
            multiplies them.
        request: the kind of request it takes (TaskRequest, or ReferenceRequest, ControlRequest, SolverRequest, ...).
    """

    name: str
    title: str
    intro: str
    inputs: tuple[TaskInput, ...]
    choices: tuple[str, ...]
    selected: tuple[str, ...]
    choices_label: str
    preset: Settings
    energy: EnergyBuilder
    example_fields: tuple[str, ...]
    examples: tuple[tuple[Any, ...], ...]
    metric_label: str
    condition: str = ""  # the embedded world's default class ("" is unconditional)
    sd_prompt: str = ""  # the default prompt on Stable Diffusion (tasks by class offer its class names)
    steps: int = 20
    eta: float = 0.0
    benchmark: str | None = None  # the guidance.bench suite whose committed plots the app shows
    sweeps: tuple[str, ...] = ENERGY_SWEEPS  # the settings its sweep may vary (keys of SWEEP_SETTINGS), the first shown
    guiding: dict[str, float] = field(default_factory=dict)
    request: type[TaskRequest] = TaskRequest  # the request it takes: TaskRequest's fields and those its inputs add

    def _role(self, role: str, default: TaskInput) -> TaskInput:
        return next((kind for kind in self.inputs if kind.role == role), default)

    @property
    def conditioning(self) -> Prompt:
        """The input that is its condition: a prompt or class by default, ClassCondition where listed."""
        return self._role("condition", PROMPT)

    @property
    def runs(self) -> MethodList:
        """What a request runs over: its methods by default, every solver where SchedulerList is listed."""
        return self._role("runs", METHOD_LIST)

    @property
    def all_inputs(self) -> tuple[TaskInput, ...]:
        """Its inputs with the roles' defaults where it lists none."""
        defaults = [kind for kind in (PROMPT, METHOD_LIST) if not any(i.role == kind.role for i in self.inputs)]
        return (*self.inputs, *defaults)

    @property
    def first(self) -> dict[str, Any]:
        """The first example as a dict: every input's default."""
        return dict(zip(self.example_fields, self.examples[0]))

    @property
    def by_class(self) -> bool:
        """Whether its condition is one of the world's classes (ClassCondition)."""
        return isinstance(self.conditioning, ClassCondition)

    @property
    def runs_over(self) -> str:
        """ "methods", or "schedulers" (every selected solver with one method)."""
        return self.runs.over

    @property
    def options(self) -> list[Option]:
        """The method options its methods' parts declare (guidance.methods.options), each once."""
        return options_of(self.runs.method_names(self))


# ----------------------------------------------------------------------------- the tasks by name

SPECS: list[TaskSpec] = []
TASKS: list[str] = []
PRESETS: dict[str, Settings] = {}
TASK_SWEEPS: dict[str, tuple[str, ...]] = {}


def register_task(task: TaskSpec) -> TaskSpec:
    """Adds a task to SPECS (the app's tabs), TASKS, PRESETS and TASK_SWEEPS.

    Args:
        task: the task's spec.

    Returns:
        The same spec.

    Raises:
        MethodConfigError: a task of that name is registered already.
    """
    if task.name in TASKS:
        raise MethodConfigError(f"a task named {task.name!r} exists already")
    SPECS.append(task)
    TASKS.append(task.name)
    PRESETS[task.name], TASK_SWEEPS[task.name] = task.preset, task.sweeps
    return task


def unregister_task(name: str) -> None:
    """Undoes register_task.

    Args:
        name: the task's name; an unknown name changes nothing.
    """
    SPECS[:] = [task for task in SPECS if task.name != name]
    TASKS[:] = [task.name for task in SPECS]
    PRESETS.pop(name, None)
    TASK_SWEEPS.pop(name, None)


@contextmanager
def registered(task: TaskSpec) -> Iterator[TaskSpec]:
    """`task` registered for the block's duration (a test's, a notebook's), as register_task registers it (and raises).

    Yields:
        The same spec.
    """
    register_task(task)
    try:
        yield task
    finally:
        unregister_task(task.name)


def spec(task: str) -> TaskSpec:
    """A registered task's spec.

    Args:
        task: the task's name.

    Returns:
        Its TaskSpec.

    Raises:
        MethodConfigError: no task has that name (the message names the known ones).
    """
    for candidate in SPECS:
        if candidate.name == task:
            return candidate
    raise MethodConfigError(f"unknown task {task!r}; known: {tuple(TASKS)}")


def preset(task: str, **overrides) -> Settings:
    """A task's preset with some settings changed.

    Args:
        task: the task's name.
        **overrides: Settings fields and their values.

    Returns:
        The Settings.

    Raises:
        MethodConfigError: an unknown task, or a value that Settings rejects.
    """
    return replace(spec(task).preset, **overrides)

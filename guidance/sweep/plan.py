"""What a sweep at scale runs: its inputs (as a command line gives them), its cells (method, value, seed), and
every bound checked before anything runs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from guidance.errors import MethodConfigError
from guidance.methods import LIMITS, Settings, build_method
from guidance.playground.tasks import (
    TaskRequest,
    check_sweep,
    make_request,
    method_settings,
    parse_values,
    preset,
    run_eta,
    runs_of,
    spec,
    sweep_request,
)
from guidance.playground.tasks.command import SweepInputs
from guidance.playground.tasks.run import GUIDING_SETTINGS
from guidance.schedulers.adapters import check_noise_rule
from guidance.worlds import World

MAX_CELLS = 4096  # cells per run unless --max-cells says more
GRID_SEEDS = 4  # grid.png shows the first seeds of the plan


@dataclass(frozen=True)
class Cell:
    """One sample: a method (or solver) at one value of the setting, from one seed."""

    method: str
    value: Any
    seed: int

    @property
    def key(self) -> str:
        """What names the cell among a sweep's finished cells."""
        return json.dumps([self.method, self.value, self.seed])


@dataclass(frozen=True)
class SweepPlan:
    """A sweep's cells: every method at every value of `setting` from every seed, around one base request.

    `inputs` (JSON-ready, files by path and content hash) and the request decide every cell together with its key;
    `config()` is what a resumed run must share with the finished cells.
    """

    request: TaskRequest
    setting: str
    values: tuple
    methods: tuple[str, ...]
    seeds: range
    inputs: dict = field(default_factory=dict)

    def cells(self) -> list[Cell]:
        """Every cell, seed by seed (each seed's methods and values together), so that contiguous shares cost alike."""
        return [Cell(method, value, seed) for seed in self.seeds for method in self.methods for value in self.values]

    @property
    def grid_seeds(self) -> tuple[int, ...]:
        """The seeds whose images grid.png shows."""
        return tuple(self.seeds[:GRID_SEEDS])

    def cell_request(self, cell: Cell) -> TaskRequest:
        """The request of one cell: one sample of one method (or solver) at its value, from its seed."""
        request = sweep_request(self.request, self.setting, cell.value)
        return replace(request, samples=1, seed=cell.seed, **spec(request.task).runs.single(cell.method))

    def config(self) -> dict:
        """What decides every cell besides its method, value and seed, JSON-ready (the swept setting left out)."""
        request = self.request
        fixed = {
            "steps": request.steps,
            "eta": request.eta,
            "scheduler": request.scheduler,
            "condition": request.condition,
            "strength": request.strength,
            "settings": asdict(request.settings),
        }
        fixed.pop(self.setting, None)
        fixed["settings"].pop(self.setting, None)
        if self.setting in GUIDING_SETTINGS:  # a shared scale or dsg_rate replaces the per-method guiding values
            fixed.pop("strength")
        return json.loads(json.dumps({"task": request.task, "setting": self.setting, **fixed, "inputs": self.inputs}))


# ----------------------------------------------------------------------------- parsing


def parse_seeds(text: str) -> range:
    """Seeds "start:stop" (stop excluded), each within guidance.methods.LIMITS["seed"].

    Args:
        text: e.g. "0:64".

    Returns:
        range(start, stop), not empty.
    """
    try:
        start, stop = (int(part) for part in text.split(":"))
    except ValueError as error:
        raise MethodConfigError(f"seeds are start:stop, e.g. 0:64; got {text!r}") from error
    if stop <= start:
        raise MethodConfigError(f"seeds {text!r} name none: stop must be above start")
    LIMITS["seed"].check("seed", start)
    LIMITS["seed"].check("seed", stop - 1)
    return range(start, stop)


def parse_methods(task: str, text: str) -> tuple[str, ...]:
    """The methods of `--methods`.

    Args:
        task: the task, whose choices (methods, or solvers on a task that runs over them) are allowed.
        text: comma-separated names.

    Raises:
        MethodConfigError: none given, one the task does not offer, or one twice.
    """
    methods = tuple(part.strip() for part in text.split(",") if part.strip())
    choices = spec(task).choices
    unknown = [m for m in methods if m not in choices]
    if not methods or unknown:
        raise MethodConfigError(f"the {task} task offers {', '.join(choices)}; got {text!r}")
    if len(set(methods)) < len(methods):
        raise MethodConfigError(f"methods repeat: {text!r}")
    return methods


def parse_settings(task: str, pairs: tuple[tuple[str, str], ...]) -> Settings:
    """The task's preset with `name=value` overrides, each typed as the preset's field (a window as "start,end");
    Settings checks every value.

    Args:
        task: the task whose preset is overridden.
        pairs: (name, text) pairs.

    Returns:
        The checked Settings.
    """
    base = preset(task)
    overrides = {}
    for name, text in pairs:
        if not hasattr(base, name):
            raise MethodConfigError(f"--set {name}: no such setting; known: {', '.join(asdict(base))}")
        overrides[name] = _typed(name, text, getattr(base, name))
    return preset(task, **overrides)


def _typed(name: str, text: str, like: Any) -> Any:
    """`text` as a value of the type of `like` (bool, int, float, str, or a tuple of floats)."""
    try:
        if isinstance(like, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if isinstance(like, tuple) or (like is None and "," in text):
            return tuple(float(part) for part in text.split(","))
        if isinstance(like, int):
            number = float(text)
            if not number.is_integer():
                raise ValueError(text)
            return int(number)
        if isinstance(like, float):
            return float(text)
        return text
    except ValueError as error:
        raise MethodConfigError(f"--set {name}={text}: not a value like {like!r}") from error


def base_request(inputs: SweepInputs, class_names: tuple[str, ...] = ()) -> tuple[TaskRequest, dict]:
    """The request every cell starts from, and the inputs as the plan records them.

    Args:
        inputs: the sweep's inputs; None fields take the task's own (its first example's files).
        class_names: the world's classes on Stable Diffusion (a class task's default condition); () on the
            embedded world, whose defaults are the task's.

    Returns:
        (request, recorded inputs): files by path and hash, and every other input as given.
    """
    task = spec(inputs.task)
    first = task.first
    # the given condition, else the task's: its example's (embedded), its prompt or first class (Stable Diffusion)
    condition = inputs.condition if inputs.condition is not None else task.conditioning.default(task, first, class_names)
    request: dict[str, Any] = {
        "task": task.name,
        "methods": list(task.selected),
        "condition": condition or None,
        "steps": inputs.steps or int(first.get(task.runs.steps_key, task.steps)),
        "eta": task.eta if inputs.eta is None else inputs.eta,
        "settings": parse_settings(task.name, inputs.settings),
        "strength": inputs.strength,
    }
    recorded: dict[str, Any] = {"world": inputs.world}
    recorded |= {name: getattr(inputs, name) for name in ("controlnet_model", "tiny_vae") if getattr(inputs, name) is not None}
    for kind in task.all_inputs:  # each of the task's inputs from the command line (its files recorded by hash)
        request |= kind.from_sweep(task, inputs, first, recorded)
    return make_request(**request), recorded


# ----------------------------------------------------------------------------- the plan


def plan_sweep(
    request: TaskRequest,
    setting: str,
    values_text: str,
    methods: tuple[str, ...],
    seeds: range,
    max_cells: int = MAX_CELLS,
    inputs: dict | None = None,
) -> SweepPlan:
    """A checked plan: the setting is one the task sweeps, every value lies within its bounds for every method (the
    per-method guiding values included), the seeds within theirs, and the cells number at most `max_cells`.

    Args:
        request: the base request (`base_request`).
        setting: one of the task's sweepable settings (TaskSpec.sweeps).
        values_text: "0.05,0.1,0.2" or "start:stop:count" (guidance.playground.tasks.parse_values).
        methods: the methods (or solvers) to run, each one the task offers.
        seeds: the seeds of every (method, value).
        max_cells: the most cells allowed.
        inputs: the recorded inputs (`base_request`).

    Returns:
        The plan. Raises MethodConfigError naming what is wrong.
    """
    if not 1 <= max_cells:
        raise MethodConfigError(f"--max-cells must be at least 1, got {max_cells}")
    values = tuple(check_sweep(request, setting, parse_values(setting, values_text), counts=(1, max_cells)))
    count = len(methods) * len(values) * len(seeds)
    if count > max_cells:
        raise MethodConfigError(
            f"{len(methods)} methods x {len(values)} values x {len(seeds)} seeds = {count} cells; "
            f"at most {max_cells} per run (--max-cells raises it)"
        )
    plan = SweepPlan(request, setting, values, tuple(methods), seeds, inputs or {})
    for method in methods:
        for value in values:
            current = plan.cell_request(Cell(method, value, seeds[0]))
            method_settings(current, current.methods[0])  # the product of a strength and a preset, checked
    return plan


def check_plan(world: World, plan: SweepPlan) -> None:
    """Check that every (method, value) builds on `world` and can run with its scheduler and eta, as `sample` would.

    Args:
        world: the loaded world (its classifier builds GFCG).
        plan: the sweep.

    Raises:
        MethodConfigError: the first combination that cannot run.
    """
    for method in plan.methods:
        for value in plan.values:
            request = plan.cell_request(Cell(method, value, plan.seeds[0]))
            ((_, name, scheduler),) = runs_of(request)
            settings = method_settings(request, name)
            eta = run_eta(request, scheduler)
            build_method(name, settings, world.classifier).check(scheduler, eta)
            check_noise_rule(settings.noise_rule, scheduler, eta)

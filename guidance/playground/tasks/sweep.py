"""Sweeps: every method of a request at every value of one setting, as a grid of TaskOutcomes.

What a sweep may vary and its label are declared with each option (guidance.methods.options: `sweep`); a task names
the ones its sweep offers (TaskSpec.sweeps). `request` is a TaskRequest and `setting` a key of SWEEP_SETTINGS
wherever a function takes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial

from guidance.errors import MethodConfigError
from guidance.methods import LIMITS, OPTIONS, build_method
from guidance.methods.settings import SWEEP_DEFAULTS, SWEEPS
from guidance.playground.tasks.run import GUIDING_SETTINGS, method_settings, request_settings, run_eta, run_task, runs_of
from guidance.playground.tasks.spec import TaskOutcome, TaskRequest, spec
from guidance.recording import combine
from guidance.sampling import SamplingResult
from guidance.worlds import World

SWEEP_SETTINGS = SWEEPS  # what a sweep may vary, with its label (each task names its own: TaskSpec.sweeps)
SWEEP_VALUES = (3, 8)  # the fewest and most values of a sweep
__all__ = [
    "SWEEP_DEFAULTS",
    "SWEEP_SETTINGS",
    "SWEEP_VALUES",
    "SweepOutcome",
    "SweepProgress",
    "check_sweep",
    "parse_values",
    "sweep",
    "sweep_request",
]


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
        return (
            f"method {self.method} of {self.methods}, value {self.value} of {self.values}{seed}, step {self.step} of {self.steps}"
        )


@dataclass
class SweepOutcome:
    """A sweep's results: one TaskOutcome per finished (or stopped) value, the grid's columns, its runs the rows.

    Attributes:
        setting: the setting swept.
        values: its values, typed and checked, in order.
        columns: one TaskOutcome per value reached, in value order.
        labels: the run labels, in row order.
    """

    setting: str
    values: list
    columns: list[TaskOutcome]
    labels: list[str]

    @property
    def cancelled(self) -> bool:
        """Whether a stop cut the sweep short."""
        return any(result.cancelled for column in self.columns for _, result in column.results)

    def cell(self, label: str, column: int) -> SamplingResult | None:
        """One cell of the grid.

        Args:
            label: the run's label (its row).
            column: the value's index.

        Returns:
            Its SamplingResult, or None where the sweep stopped before it.
        """
        return dict(self.columns[column].results).get(label) if column < len(self.columns) else None


def sweep_request(request: TaskRequest, setting: str, value) -> TaskRequest:
    """A request with one setting changed.

    A sweep of the scale or of the dsg_rate sets it for every method (no per-method guiding values); one of the strength multiplies
    each method's preset.

    Args:
        setting: a run's value (steps, eta, strength) or a Settings field.
        value: its value.

    Returns:
        A new TaskRequest.

    Raises:
        MethodConfigError: the value lies outside its bound (guidance.methods.LIMITS).
    """
    if not OPTIONS[setting].setting:  # a run's value: steps, eta, strength
        return replace(request, **{setting: value})
    shared = {"strength": None} if setting in GUIDING_SETTINGS else {}
    return replace(request, settings=replace(request.settings, **{setting: value}), **shared)


def check_sweep(request: TaskRequest, setting: str, values: Sequence, counts: tuple[int, int] = SWEEP_VALUES) -> list:
    """A sweep's values, typed for the setting and each checked as the request's would be.

    Args:
        values: the values, as given (numbers or their text).
        counts: the fewest and most values allowed (the app's by default; guidance.sweep bounds its cells instead).

    Returns:
        The typed values, in order.

    Raises:
        MethodConfigError: the task does not sweep the setting, there are too few or too many values, or a value is
            not a number, repeats or lies outside its bound.
    """
    allowed = spec(request.task).sweeps
    if setting not in allowed:
        raise MethodConfigError(f"the {request.task} task sweeps one of {list(allowed)}, not {setting!r}")
    low, high = counts
    if not low <= len(values) <= high:
        raise MethodConfigError(f"a sweep takes {low} to {high} values, got {len(values)}")
    try:
        typed = [OPTIONS[setting].typed(v) for v in values]
    except (TypeError, ValueError) as error:
        raise MethodConfigError(f"{SWEEP_SETTINGS[setting]} takes numbers, got {list(values)}") from error
    if len(set(typed)) < len(typed):
        raise MethodConfigError(f"the sweep's values repeat: {typed}")
    for value in typed:
        sweep_request(request, setting, value)
    return typed


def parse_values(setting: str, text: str) -> list:
    """A sweep's values from text.

    Args:
        setting: what the sweep varies; a whole-number option's range values are rounded to integers.
        text: a comma-separated list ("0.02, 0.05, 0.1"), or a range "start:stop:count" of evenly spaced values.

    Returns:
        The list's items as strings (check_sweep types them), or the range's numbers.

    Raises:
        MethodConfigError: a malformed range, or a count that is not a whole number of at least 2.
    """
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
    whole = setting in OPTIONS and OPTIONS[setting].whole
    return [round(v) for v in values] if whole else [round(v, 6) for v in values]


def _run_key(world: World, request: TaskRequest, label: str, method: str, scheduler: str) -> str:
    """What decides a result: a method's options, scheduler, steps and noise; equal keys are sampled once."""
    options = build_method(method, method_settings(request, method), world.classifier).describe()
    noise = (run_eta(request, scheduler), request_settings(request).noise_rule)
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
    shown in every column.

    Args:
        world: the World to sample from.
        request: every method of it runs in each column.
        setting: what the sweep varies (one of the task's TaskSpec.sweeps).
        values: its values (check_sweep types and checks them).
        progress: called with a SweepProgress after each step.
        should_stop: polled between steps; True stops the sweep.
        seeds: seeds per value.

    Returns:
        The SweepOutcome; stopped, it holds the finished columns and the one that was stopped.

    Raises:
        MethodConfigError: as check_sweep raises it, fewer than 1 seed, a last seed beyond the seed's bound, or a
            request that run_task rejects.
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
        ticker = partial(
            _sweep_ticker, progress, labels, missing, column, len(values), current.steps, seeds=seeds
        )  # ticker(seed)
        fresh = (
            _over_seeds(world, spec(current.task).runs.only(current, missing), seeds, ticker, should_stop)
            if missing
            else TaskOutcome([])
        )
        finished = dict(fresh.results)
        done |= {keys[label]: result for label, result in fresh.results if not result.cancelled}
        shown = [(label, finished.get(label) or done.get(keys[label])) for label in labels]
        outcome.columns.append(TaskOutcome([(label, result) for label, result in shown if result is not None], fresh.artefacts))
        if any(result.cancelled for result in finished.values()):
            break
    return outcome


def _over_seeds(world: World, request: TaskRequest, seeds: int, ticker: Callable, should_stop) -> TaskOutcome:
    """run_task from the request's seed and the `seeds - 1` after it; per run, one result with every seed's samples
    (guidance.recording.combine), cancelled where a stop left it without all of its seeds."""
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


def _sweep_ticker(
    progress, labels: list[str], running: list[str], column: int, columns: int, steps: int, seed: int = 0, seeds: int = 1
):
    """run_task's (done, total, label) over the runs it does, as a SweepProgress over the whole sweep."""
    if progress is None:
        return None

    def tick(done: int, total: int, label: str) -> None:
        step = done - running.index(label) * steps
        progress(SweepProgress(labels.index(label) + 1, len(labels), column + 1, columns, step, steps, seed + 1, seeds))

    return tick

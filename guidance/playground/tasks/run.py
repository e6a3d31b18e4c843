"""`run_task`, which runs one request: every requested method (or solver) from the same seed.

`request` is a TaskRequest wherever a function takes one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from PIL import Image
from torch import Tensor

from guidance.backbone import Backbone, Control
from guidance.energy import Energy
from guidance.errors import MethodConfigError
from guidance.methods import Settings, build_method
from guidance.playground.tasks.spec import TaskOutcome, TaskRequest, spec
from guidance.sampling import StepRecord, sample
from guidance.schedulers.adapters import FLOW_SCHEDULERS
from guidance.worlds import World

GUIDING_SETTINGS = ("scale", "dsg_rate")  # a method's guiding setting, which the strength multiplies (guiding_setting)


def build_energy(world: World, request: TaskRequest) -> tuple[Energy, Control | None, dict[str, Image.Image]]:
    """A request's energy, built by its task (TaskSpec.energy).

    Args:
        world: the World it runs on.

    Returns:
        The energy, the ControlNet input (None: no ControlNet), and pictures of what was used, by caption.

    Raises:
        MethodConfigError: the request lacks what the energy needs.
        NoFaceFoundError: a face reference in which the world's detector finds no face.
    """
    artefacts: dict[str, Image.Image] = {}
    energy, control = spec(request.task).energy(world, request, artefacts)
    return energy, control, artefacts


def runs_of(request: TaskRequest) -> list[tuple[str, str, str]]:
    """A request's runs: every method, or every scheduler with the one method (TaskSpec.runs).

    Returns:
        (label, method, scheduler) of each run, in run order.
    """
    return spec(request.task).runs.runs(request)


def guiding_setting(method: str) -> str:
    """A method's guiding setting: the one its preset value (TaskSpec.guiding) sets and the strength multiplies.

    Args:
        method: a method name ("figd", "figd+dsg", ...).

    Returns:
        "dsg_rate" for a method with DSG (the scale then only weighs terms), else "scale".
    """
    return "dsg_rate" if "dsg" in method.split("+") else "scale"


def request_settings(request: TaskRequest) -> Settings:
    """A request's settings, with CFG off (cfg_scale 1) where it has no condition: there is nothing to contrast."""
    return request.settings if request.condition is not None else replace(request.settings, cfg_scale=1.0)


def method_settings(request: TaskRequest, method: str) -> Settings:
    """The settings a method runs with.

    Args:
        method: one of its methods.

    Returns:
        The request's settings (`request_settings`), at the method's guiding value times `request.strength` where
        both are given.

    Raises:
        MethodConfigError: the product lies outside the setting's bound.
    """
    return guided_settings(request, method, spec(request.task).guiding)


def guided_settings(request: TaskRequest, method: str, guiding: dict[str, float]) -> Settings:
    """`method_settings` with the task's guiding values (TaskSpec.guiding) given."""
    settings, own = request_settings(request), guiding.get(method)
    if request.strength is None or own is None:
        return settings
    return replace(settings, **{guiding_setting(method): own * request.strength})


def run_eta(request: TaskRequest, scheduler: str) -> float:
    """The eta a run uses: the request's on DDIM and DDPM, else 0."""
    return request.eta if scheduler in ("ddim", "ddpm") else 0.0


def family_scheduler(backbone: Backbone, scheduler: str, eta: float) -> str:
    """The scheduler a task's choice runs on the backbone's family: on a flow model (SD 3) DDIM and DDPM become the flow's
    stochastic step where eta > 0 (DSG's noise, docs/methods.md "Gaussian paths") and its Euler step otherwise.

    Args:
        backbone: the world's backbone.
        scheduler: the task's scheduler name.
        eta: the run's eta.

    Returns:
        The scheduler's name for this backbone.

    Raises:
        MethodConfigError: a multistep VP solver on a flow model, which the flow has no counterpart of here.
    """
    if backbone.prediction_type != "flow_prediction" or scheduler in FLOW_SCHEDULERS:
        return scheduler
    if scheduler in ("ddim", "ddpm"):
        return "flow-sde" if eta > 0 else "flow-euler"
    raise MethodConfigError(
        f"{scheduler} solves the VP path of DDPM-family models; {backbone.name} is a flow-matching model "
        f"(SD 3): its solvers here are {FLOW_SCHEDULERS}"
    )


def run_task(
    world: World,
    request: TaskRequest,
    progress: Callable[[int, int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_step: Callable[[str, StepRecord, Tensor | None], None] | None = None,
) -> TaskOutcome:
    """Runs every requested method (or scheduler) from the same seed.

    Args:
        world: the World to sample from.
        progress: `progress(done, total, label)` counts steps over all runs and names the run in progress.
        should_stop: polled between steps; True stops the run in progress, and no later run starts.
        on_step: `on_step(label, record, x0_hat)` sees every step, with x0_hat (latents, decoded after the run into the
            trajectory) at `request.snapshots` evenly spaced steps and None elsewhere.

    Returns:
        The TaskOutcome: the finished runs, and the stopped one last (marked cancelled).

    Raises:
        MethodConfigError: no method is selected, or a method does not fit the request (its energy, its scheduler).
        SamplingNaNError: a run diverged.
    """
    task, artefacts = spec(request.task), {}
    energy, control = task.energy(world, request, artefacts)
    conditions = [request.condition] * request.samples
    runs = task.runs.runs(request)
    if not runs:
        raise MethodConfigError("select at least one method")
    total, results = len(runs) * request.steps, []
    for number, (label, method_name, scheduler) in enumerate(runs):
        settings = guided_settings(request, method_name, task.guiding)
        method = build_method(method_name, settings, world.classifier)
        tick = None if progress is None else (lambda i, n, k=number, name=label: progress(k * request.steps + i, total, name))
        hook = None if on_step is None else (lambda record, picture, name=label: on_step(name, record, picture))
        eta = run_eta(request, scheduler)
        solver = family_scheduler(world.backbone, scheduler, eta)
        noise_rule = settings.noise_rule if solver == scheduler else "ddim"  # the flow's stochastic step has its own noise
        result = sample(
            world.backbone,
            method,
            conditions,
            steps=request.steps,
            scheduler=solver,
            eta=eta,
            noise_rule=noise_rule,
            seed=request.seed,
            grid=task.runs.grid(request),
            energy=energy,
            control=control,
            progress=tick,
            should_stop=should_stop,
            snapshots=request.snapshots,
            on_step=hook,
        )
        results.append((label, result))
        if result.cancelled:
            break
    return TaskOutcome(results, artefacts)

"""One sampling loop for every method, scheduler and model family, with per-step records.

`guided_loop` reads one guided step top-down, numbered as docs/methods.md, "Sampling loop": (1) the method predicts,
(2) the scheduler gives the unguided mean and sigma_t, (3) the method updates, (4) time travel repeats; (5) a
`Recorder` (guidance/recording.py) keeps the measurements (wall and CPU time, CUDA-synchronised; denoiser
evaluations; the energy of the current clean estimate; snapshots; peak memory) out of the math. The scheduler keeps
its state on its own Gaussian path; the methods read and write its VP view (docs/methods.md, "Gaussian paths").
`sample` starts a run from a seed on a world's backbone; a guided pipeline (guidance.pipelines) starts it from the
stock pipeline's own preparation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import Tensor

from guidance.backbone import Backbone, Condition, Control
from guidance.energy import Energy
from guidance.errors import MethodConfigError, SamplingNaNError
from guidance.methods import Guidance, StepContext
from guidance.recording import Recorder, SamplingResult, StepHook, StepRecord
from guidance.schedulers.adapters import (
    check_noise_rule,
    ddim_eta,
    make_scheduler,
    mean_and_sigma,
    scheduler_name,
    stateless,
    step_levels,
    vp_view,
)
from guidance.schedulers.grids import grid_scheduler
from guidance.vp_arithmetic import renoise

__all__ = ["SamplingResult", "Start", "StepRecord", "guided_loop", "sample"]


@dataclass
class Start:
    """Where a run begins.

    Attributes:
        scheduler: a scheduler that guidance.schedulers.adapters.scheduler_name knows, its timesteps set.
        z: (B, C, H, W) the initial state, x_T times the scheduler's init_noise_sigma.
        embeddings: (B, L, D) the conditions as the backbone reads them.
        null_embeddings: (B, L, D) the null condition's.
        noise: draws z ~ N(0, I) shaped as the state, on the backbone's device.
        generator: the noise of schedulers that draw their own (DDPM), where one is given.
    """

    scheduler: SchedulerMixin
    z: Tensor
    embeddings: Tensor
    null_embeddings: Tensor
    noise: Callable[[], Tensor]
    generator: torch.Generator | list[torch.Generator] | None = None


def sample(
    backbone: Backbone,
    method: Guidance,
    conditions: Sequence[Condition],
    *,
    steps: int = 50,
    scheduler: str = "ddim",
    eta: float = 0.0,
    noise_rule: str = "ddim",
    seed: int = 0,
    energy: Energy | None = None,
    control: Control | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    snapshots: int = 0,
    on_step: StepHook | None = None,
    grid: str = "own",
) -> SamplingResult:
    """Sample one image per condition with `method`; reproducible for a seed on a device.

    The method and the energy are reset first (`Guidance.reset`, `Energy.reset`), so a run does not depend on what
    ran before it with the same objects: the same inputs give the same images and figures.

    Args:
        backbone: the denoiser, its decoder and its scheduler config.
        method: the guidance method (guidance.methods.build_method).
        conditions: one prompt or class name per sample; None is the null condition.
        steps: sampling steps.
        scheduler: a name of guidance/schedulers/adapters.py: SCHEDULERS, of the backbone's family.
        eta: the noise of DDIM's step, read by `noise_rule`.
        noise_rule: how eta sets sigma_t (guidance/schedulers/adapters.py: NOISE_RULES): "ddim" is DDIM's own eta,
            "freedom" FreeDoM's face sampler, sigma_t = eta sqrt(1 - a_prev) (docs/methods.md, Sampling loop step 2).
        seed: seeds x_T and every noise draw (a CPU generator).
        energy: what guides the method's terms and what each step and the final images are measured with.
        control: the ControlNet's input, if any.
        progress: called with (steps done, steps) after each step.
        should_stop: asked before each step; True ends the run there, with the last x0_hat as its images.
        snapshots: x0_hat is kept at this many evenly spaced steps and decoded after the run, outside the timed
            steps, into `result.trajectory`.
        on_step: called with each step's record and, at snapshot steps, its x0_hat latent (None elsewhere).
        grid: the time grid (guidance.schedulers.grids.GRIDS): "own" is each scheduler's own `set_timesteps`; a shared
            grid gives every solver the same labels, ending at label 0 (docs/methods.md, EVODiff).

    Returns:
        The images in [-1, 1] with the run's per-step records, totals and final figures.

    Raises:
        MethodConfigError: as `guided_loop`, or a scheduler of the other family than the backbone's.
        SamplingNaNError: a step produced NaN or infinite values.
        DeviceOutOfMemoryError: the device ran out of memory.
    """
    if grid == "own":
        sched = make_scheduler(scheduler, backbone.scheduler_config)
        sched.set_timesteps(steps, device=backbone.device)
    else:
        sched = grid_scheduler(scheduler, backbone.scheduler_config, grid, steps)
    generator = torch.Generator().manual_seed(seed)
    conditions = list(conditions)
    z = backbone.initial_noise(len(conditions), generator) * getattr(sched, "init_noise_sigma", 1.0)  # flow schedulers have none

    def draw() -> Tensor:  # z ~ N(0, I), drawn on the CPU so that a seed gives the same noise on every device
        return torch.randn(z.shape, generator=generator).to(backbone.device)

    start = Start(sched, z, backbone.embed(conditions), backbone.embed([None] * len(conditions)), draw, generator)
    recorder = Recorder(backbone, energy, len(sched.timesteps), snapshots, on_step, progress)
    final, cancelled = guided_loop(
        backbone,
        method,
        start,
        conditions,
        recorder,
        eta=eta,
        noise_rule=noise_rule,
        energy=energy,
        control=control,
        should_stop=should_stop,
    )
    options = {**method.describe(), "noise_rule": noise_rule, **({"grid": grid} if grid != "own" else {})}
    return recorder.result(final, method.name, scheduler, options, cancelled)


def guided_loop(
    backbone: Backbone,
    method: Guidance,
    start: Start,
    conditions: Sequence[Condition],
    recorder: Recorder,
    *,
    eta: float = 0.0,
    noise_rule: str = "ddim",
    energy: Energy | None = None,
    control: Control | None = None,
    should_stop: Callable[[], bool] | None = None,
    after_step: Callable[[int, Tensor, Tensor], Tensor] | None = None,
) -> tuple[Tensor, bool]:
    """The one sampling loop: every step of `start.scheduler` from `start.z`, guided by `method`.

    Args:
        backbone: the denoiser and its decoder.
        method: the guidance method; reset first, as the energy.
        start: the scheduler, the initial state, the embeddings and the noise.
        conditions: one prompt or class name per sample.
        recorder: what the run measures.
        eta, noise_rule, energy, control, should_stop: as in `sample`.
        after_step: called with (step index, timestep, new state) after each step; returns the state to go on with
            (a pipeline's callback_on_step_end may replace it).

    Returns:
        (the final state, or the last x0_hat of a cancelled run; whether it was cancelled).

    Raises:
        MethodConfigError: a method that needs an energy has none, the scheduler is not one the loop drives, the
            method or the noise rule cannot run with this scheduler and eta, or time travel asks a multistep solver
            to repeat a step.
        SamplingNaNError: a step produced NaN or infinite values.
        DeviceOutOfMemoryError: the device ran out of memory.
    """
    # Set up: check, start the method and the energy afresh, each step's levels.
    sched, name = start.scheduler, scheduler_name(start.scheduler)
    if method.uses_energy and energy is None:
        raise MethodConfigError(f"{method.name} needs an energy (a face, style or control-map condition)")
    method.check(name, eta)
    check_noise_rule(noise_rule, name, eta)
    method.reset()
    if energy is not None:
        energy.reset()
    steps, conditions = len(sched.timesteps), list(conditions)
    levels = [step_levels(sched, index, backbone.alpha) for index in range(steps)]
    alphas = tuple(level.a_t for level in levels)
    z, x0, cancelled = start.z, start.z, False
    with recorder.run():  # each step below, numbered as docs/methods.md, "Sampling loop"
        for index, t in enumerate(sched.timesteps):
            if should_stop is not None and should_stop():
                cancelled = True
                break
            level = levels[index]
            ctx = StepContext(
                backbone,
                vp_view(sched, z, t, level),
                t,
                index,
                steps,
                level.a_t,
                level.a_prev,
                conditions,
                start.embeddings,
                start.null_embeddings,
                control,
                energy,
                alphas,
            )
            eta_t = ddim_eta(noise_rule, eta, ctx.a_t, ctx.a_prev)  # the noise rule's sigma_t as DDIM's eta
            repeats = method.repeats(ctx)
            if repeats > 1 and not stateless(sched):
                raise MethodConfigError("time travel repeats a step: use DDIM or DDPM, not a multistep solver")
            with recorder.timed(ctx) as record:
                z_t = z
                for repeat in range(repeats):
                    # 1. The guided estimate and x0_hat; where the method guides, rho g and the energy.
                    pred = method.predict(ctx)
                    # 2. The scheduler's unguided mean of the next state and its noise std (DDIM: its formula).
                    mean, sigma = mean_and_sigma(sched, pred.model_output, t, z_t, eta_t, start.generator)
                    # 3. The guided update in the VP view: mean + sigma_t z - rho g (DSG: its step on the sphere).
                    scale = level.scale_prev
                    sigma = None if sigma is None else sigma / scale
                    x = method.update(ctx, pred, mean / scale, sigma, start.noise())
                    z = x * scale
                    # 4. Time travel (FreeDoM step 6): back from t-1 to t, and steps 1-3 again.
                    if repeat + 1 < repeats:
                        ctx.x = renoise(x, ctx.a_t, ctx.a_prev, start.noise())
                        z_t = ctx.x * level.scale
            if not torch.isfinite(z).all():
                raise SamplingNaNError(
                    f"{method.name} produced NaN/inf at step {index} (t={int(t)}); lower the guidance scale or step size"
                )
            if after_step is not None:
                z = after_step(index, t, z)
            x0 = pred.x0
            # 5. The records: the energy of x0_hat, a snapshot, on_step and progress.
            recorder.record(record, pred)
    return (x0 if cancelled else z), cancelled

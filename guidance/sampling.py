"""One sampling loop for every method and scheduler, with per-step records.

`sample` reads one guided step top-down, numbered as docs/methods.md, "Sampling loop": (1) the method predicts,
(2) the scheduler gives the unguided mean and sigma_t, (3) the method updates, (4) time travel repeats; (5) a
`Recorder` (guidance/recording.py) keeps the measurements (wall and CPU time, CUDA-synchronised; denoiser
evaluations; the energy of the current clean estimate; snapshots; peak memory) out of the math.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from guidance.backbone import Backbone, Condition, Control
from guidance.energy import Energy
from guidance.errors import MethodConfigError, SamplingNaNError
from guidance.methods import Guidance, StepContext
from guidance.recording import Recorder, SamplingResult, StepHook, StepRecord
from guidance.schedulers.adapters import STATELESS, check_noise_rule, ddim_eta, make_scheduler, mean_and_sigma, previous_alpha
from guidance.vp_arithmetic import renoise

__all__ = ["SamplingResult", "StepRecord", "sample"]


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
) -> SamplingResult:
    """Sample one image per condition with `method`; reproducible for a seed on a device.

    The method and the energy are reset first (`Guidance.reset`, `Energy.reset`), so a run does not depend on what
    ran before it with the same objects: the same inputs give the same images and figures.

    Args:
        backbone: the denoiser, its decoder and its scheduler config.
        method: the guidance method (guidance.methods.build_method).
        conditions: one prompt or class name per sample; None is the null condition.
        steps: sampling steps.
        scheduler: a name of guidance/schedulers/adapters.py: SCHEDULERS.
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

    Returns:
        The images in [-1, 1] with the run's per-step records, totals and final figures.

    Raises:
        MethodConfigError: a method that needs an energy has none, the method or the noise rule cannot run with this
            scheduler and eta, or time travel asks a multistep solver to repeat a step.
        SamplingNaNError: a step produced NaN or infinite values.
        DeviceOutOfMemoryError: the device ran out of memory.
    """
    # Set up: check, start the method and the energy afresh, the scheduler's grid, x_T and the embeddings.
    if method.uses_energy and energy is None:
        raise MethodConfigError(f"{method.name} needs an energy (a face, style or control-map condition)")
    method.check(scheduler, eta)
    check_noise_rule(noise_rule, scheduler, eta)
    method.reset()
    if energy is not None:
        energy.reset()
    sched = make_scheduler(scheduler, backbone.scheduler_config)
    sched.set_timesteps(steps, device=backbone.device)
    alphas = tuple(backbone.alpha(t) for t in sched.timesteps)
    generator = torch.Generator().manual_seed(seed)
    conditions = list(conditions)
    x = backbone.initial_noise(len(conditions), generator) * sched.init_noise_sigma
    embeddings, null_embeddings = backbone.embed(conditions), backbone.embed([None] * len(conditions))

    def draw() -> Tensor:  # z ~ N(0, I), drawn on the CPU so that a seed gives the same noise on every device
        return torch.randn(x.shape, generator=generator).to(backbone.device)

    options = {**method.describe(), "noise_rule": noise_rule}
    recorder = Recorder(backbone, energy, steps, snapshots, on_step, progress)
    x0, cancelled = x, False
    with recorder.run():  # each step below, numbered as docs/methods.md, "Sampling loop"
        for index, t in enumerate(sched.timesteps):
            if should_stop is not None and should_stop():
                cancelled = True
                break
            ctx = StepContext(
                backbone, x, t, index, steps, backbone.alpha(t), previous_alpha(sched, index),
                conditions, embeddings, null_embeddings, control, energy, alphas,
            )  # fmt: skip
            eta_t = ddim_eta(noise_rule, eta, ctx.a_t, ctx.a_prev)  # the noise rule's sigma_t as DDIM's eta
            repeats = method.repeats(ctx)
            if repeats > 1 and not isinstance(sched, STATELESS):
                raise MethodConfigError("time travel repeats a step: use DDIM or DDPM, not a multistep solver")
            with recorder.timed(ctx) as record:
                for repeat in range(repeats):
                    # 1. The guided noise estimate and x0_hat; where the method guides, rho g and the energy.
                    pred = method.predict(ctx)
                    # 2. The scheduler's unguided mean of x_{t-1} and its noise std sigma_t (DDIM: its formula).
                    mean, sigma = mean_and_sigma(sched, pred.model_output, t, ctx.x, eta_t, generator)
                    # 3. The guided update: mean + sigma_t z - rho g (plain: mean + sigma_t z; DSG: its step on the sphere).
                    x = method.update(ctx, pred, mean, sigma, draw())
                    # 4. Time travel (FreeDoM step 6): back from t-1 to t, and steps 1-3 again.
                    if repeat + 1 < repeats:
                        ctx.x = renoise(x, ctx.a_t, ctx.a_prev, draw())
            if not torch.isfinite(x).all():
                raise SamplingNaNError(
                    f"{method.name} produced NaN/inf at step {index} (t={int(t)}); lower the guidance scale or step size"
                )
            x0 = pred.x0
            # 5. The records: the energy of x0_hat, a snapshot, on_step and progress.
            recorder.record(record, pred)
    return recorder.result(x0 if cancelled else x, method.name, scheduler, options, cancelled)

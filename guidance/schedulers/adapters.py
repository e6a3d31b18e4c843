"""The diffusers schedulers the loop can drive: built by name from a backbone's config, or handed over by a pipeline.

Each scheduler keeps its state on a Gaussian path (docs/methods.md, "Gaussian paths"): the VP path x_t itself
(DDIM, DDPM, DPM-Solver++, UniPC, EVODiff), z = x0 + sigma eps (Euler's, whose model input is z / sqrt(1 + sigma^2)),
or rectified flow z = (1 - s) x0 + s eps (flow matching). `StepLevels` maps each onto the VP view the methods read.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import Tensor

from guidance.errors import MethodConfigError
from guidance.vp_arithmetic import flow_alpha, to_eps_and_x0

VP_SCHEDULERS = ("ddim", "ddpm", "dpmsolver++", "unipc", "evodiff", "euler")  # for DDPM-family (VP) models
FLOW_SCHEDULERS = ("flow-euler", "flow-sde")  # for flow models: diffusers' flow-matching Euler, deterministic or stochastic
SCHEDULERS = VP_SCHEDULERS + FLOW_SCHEDULERS
NOISE_RULES = ("ddim", "freedom")  # how eta sets a DDIM step's noise std (docs/methods.md, Sampling loop step 2)
NOISY = (DDPMScheduler, EulerAncestralDiscreteScheduler)  # their step adds noise of its own, not exposed
SIGMA_STATE = (EulerDiscreteScheduler, EulerAncestralDiscreteScheduler)  # state z = x0 + sigma eps


def scheduler_name(scheduler: SchedulerMixin) -> str:
    """The name under which the loop knows a scheduler (one of SCHEDULERS, "euler-ancestral" besides).

    Args:
        scheduler: a diffusers scheduler, or EVODiff.

    Returns:
        Its name.

    Raises:
        MethodConfigError: a scheduler the loop cannot drive (Heun's and the other two-evaluation solvers, LCM, ...).
    """
    from guidance.schedulers.evodiff import EVODiffScheduler

    names = {
        DDIMScheduler: "ddim",
        DDPMScheduler: "ddpm",
        DPMSolverMultistepScheduler: "dpmsolver++",
        UniPCMultistepScheduler: "unipc",
        EVODiffScheduler: "evodiff",
        EulerDiscreteScheduler: "euler",
        EulerAncestralDiscreteScheduler: "euler-ancestral",
    }
    if type(scheduler) is FlowMatchEulerDiscreteScheduler:
        return "flow-sde" if scheduler.config.stochastic_sampling else "flow-euler"
    if type(scheduler) not in names:
        known = ", ".join(cls.__name__ for cls in (*names, FlowMatchEulerDiscreteScheduler))
        raise MethodConfigError(
            f"guided sampling drives {known}; {type(scheduler).__name__} is not among them: set "
            "pipe.scheduler to one of these (e.g. DDIMScheduler.from_config(pipe.scheduler.config))"
        )
    return names[type(scheduler)]


def stateless(scheduler: SchedulerMixin) -> bool:
    """Whether a step can be repeated (FreeDoM's time travel): its result depends on the timestep, not on a count
    of the steps taken (DDIM and DDPM, and the stochastic flow step, which the loop computes itself)."""
    return scheduler_name(scheduler) in ("ddim", "ddpm", "flow-sde")


@dataclass(frozen=True)
class StepLevels:
    """Where one step starts and lands, in the VP view: the scheduler's state is `scale` times x_t, x_t has alpha-bar
    `a_t` (docs/methods.md, "Gaussian paths").

    Attributes:
        a_t: alpha-bar of the VP view at the step's timestep.
        a_prev: alpha-bar where the step lands (1 at the clean end).
        scale: c_t, the state over its VP view at the step (1 on the VP path).
        scale_prev: c_t where the step lands.
    """

    a_t: float
    a_prev: float
    scale: float = 1.0
    scale_prev: float = 1.0


def step_levels(scheduler: SchedulerMixin, index: int, alpha) -> StepLevels:
    """The levels of step `index` of a scheduler whose timesteps are set.

    Args:
        scheduler: a scheduler of `scheduler_name`.
        index: the step's index in `scheduler.timesteps`.
        alpha: a_t of an integer timestep, for the VP path (the backbone's `alpha`).

    Returns:
        The step's StepLevels.
    """
    if isinstance(scheduler, SIGMA_STATE):  # z = x0 + sigma eps: a_t = 1 / (1 + sigma^2), c_t = sqrt(1 + sigma^2)
        sigma, landing = float(scheduler.sigmas[index]), float(scheduler.sigmas[index + 1])
        return StepLevels(1 / (1 + sigma**2), 1 / (1 + landing**2), (1 + sigma**2) ** 0.5, (1 + landing**2) ** 0.5)
    if isinstance(scheduler, FlowMatchEulerDiscreteScheduler):  # z = (1 - s) x0 + s eps
        s, landing = float(scheduler.sigmas[index]), float(scheduler.sigmas[index + 1])
        return StepLevels(
            flow_alpha(s), flow_alpha(landing), ((1 - s) ** 2 + s**2) ** 0.5, ((1 - landing) ** 2 + landing**2) ** 0.5
        )
    return StepLevels(alpha(scheduler.timesteps[index]), previous_alpha(scheduler, index))


def vp_view(scheduler: SchedulerMixin, z: Tensor, t: Tensor, levels: StepLevels) -> Tensor:
    """x_t, the VP view of the scheduler's state z at timestep t: the scheduler's own `scale_model_input` on the VP
    and sigma paths (which is z / c_t there), z / c_t on the flow path.

    Args:
        scheduler: the run's scheduler.
        z: (B, C, H, W) its state.
        t: the step's timestep.
        levels: the step's levels.

    Returns:
        x_t, shaped as z.
    """
    if isinstance(scheduler, FlowMatchEulerDiscreteScheduler):
        return z / levels.scale
    return scheduler.scale_model_input(z, t)


def make_scheduler(name: str, config: dict) -> SchedulerMixin:
    """A scheduler by name; DPM-Solver++ is the 2M variant, EVODiff is ours (guidance/schedulers/evodiff.py), without the official
    final denoising call: every one of its calls is a solver step (docs/methods.md, EVODiff, "No final denoise").
    A flow model's config (diffusers' FlowMatchEulerDiscreteScheduler) takes the FLOW_SCHEDULERS, any other the VP ones.

    A config with ``clip_sample`` (which DDIM, DDPM and EVODiff read) also turns on static thresholding at
    ``clip_sample_range`` in DPM-Solver++ and UniPC, so that every solver keeps x0 in range; the three
    multistep solvers then clamp the same data prediction (DDIM clips x0 but keeps the model's eps).

    Args:
        name: one of SCHEDULERS.
        config: a diffusers DDPM-family scheduler config (the backbone's `scheduler_config`).

    Returns:
        The scheduler, its timesteps not yet set.

    Raises:
        MethodConfigError: an unknown name, or a name of the other family than the config's.
    """
    from guidance.schedulers.evodiff import EVODiffScheduler

    flow_config = config.get("_class_name", "").startswith("FlowMatch")
    if name in SCHEDULERS and (name in FLOW_SCHEDULERS) != flow_config:
        family, names = ("a flow-matching", FLOW_SCHEDULERS) if flow_config else ("a DDPM-family", VP_SCHEDULERS)
        raise MethodConfigError(f"{name} cannot sample {family} model; use one of {names}")
    if name in FLOW_SCHEDULERS:
        return FlowMatchEulerDiscreteScheduler.from_config(config, stochastic_sampling=name == "flow-sde")
    if name == "euler":
        return EulerDiscreteScheduler.from_config(config)
    if name == "ddim":
        return DDIMScheduler.from_config(config)
    if name == "ddpm":
        return DDPMScheduler.from_config(config)
    if name == "dpmsolver++":
        return DPMSolverMultistepScheduler.from_config(
            config, algorithm_type="dpmsolver++", solver_order=2, **_static_threshold(config)
        )
    if name == "unipc":
        return UniPCMultistepScheduler.from_config(config, **_static_threshold(config))
    if name == "evodiff":  # EVODiff's own logSNR grid from label T-1, whatever spacing the config names
        return EVODiffScheduler.from_config(config, timestep_spacing="linspace")
    raise MethodConfigError(f"unknown scheduler {name!r}; known: {SCHEDULERS}")


def _static_threshold(config: dict) -> dict:
    """DPM-Solver++ / UniPC options for the config's x0 clipping.

    diffusers' dynamic thresholding clamps x0 to [-s, s] and divides by s, with
    s = clamp(quantile(|x0|), 1, sample_max_value); for sample_max_value = clip_sample_range = 1
    (every config we ship) s = 1: the clamp of x0 to [-1, 1] that DDIM's clip_sample applies.
    """
    if not config.get("clip_sample"):
        return {"thresholding": False}
    return {"thresholding": True, "sample_max_value": float(config.get("clip_sample_range", 1.0))}


def mean_and_sigma(
    scheduler: SchedulerMixin, out: Tensor, t: Tensor, x: Tensor, eta: float, generator: torch.Generator
) -> tuple[Tensor, float | None]:
    """The unguided mean of x_{t-1} and its noise std sigma_t (docs/methods.md, Sampling loop step 2).

    DDIM: its formula (`ddim_mean_and_sigma`); the stochastic flow step likewise (`flow_mean_and_sigma`). DDPM and
    Euler ancestral add their own noise: their step, sigma None (not exposed). DPM-Solver++, UniPC, Euler, EVODiff and
    the flow's Euler step are deterministic: their step, sigma 0. All in the scheduler's state (`StepLevels`).

    Args:
        scheduler: a scheduler of `make_scheduler`, with its timesteps set.
        out: the model output at `t`, of the scheduler's prediction type.
        t: the step's integer timestep.
        x: x_t.
        eta: DDIM's eta (`ddim_eta` turns a noise rule into it); other schedulers ignore it.
        generator: DDPM's noise and any other solver's that draws some.

    Returns:
        (mean, sigma_t): x_{t-1} = mean + sigma_t z for plain sampling.
    """
    if isinstance(scheduler, DDIMScheduler):
        return ddim_mean_and_sigma(scheduler, out, t, x, eta)
    if isinstance(scheduler, FlowMatchEulerDiscreteScheduler) and scheduler.config.stochastic_sampling:
        return flow_mean_and_sigma(scheduler, out, t, x)
    if isinstance(scheduler, NOISY):
        return scheduler.step(out, t, x, generator=generator).prev_sample, None
    if "generator" in inspect.signature(scheduler.step).parameters:
        return scheduler.step(out, t, x, generator=generator).prev_sample, 0.0
    return scheduler.step(out, t, x).prev_sample, 0.0


def ddim_mean_and_sigma(scheduler: DDIMScheduler, out: Tensor, t: Tensor, x: Tensor, eta: float) -> tuple[Tensor, float]:
    """DDIM's step (Song et al. 2021, eqs. 12 and 16) without its noise, and the std of that noise:

        eps, x0 = the model output read at a_t; x0 clipped or thresholded where the config says so
        sigma_t = eta sqrt((1 - a_prev) / (1 - a_t)) sqrt(1 - a_t / a_prev)
        mean    = sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma_t^2) eps,   and x_{t-1} = mean + sigma_t z

    In diffusers' order of operations on the scheduler's float32 alphas: `mean` is DDIMScheduler.step with zero noise,
    bit for bit, and `mean + sigma_t z` its step with noise z (tests/test_step.py).

    Args:
        scheduler: a DDIMScheduler with its timesteps set.
        out: the model output at `t`, of the config's prediction type.
        t: the step's integer timestep; the step lands on t - num_train_timesteps // num_inference_steps.
        x: x_t.
        eta: 0 is deterministic DDIM, 1 the DDPM posterior's std.

    Returns:
        (mean, sigma_t).
    """
    config = scheduler.config
    a_t, a_prev = ddim_alphas(scheduler, int(t))
    eps, x0 = to_eps_and_x0(x, out, a_t, config.prediction_type)
    if config.thresholding:
        x0 = scheduler._threshold_sample(x0)
    elif config.clip_sample:
        x0 = x0.clamp(-config.clip_sample_range, config.clip_sample_range)
    sigma = eta * ddim_sigma(a_t, a_prev)
    mean = a_prev**0.5 * x0 + (1 - a_prev - sigma**2) ** 0.5 * eps
    return mean, float(sigma)


def flow_mean_and_sigma(scheduler: FlowMatchEulerDiscreteScheduler, out: Tensor, t: Tensor, z: Tensor) -> tuple[Tensor, float]:
    """The stochastic flow-matching step without its noise: x0 = z - s v, and z_next = (1 - s') x0 + s' noise,
    as diffusers' step with `stochastic_sampling` (docs/methods.md, "Gaussian paths").

    Args:
        scheduler: a FlowMatchEulerDiscreteScheduler with its timesteps set.
        out: the velocity v at `t`.
        t: the step's timestep (s times num_train_timesteps), one of the scheduler's.
        z: the state at t.

    Returns:
        (mean, sigma_t) = ((1 - s') x0, s').
    """
    index = scheduler.index_for_timestep(t)
    s, landing = scheduler.sigmas[index], scheduler.sigmas[index + 1]
    x0 = z.float() - s * out
    return (1.0 - landing) * x0, float(landing)


def ddim_alphas(scheduler: DDIMScheduler, t: int) -> tuple[Tensor, Tensor]:
    """(a_t, a_prev) of DDIM's step from `t`, in the scheduler's float32: the step lands
    num_train_timesteps // num_inference_steps earlier, past 0 on `final_alpha_cumprod`.

    Args:
        scheduler: a DDIMScheduler with its timesteps set.
        t: the step's integer timestep.

    Returns:
        (a_t, a_prev) as 0-d tensors.
    """
    prev = t - scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    return scheduler.alphas_cumprod[t], scheduler.alphas_cumprod[prev] if prev >= 0 else scheduler.final_alpha_cumprod


def ddim_sigma(a_t, a_prev):
    """DDIM's sigma_t at eta = 1, sqrt((1 - a_prev) / (1 - a_t)) sqrt(1 - a_t / a_prev): the DDPM posterior's std.

    Args:
        a_t: alpha-bar at the step's timestep (a float or a tensor).
        a_prev: alpha-bar where the step lands.

    Returns:
        sigma_t at eta = 1, of the arguments' type.
    """
    return ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)) ** 0.5


def check_noise_rule(noise_rule: str, scheduler: str, eta: float) -> None:
    """Checks the noise rule: FreeDoM's is a DDIM step with 0 <= eta <= 1 (its eps coefficient is sqrt(1 - eta^2)).

    Args:
        noise_rule: one of NOISE_RULES.
        scheduler: the scheduler's name.
        eta: the run's eta.

    Raises:
        MethodConfigError: an unknown rule, or "freedom" with another scheduler than DDIM or eta outside [0, 1].
    """
    if noise_rule not in NOISE_RULES:
        raise MethodConfigError(f"noise_rule must be one of {NOISE_RULES}, got {noise_rule!r}")
    if noise_rule == "freedom" and scheduler != "ddim":
        raise MethodConfigError(f"FreeDoM's noise rule is a DDIM step: use DDIM, not {scheduler}")
    if noise_rule == "freedom" and not 0 <= eta <= 1:
        raise MethodConfigError(f"FreeDoM's noise rule needs 0 <= eta <= 1, got {eta}")


def ddim_eta(noise_rule: str, eta: float, a_t: float, a_prev: float) -> float:
    """DDIM's eta for a step from a_t to a_prev that gives the noise rule's sigma_t (Sampling loop step 2).

    "ddim": eta itself, sigma_t = eta sqrt((1 - a_prev) / (1 - a_t)) sqrt(1 - a_t / a_prev).
    "freedom": sigma_t = eta sqrt(1 - a_prev), FreeDoM's face sampler [code]; it is the same DDIM family,
    x_{t-1} = sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma_t^2) eps + sigma_t z, with another sigma_t.

    Args:
        noise_rule: "ddim" or "freedom".
        eta: the run's eta.
        a_t: alpha-bar at the step's timestep.
        a_prev: alpha-bar where the step lands.

    Returns:
        DDIM's eta for this step (0 where DDIM's sigma_t vanishes).
    """
    if noise_rule == "ddim":
        return eta
    unit = ddim_sigma(a_t, a_prev)
    # eta = 1 puts all of sqrt(1 - a_prev) in the noise; 1e-4 below it keeps DDIM's sqrt(1 - a_prev - sigma_t^2) real
    return min(eta, 1 - 1e-4) * (1 - a_prev) ** 0.5 / unit if unit > 0 else 0.0


def previous_alpha(scheduler: SchedulerMixin, index: int) -> float:
    """a_prev: alpha-bar where a step lands (DDIM's own rule for DDIM).

    Args:
        scheduler: a scheduler of `make_scheduler`, with its timesteps set.
        index: the step's index in `scheduler.timesteps`.

    Returns:
        a_prev; 1 at the clean end.
    """
    t = int(scheduler.timesteps[index])
    if isinstance(scheduler, DDIMScheduler):
        return float(ddim_alphas(scheduler, t)[1])
    if isinstance(scheduler, DDPMScheduler):
        prev = int(scheduler.previous_timestep(t))
        return float(scheduler.alphas_cumprod[prev]) if prev >= 0 else 1.0
    following = scheduler.timesteps[index + 1 :]
    return float(scheduler.alphas_cumprod[int(following[0])]) if len(following) else 1.0

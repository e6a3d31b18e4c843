"""Time grids that every solver can share (docs/methods.md, EVODiff, "One grid for every solver").

A grid of S steps is S + 1 strictly decreasing integer labels g_0 = T-1 > ... > g_S = 0: the solver calls the model
at g_0 .. g_{S-1} and its last step lands on label 0 (sigma_0 = sqrt(1 - a_0)), so every solver on a grid ends at the
same level. The grids follow DPM-Solver's `skip_type`s, with the continuous time tau = (label + 1) / T in [1/T, 1]:

- "time": uniform in tau (the labels of diffusers' "linspace" spacing, then label 0);
- "logsnr": uniform in lambda = log(alpha / sigma);
- "quadratic": uniform in sqrt(tau);
- "edm": EDM's rho = 7 spacing of kappa = sigma / alpha (the VE sigma);
- "own": no shared grid: each scheduler's own `set_timesteps(steps)` (what `make_scheduler` builds), ends included.

DDIMScheduler's step always strides by T // steps, so it cannot run a non-uniform grid; on a grid, "ddim" is
DPM-Solver++ of order 1, which is DDIM's deterministic step (eta = 0) in data prediction, the same update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler, UniPCMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from guidance.schedulers.adapters import make_scheduler
from guidance.schedulers.evodiff import EVODiffScheduler

if TYPE_CHECKING:
    from guidance.backbone import Backbone

GRIDS = ("own", "time", "logsnr", "quadratic", "edm")
SOLVERS = ("ddim", "dpmsolver++", "unipc", "evodiff")  # the solvers that run on every grid (grid_scheduler)
SHARED = GRIDS[1:]  # the grids every solver runs alike
LABELS = {
    "own": "each solver's own (DDIM and EVODiff end at label 0, DPM-Solver++ and UniPC at sigma = 0)",
    "time": "uniform in time",
    "logsnr": "uniform in log-SNR",
    "quadratic": "quadratic in time",
    "edm": "EDM, rho = 7",
}
EDM_RHO = 7.0


def levels(grid: str, steps: int, alphas_cumprod: torch.Tensor | np.ndarray) -> np.ndarray:
    """The grid's steps + 1 integer labels, T-1 first and 0 last, strictly decreasing.

    Args:
        grid: one of SHARED.
        steps: solver steps S, 1 <= S <= T-1.
        alphas_cumprod: the training schedule's a_t, t = 0 .. T-1.

    Returns:
        (S + 1,) int64 labels.

    Raises:
        ValueError: an unknown grid or steps out of range.
    """
    a = np.asarray(torch.as_tensor(alphas_cumprod, dtype=torch.float64))
    last = len(a) - 1
    if grid not in SHARED:
        raise ValueError(f"grid must be one of {SHARED}, got {grid!r}")
    if not 1 <= steps <= last:
        raise ValueError(f"a grid needs 1 <= steps <= {last}, got {steps}")
    return _integer(_continuous(grid, steps, a), last)


def _continuous(grid: str, steps: int, a: np.ndarray) -> np.ndarray:
    """The grid's labels as real numbers, from T-1 down to 0."""
    count = len(a)
    ramp = np.linspace(0.0, 1.0, steps + 1)
    if grid == "time":
        return (count - 1) * (1 - ramp)
    if grid == "quadratic":
        root_end = (1 / count) ** 0.5
        return (1 + ramp * (root_end - 1)) ** 2 * count - 1
    lambdas = 0.5 * (np.log(a) - np.log1p(-a))  # decreasing in the label
    if grid == "logsnr":
        targets = lambdas[-1] + ramp * (lambdas[0] - lambdas[-1])
    else:  # edm: kappa = exp(-lambda) from kappa_max to kappa_min with rho = 7
        k_max, k_min = np.exp(-lambdas[-1]), np.exp(-lambdas[0])
        targets = -EDM_RHO * np.log(k_max ** (1 / EDM_RHO) + ramp * (k_min ** (1 / EDM_RHO) - k_max ** (1 / EDM_RHO)))
    return np.interp(targets, lambdas[::-1], np.arange(count - 1, -1, -1, dtype=np.float64))


def _integer(labels: np.ndarray, last: int) -> np.ndarray:
    """Rounded labels, T-1 first and 0 last, strictly decreasing: label i is kept in [S - i, T-1 - i] and a label
    that collides with the next is pushed up by one (as EVODiff's own grid does)."""
    steps = len(labels) - 1
    index = np.arange(steps + 1)
    grid = np.clip(np.round(labels).astype(np.int64), steps - index, last - index)
    grid[0], grid[-1] = last, 0
    for i in range(steps - 1, -1, -1):
        grid[i] = max(grid[i], grid[i + 1] + 1)
    return grid


def grid_scheduler(name: str, config: dict, grid: str, steps: int, **options) -> SchedulerMixin:
    """A scheduler of `make_scheduler`'s names with its timesteps set to `steps` model calls on `grid`.

    On a shared grid the calls are at g_0 .. g_{S-1} (S = steps) and the run ends at label 0, except EVODiff with
    `final_denoise` or `lower_order_final=False`, whose S - 1 solver steps call the model at every level, g_S = 0
    included (docs/methods.md, EVODiff, "Its own options"). "own" is `make_scheduler` with `set_timesteps(steps)`.

    Args:
        name: "ddim", "dpmsolver++", "unipc" or "evodiff".
        config: the backbone's scheduler config.
        grid: one of GRIDS.
        steps: the number of model calls (the NFE).
        options: EVODiff's `final_denoise` and `lower_order_final` (any grid).

    Returns:
        The scheduler, ready to step.

    Raises:
        ValueError: an unknown grid or name, or options for another solver than EVODiff.
    """
    if options and name != "evodiff":
        raise ValueError(f"options {sorted(options)} are EVODiff's; {name} takes none")
    if grid == "own":
        scheduler = (
            EVODiffScheduler.from_config(config, timestep_spacing="linspace", **options)
            if options
            else make_scheduler(name, config)
        )
        scheduler.set_timesteps(steps)
        return scheduler
    to_label_0 = {**config, "final_sigmas_type": "sigma_min"}
    if name == "ddim":  # DDIM's deterministic step is DPM-Solver++(1)
        scheduler = DPMSolverMultistepScheduler.from_config(to_label_0, algorithm_type="dpmsolver++", solver_order=1)
    elif name == "evodiff":
        scheduler = EVODiffScheduler.from_config(config, **options)
    else:
        scheduler = make_scheduler(name, to_label_0)
    calls_at_end = isinstance(scheduler, EVODiffScheduler) and scheduler.calls_at_end
    labels = levels(grid, steps - 1 if calls_at_end else steps, scheduler.alphas_cumprod)
    set_calls(scheduler, labels if calls_at_end else labels[:-1])
    return scheduler


def set_calls(scheduler: SchedulerMixin, calls: np.ndarray) -> None:
    """Sets a scheduler's model calls to `calls` (strictly decreasing labels), its last step landing on label 0.

    DPM-Solver++ and EVODiff take them through `set_timesteps(timesteps=...)` (DPM-Solver++ needs
    `final_sigmas_type="sigma_min"` to end at label 0). UniPC's `set_timesteps` takes no labels: its timesteps and
    sigmas are set as DPM-Solver++'s `set_timesteps` computes them, after a call that resets its state.

    Args:
        scheduler: DPMSolverMultistepScheduler, UniPCMultistepScheduler or EVODiffScheduler.
        calls: the labels the model is called at.

    Raises:
        ValueError: a scheduler that cannot take a grid (DDIMScheduler: use `grid_scheduler`) or one set to end
            elsewhere than label 0.
    """
    calls = np.asarray(calls, dtype=np.int64)
    if isinstance(scheduler, EVODiffScheduler):
        scheduler.set_timesteps(timesteps=calls)
        return
    if not isinstance(scheduler, (DPMSolverMultistepScheduler, UniPCMultistepScheduler)):
        raise ValueError(f"{type(scheduler).__name__} cannot run a given grid; use grid_scheduler")
    if scheduler.config.final_sigmas_type != "sigma_min":
        raise ValueError("a grid ends at label 0: build the scheduler with final_sigmas_type='sigma_min'")
    if isinstance(scheduler, DPMSolverMultistepScheduler):
        scheduler.set_timesteps(timesteps=calls.tolist())
        return
    scheduler.set_timesteps(len(calls))
    a = scheduler.alphas_cumprod.double().numpy()
    kappas = ((1 - a) / a) ** 0.5
    sigmas = np.append(np.interp(calls, np.arange(len(a)), kappas), kappas[0])
    scheduler.sigmas = torch.from_numpy(sigmas.astype(np.float32))
    scheduler.timesteps = torch.from_numpy(calls.copy())


@torch.no_grad()
def ode_solve(
    backbone: Backbone,
    scheduler: SchedulerMixin,
    x: torch.Tensor,
    embeddings: torch.Tensor,
    on_step: Callable[[torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """The scheduler's deterministic solve from x (one model call per timestep).

    Args:
        backbone: the denoiser.
        scheduler: with its timesteps set.
        x: the initial noise.
        embeddings: the conditions' embeddings.
        on_step: called with each new iterate (or returned predictor point).

    Returns:
        The final sample.
    """
    for t in scheduler.timesteps:
        out = backbone.predict(x, t, embeddings)
        x = scheduler.step(out, t, x).prev_sample
        if on_step is not None:
            on_step(x)
    return x

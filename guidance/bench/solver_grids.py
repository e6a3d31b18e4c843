"""The solvers suite's grid comparison: every solver on one shared time grid, against the exact ODE solution.

For each grid of guidance/schedulers/grids.py and each NFE, every solver (and EVODiff in each of its official
options) integrates the probability-flow ODE from the same noise; its error is each sample's L2 distance to the
exact solution at the level where it ends (label 0, or the clean level for the solvers that end there: the exact
solution's denoised estimate at label 0). The exact solution is DDIM (first order, float64 updates) through every
label from T-1 to 0, each label interval cut into `refine` steps uniform in log-SNR where the data's denoiser is
exact at any noise level (the mixture); its own error is read from the same solve at half the steps.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from guidance.backbone import Backbone
from guidance.bench.common import goal_over
from guidance.statistics import bootstrap_interval, ratio_of_means
from guidance.schedulers.evodiff import EVODiffScheduler
from guidance.schedulers.grids import SOLVERS, grid_scheduler, ode_solve
from guidance.vp_arithmetic import to_eps_and_x0

EVODIFF_OPTIONS = {  # the official sampler's options at order 2 (docs/methods.md, EVODiff, "Its own options")
    "evodiff": {},
    "evodiff, final denoise": {"final_denoise": True},
    "evodiff, full last step": {"lower_order_final": False},
}
CLAIM_NFE, CLAIM_RATIO = 10, 0.55  # EVODiff's claim: reconstruction error -45% against DPM-Solver++ at NFE 10
SEED = 500


@dataclass(frozen=True)
class GridPlan:
    """What the grid comparison runs.

    Attributes:
        nfes: the model calls per solve.
        samples: noises (and classes) per solve.
        reference_stride: the exact solution calls every this-many-th label (1: every label).
        refine: steps per label interval of the exact solution, uniform in log-SNR (the mixture only).
        batch: samples per model call.
    """

    nfes: tuple[int, ...]
    samples: int
    reference_stride: int = 1
    refine: int = 1
    batch: int = 64


def methods() -> dict[str, tuple[str, dict]]:
    """Every row's method: the solvers, then EVODiff's options (label: (solver, options))."""
    return {name: (name, {}) for name in SOLVERS[:-1]} | {
        label: ("evodiff", options) for label, options in EVODIFF_OPTIONS.items()
    }


def end_level(scheduler) -> str:
    """Where a solver's run ends: "clean" (sigma = 0) or "label 0"."""
    if isinstance(scheduler, EVODiffScheduler):
        return "clean" if scheduler.config.final_denoise or int(scheduler.timesteps[-1]) == -1 else "label 0"
    if hasattr(scheduler, "sigmas"):
        return "clean" if float(scheduler.sigmas[-1]) == 0 else "label 0"
    return "label 0" if float(scheduler.final_alpha_cumprod) < 1 else "clean"  # DDIMScheduler


def exact_levels(backbone: Backbone, stride: int, refine: int) -> tuple[list[float], list[int]]:
    """The exact solution's levels: every `stride`-th label from T-1 down to 0, each interval cut into `refine`
    steps uniform in lambda.

    Returns:
        (float64 a_t of every level, the label of every level, -1 between labels).
    """
    a = backbone.alphas_cumprod.double().numpy()
    labels = np.unique(np.append(np.arange(len(a) - 1, -1, -stride), 0))[::-1]
    lambdas = 0.5 * (np.log(a[labels]) - np.log1p(-a[labels]))
    alphas, named = [], []
    for i, label in enumerate(labels):
        alphas.append(float(a[label]))
        named.append(int(label))
        if i + 1 < len(labels):
            between = np.linspace(lambdas[i], lambdas[i + 1], refine + 1)[1:-1]
            alphas += (1 / (1 + np.exp(-2 * between))).tolist()
            named += [-1] * len(between)
    return alphas, named


@torch.no_grad()
def exact_solution(backbone: Backbone, x: Tensor, embeddings: Tensor, stride: int = 1, refine: int = 1) -> dict[str, Tensor]:
    """The ODE's solution from x by DDIM through `exact_levels`, at both ends.

    Args:
        backbone: the denoiser; with refine > 1 it must take any alpha-bar (`output(x, a)`, the mixture's, which
            then gives every level's output).
        x: the initial noise.
        embeddings: the conditions' embeddings.
        stride, refine: as `exact_levels`.

    Returns:
        "label 0": the solution at label 0; "clean": its denoised estimate there (float64).
    """
    alphas, labels = exact_levels(backbone, stride, refine)
    x = x.double()

    def eps_and_x0(x: Tensor, a: float, label: int) -> tuple[Tensor, Tensor]:
        if hasattr(backbone, "output"):  # a denoiser exact at any alpha-bar, in float64
            out = backbone.output(x, a)
        else:
            out = backbone.predict(x.float(), torch.tensor(label), embeddings).double()
        return to_eps_and_x0(x, out, a, backbone.prediction_type)

    for a, label, a_next in zip(alphas[:-1], labels[:-1], alphas[1:]):
        eps, x0 = eps_and_x0(x, a, label)
        x = a_next**0.5 * x0 + (1 - a_next) ** 0.5 * eps
    return {"label 0": x, "clean": eps_and_x0(x, alphas[-1], 0)[1]}


def distances(approx: Tensor, exact: Tensor) -> list[float]:
    """Per sample, the L2 distance over all its dimensions."""
    return (approx.double() - exact).flatten(1).norm(dim=1).tolist()


def error_row(errors: list[float]) -> dict:
    """The mean error over samples, its bootstrap 95% interval and the number of samples."""
    interval = bootstrap_interval(errors)
    return {"error": statistics.fmean(errors), "error_ci": None if interval is None else list(interval), "error_n": len(errors)}


def compare(
    backbone: Backbone, conditions: Sequence, grids: Sequence[str], plan: GridPlan, progress: Callable[[dict], None] | None = None
) -> tuple[list[dict], dict, dict]:
    """Every method on every grid at every NFE against the exact solution.

    Args:
        backbone: the denoiser.
        conditions: one condition per sample.
        grids: names of guidance.schedulers.grids.GRIDS.
        plan: NFEs, samples, the exact solution's resolution, the batch.
        progress: called with each row.

    Returns:
        (rows, errors by (grid, method, nfe), the exact solution's half-step check by end).
    """
    generator = torch.Generator().manual_seed(SEED)
    noise = backbone.initial_noise(len(conditions), generator)
    embeddings = backbone.embed(list(conditions))
    chunks = range(0, len(conditions), plan.batch)
    exact = _batched(
        chunks, plan, lambda s: exact_solution(backbone, noise[s], embeddings[s], plan.reference_stride, plan.refine)
    )
    check = exact_check(
        backbone, noise[: plan.batch], embeddings[: plan.batch], plan, {e: v[: plan.batch] for e, v in exact.items()}
    )
    rows, errors = [], {}
    for grid in grids:
        for label, (solver, options) in methods().items():
            for nfe in plan.nfes:
                finals, end = [], None
                for start in chunks:  # a scheduler per batch: the multistep solvers keep state between steps
                    scheduler = grid_scheduler(solver, backbone.scheduler_config, grid, nfe, **options)
                    part = slice(start, start + plan.batch)
                    finals.append(ode_solve(backbone, scheduler, noise[part], embeddings[part]))
                    end = end_level(scheduler)
                finals = torch.cat(finals)
                errors[grid, label, nfe] = distances(finals, exact[end])
                row = {
                    "task": "ode",
                    "method": label,
                    "grid": grid,
                    "steps": nfe,
                    "nfe": nfe,
                    **error_row(errors[grid, label, nfe]),
                    "end": end,
                }
                rows.append(row)
                if progress is not None:
                    progress(row)
    return rows, errors, check


def _batched(chunks: range, plan: GridPlan, solve: Callable[[slice], dict[str, Tensor]]) -> dict[str, Tensor]:
    parts = [solve(slice(start, start + plan.batch)) for start in chunks]
    return {end: torch.cat([p[end] for p in parts]) for end in parts[0]}


def exact_check(
    backbone: Backbone, noise: Tensor, embeddings: Tensor, plan: GridPlan, exact: dict[str, Tensor]
) -> dict[str, float]:
    """The exact solution's own error, read as its mean distance to the same solve at half the steps (first batch).

    Args:
        backbone: the denoiser.
        noise, embeddings: the first batch's.
        plan: the exact solution's resolution.
        exact: the exact solution's first batch, by end.
    """
    if plan.refine > 1:
        half = exact_solution(backbone, noise, embeddings, plan.reference_stride, plan.refine // 2)
    else:
        half = exact_solution(backbone, noise, embeddings, plan.reference_stride * 2, 1)
    return {end: statistics.fmean(distances(half[end], values)) for end, values in exact.items()}


def best_evodiff(errors: dict, grids: Sequence[str], nfes: Sequence[int]) -> dict[str, str]:
    """Per grid, EVODiff's option with the lowest geometric mean error over the NFEs."""
    best = {}
    for grid in grids:
        scores = {
            label: statistics.fmean(math.log(statistics.fmean(errors[grid, label, n]) + 1e-300) for n in nfes)
            for label in EVODIFF_OPTIONS
        }
        best[grid] = min(scores, key=scores.get)
    return best


def claim_goals(errors: dict, grids: Sequence[str], nfes: Sequence[int], where: str) -> list[dict]:
    """EVODiff's claim per grid at CLAIM_NFE: its error over DPM-Solver++'s <= CLAIM_RATIO (a verdict from the
    bootstrap interval of the ratio of means, sample by sample from the same noise), for EVODiff as the playground
    runs it and for its best option on that grid."""
    found = []
    if CLAIM_NFE not in nfes:
        return found
    best = best_evodiff(errors, grids, nfes)
    for grid in grids:
        for label in dict.fromkeys(("evodiff", best[grid])):
            pairs = list(zip(errors[grid, label, CLAIM_NFE], errors[grid, "dpmsolver++", CLAIM_NFE]))
            name = f"{where}, grid {grid}: {label} error at NFE {CLAIM_NFE} over DPM-Solver++'s (claim: -45%)"
            found.append(goal_over(name, pairs, CLAIM_RATIO, "x", statistic=ratio_of_means))
    return found

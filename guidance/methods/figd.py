"""FIGD (arXiv 2404.18252): the guidance gradient with the denoiser's Jacobian replaced by a scalar per step."""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable

import torch
from torch import Tensor

from guidance.energy import Energy
from guidance.methods.base import StepContext
from guidance.methods.freedom import FreeDoM, gradients_of
from guidance.methods.options import Option, without
from guidance.methods.predictors import Estimate
from guidance.vp_arithmetic import to_eps_and_x0

# docs/methods.md, FIGD step 3: profiles of w_t as functions of a_t, before the normalisation to mean 1 over the run
FISHER_WEIGHTS: dict[str, Callable[[float], float]] = {
    "unit": lambda a: 1.0,
    "flat-prior": lambda a: a**-0.5,  # J with eps_hat held constant: J's upper bound where log p_t is concave
    "gaussian-data": lambda a: a**0.5,  # J for N(0, I) data
}


@functools.lru_cache(maxsize=16)
def mean_weight(profile: str, alphas: tuple[float, ...]) -> float:
    """The mean of a w_t profile over a run's a_t: the same at every step of the run, so computed once.

    Args:
        profile: a name of FISHER_WEIGHTS.
        alphas: a_t at every step of the run.

    Returns:
        The mean of profile(a_t).
    """
    return statistics.fmean(FISHER_WEIGHTS[profile](a) for a in alphas)


FISHER_WEIGHT = Option(
    "fisher_weight",
    "unit",
    choices=tuple(FISHER_WEIGHTS),
    label="FIGD Fisher weight w_t",
    group="gradient",
    sweep="FIGD Fisher weight",
    sweep_values="unit, flat-prior, gaussian-data",
)


class FIGD(FreeDoM):
    """g = grad_{x0} E(c, x0_hat) with x0_hat detached from the UNet: no backward through the UNet.

    docs/methods.md, FIGD steps 1-4 [ours, from the paper's framing]: J = d x0_hat / d x_t is replaced by w_t I,
    and w_t multiplies the step size after its rule (rho_t = w_t * rule), or under DSG the guidance rate, so it
    acts whatever the rule. `fisher_weight` names w_t's profile, normalised to mean 1 over the run's steps.
    Windows, time travel, step-size rules and DSG are FreeDoM's, so the two compare step for step.

    Args:
        *args, **kwargs: FreeDoM's.
        fisher_weight: w_t's profile, a name of FISHER_WEIGHTS.

    Raises:
        MethodConfigError: `fisher_weight` is not a name of FISHER_WEIGHTS.
    """

    name = "figd"
    options = (
        *without(FreeDoM.options, "checkpointing"),  # no backward pass through the denoiser: no activations to keep
        FISHER_WEIGHT,
    )

    def __init__(self, *args, fisher_weight: str = FISHER_WEIGHT.default, **kwargs):
        super().__init__(*args, **kwargs)
        self.fisher_weight = FISHER_WEIGHT.checked(fisher_weight)

    def weight(self, ctx: StepContext) -> float:
        """w_t = profile(a_t) / mean of the profile over the run's steps (docs/methods.md, FIGD step 3)."""
        return FISHER_WEIGHTS[self.fisher_weight](ctx.a_t) / mean_weight(self.fisher_weight, ctx.alphas)

    def energy_gradients(self, ctx: StepContext, energies: list[Energy]) -> tuple[Estimate, list[Tensor], list[Tensor]]:
        """(the predictor's estimate, grad_{x0} E_i, E_i): autograd through the decoder and each energy only."""
        with torch.inference_mode():  # no graph, no saved activations: the graph starts at x0_hat
            estimate = self.predictor(ctx, ctx.x)
            x0 = to_eps_and_x0(ctx.x, estimate.eps, ctx.a_t, ctx.backbone.estimate_type)[1]
        x0 = x0.clone().requires_grad_(True)  # an ordinary tensor again, the leaf of the energy's graph
        estimate = Estimate(estimate.eps.clone(), None if estimate.delta is None else estimate.delta.clone(), estimate.scale)
        with torch.enable_grad():
            values, gradients = gradients_of(energies, ctx.backbone.guidance_decode(x0, self.tiny_decoder), x0)
        return estimate, gradients, values

    def describe(self) -> dict:
        """FreeDoM.describe with the Fisher weight profile."""
        return {**super().describe(), "fisher_weight": self.fisher_weight}

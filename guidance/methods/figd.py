"""FIGD (arXiv 2404.18252): the guidance gradient with the denoiser's Jacobian replaced by a Fisher bound."""
from __future__ import annotations

import torch
from torch import Tensor

from ..errors import MethodConfigError
from ..schedule import to_eps_and_x0
from .base import StepContext
from .predictors import Estimate
from .freedom import FreeDoM

FISHER_WEIGHTS = ("gaussian", "unit")


class FIGD(FreeDoM):
    """g = w_t grad_{x0} E(c, x0_hat) with x0_hat detached from the UNet: no backward through the UNet.

    docs/methods.md, FIGD steps 1-4 [ours, from the paper's framing]: J = d x0_hat / d x_t is replaced by w_t I;
    `fisher_weight` "gaussian" is w_t = 1 / sqrt(a_t) (the Gaussian-channel value), "unit" is w_t = 1.
    Windows, time travel, step-size rules and DSG are FreeDoM's, so the two compare step for step.
    """

    name = "figd"

    def __init__(self, *args, fisher_weight: str = "gaussian", **kwargs):
        if fisher_weight not in FISHER_WEIGHTS:
            raise MethodConfigError(f"fisher_weight must be one of {FISHER_WEIGHTS}, got {fisher_weight!r}")
        super().__init__(*args, **kwargs)
        self.fisher_weight = fisher_weight

    def weight(self, a_t: float) -> float:
        return a_t**-0.5 if self.fisher_weight == "gaussian" else 1.0

    def energy_gradient(self, ctx: StepContext) -> tuple[Estimate, Tensor, Tensor]:
        with torch.no_grad():
            estimate = self.predictor(ctx, ctx.x)
        x0 = to_eps_and_x0(ctx.x, estimate.eps, ctx.a_t, "epsilon")[1].detach().requires_grad_(True)
        with torch.enable_grad():
            energy = ctx.energy(ctx.backbone.decode(x0))
            (grad_x0,) = torch.autograd.grad(energy.sum(), x0)
        return estimate, self.weight(ctx.a_t) * grad_x0, energy

    def describe(self) -> dict:
        return {**super().describe(), "fisher_weight": self.fisher_weight}

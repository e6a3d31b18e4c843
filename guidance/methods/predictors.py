"""How the denoiser's branches combine into one noise estimate: conditional, CFG, Autoguidance.

Each predictor returns an `Estimate`: the combined noise estimate and, where an unconditional (or
guide) branch ran, delta = eps_c - eps_u with the weight w it carries, which FreeDoM's normalised
step size uses (docs/methods.md, "Step size").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from guidance.methods.options import Bound, Configurable, Option
from guidance.methods.step import StepContext
from guidance.vp_arithmetic import model_input, to_eps_and_x0


@dataclass
class Estimate:
    """A predictor's output: eps, and delta = eps_c - eps_u (None if no such branch ran) with its weight w.

    Attributes:
        eps: (B, C, H, W) the combined estimate, in the backbone's `estimate_type`: the noise estimate on VP models,
            the clean estimate x0 on flow models (there eps does not determine x0 at the first step, s = 1).
        delta: (B, C, H, W) eps_c - eps_u (or eps_c - eps_guide), None where no such branch ran.
        scale: the weight w that delta carries in eps.
    """

    eps: Tensor
    delta: Tensor | None = None
    scale: float = 1.0


def branch_eps(ctx: StepContext, x: Tensor, embeddings: Tensor, guide: bool = False) -> Tensor:
    """One denoiser branch's estimate in the backbone's `estimate_type`: eps, or x0 on a flow model (any prediction
    type is converted).

    Args:
        ctx: the step (its timestep, a_t and control).
        x: (B, C, H, W) x_t.
        embeddings: (B, L, D) the condition the branch sees.
        guide: evaluate the guide model (Autoguidance) instead of the main one.

    Returns:
        (B, C, H, W) eps.
    """
    backbone = ctx.backbone
    out = backbone.predict(model_input(x, ctx.a_t, backbone.prediction_type), ctx.t, embeddings, ctx.control, guide=guide)
    eps, x0 = to_eps_and_x0(x, out, ctx.a_t, backbone.prediction_type)
    return x0 if backbone.estimate_type == "sample" else eps


def paired_eps(ctx: StepContext, x: Tensor, first: Tensor, second: Tensor) -> tuple[Tensor, Tensor]:
    """Two branches of the same model in one batched call.

    Args:
        ctx: the step.
        x: (B, C, H, W) x_t, which both branches see.
        first: (B, L, D) the first branch's condition.
        second: (B, L, D) the second branch's condition.

    Returns:
        (eps of `first`, eps of `second`).
    """
    both = branch_eps(ctx, torch.cat([x, x]), torch.cat([first, second]))
    return both.chunk(2)


# w of CFG or Autoguidance; under a gradient method 1 disables CFG
CFG_SCALE = Option(
    "cfg_scale",
    1.0,
    Bound(0, 20, slider=(1, 10)),
    param="scale",
    label="CFG / guidance scale",
    step=0.1,
    info="1: off",
    sweep="CFG scale",
    sweep_values="1.5, 2.5, 4",
)


class Predictor(Configurable):
    """The conditional branch alone: D = D(x_t; c)."""

    name = "cond"

    def __call__(self, ctx: StepContext, x: Tensor) -> Estimate:
        """The noise estimate at `x`: the predictor's branches, combined.

        Args:
            ctx: the step (its timestep, embeddings and control).
            x: x_t; FreeDoM passes a copy that requires grad, so the branches stay in its graph.

        Returns:
            The combined estimate.
        """
        return self.combine(*self.branches(ctx, x))

    def branches(self, ctx: StepContext, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """The denoiser's branches at `x` (as `__call__`'s arguments).

        Returns:
            (D_c, the branch D_c is weighed against: none here), as noise estimates.
        """
        return branch_eps(ctx, x, ctx.embeddings), None

    def combine(self, eps_c: Tensor, eps_other: Tensor | None) -> Estimate:
        """The estimate of the branches: D_c alone.

        Args:
            eps_c: D_c.
            eps_other: the other branch of `branches` (unused here).

        Returns:
            The estimate.
        """
        return Estimate(eps_c)

    def reset(self) -> None:
        """Forget what an earlier run left behind (GFCG's carried reading); the sampler calls it before each run."""

    def describe(self) -> dict:
        """The predictor's name and options, for reports."""
        return {"name": self.name}


class CFG(Predictor):
    """Classifier-free guidance (Ho & Salimans 2022): D = D_u + w (D_c - D_u).

    Args:
        scale: w (1: the conditional branch alone, at twice its cost).
    """

    name = "cfg"
    options = (CFG_SCALE,)

    def __init__(self, scale: float = 7.5):
        self.scale = scale

    def branches(self, ctx: StepContext, x: Tensor) -> tuple[Tensor, Tensor]:
        """D_c and D_u in one batched call."""
        return paired_eps(ctx, x, ctx.embeddings, ctx.null_embeddings)

    def combine(self, eps_c: Tensor, eps_other: Tensor) -> Estimate:
        """D_other + w (D_c - D_other).

        Args:
            eps_c: D_c.
            eps_other: D_u (or Autoguidance's D_guide).

        Returns:
            The estimate, with delta = D_c - D_other and its weight w.
        """
        delta = eps_c - eps_other
        return Estimate(eps_other + self.scale * delta, delta, self.scale)

    def describe(self) -> dict:
        """The name and w."""
        return {"name": self.name, "scale": self.scale}


class Autoguidance(CFG):
    """Autoguidance (Karras et al. 2024): D = D_guide(c) + w (D_c - D_guide(c)), the guide a weaker model.

    Args:
        scale: w; the backbone must hold a guide model.
    """

    name = "atg"

    def __init__(self, scale: float = 2.0):
        super().__init__(scale)

    def branches(self, ctx: StepContext, x: Tensor) -> tuple[Tensor, Tensor]:
        """D_c, and the guide at c: two calls, one per model."""
        return branch_eps(ctx, x, ctx.embeddings), self.guide(ctx, x, ctx.embeddings)

    def guide(self, ctx: StepContext, x: Tensor, embeddings: Tensor) -> Tensor:
        """The guide model's branch.

        Args:
            ctx: the step.
            x: x_t.
            embeddings: the condition the guide sees: c (GFCG's fused variant passes c_ref where it acts).

        Returns:
            D_guide as a noise estimate.
        """
        return branch_eps(ctx, x, embeddings, guide=True)

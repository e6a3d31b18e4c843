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
from guidance.vp_arithmetic import to_eps_and_x0


@dataclass
class Estimate:
    """A predictor's output: eps, and delta = eps_c - eps_u (None if no such branch ran) with its weight w."""

    eps: Tensor
    delta: Tensor | None = None
    scale: float = 1.0


def branch_eps(ctx: StepContext, x: Tensor, embeddings: Tensor, guide: bool = False) -> Tensor:
    """Noise estimate of one denoiser branch (any prediction type is converted to eps)."""
    out = ctx.backbone.predict(x, ctx.t, embeddings, ctx.control, guide=guide)
    return to_eps_and_x0(x, out, ctx.a_t, ctx.backbone.prediction_type)[0]


def paired_eps(ctx: StepContext, x: Tensor, first: Tensor, second: Tensor) -> tuple[Tensor, Tensor]:
    """Two branches of the same model in one batched call."""
    both = branch_eps(ctx, torch.cat([x, x]), torch.cat([first, second]))
    return both.chunk(2)


# w of CFG or Autoguidance; under a gradient method 1 disables CFG
CFG_SCALE = Option("cfg_scale", 1.0, Bound(0, 20, slider=(1, 10)), param="scale", label="CFG / guidance scale", step=0.1, info="1: off",
                   sweep="CFG scale", sweep_values="1.5, 2.5, 4")  # fmt: skip


class Predictor(Configurable):
    """The conditional branch alone: D = D(x_t; c)."""

    name = "cond"

    def __call__(self, ctx: StepContext, x: Tensor) -> Estimate:
        return Estimate(branch_eps(ctx, x, ctx.embeddings))

    def reset(self) -> None:
        """Forget what an earlier run left behind (GFCG's carried reading); the sampler calls it before each run."""

    def describe(self) -> dict:
        return {"name": self.name}


class CFG(Predictor):
    """Classifier-free guidance (Ho & Salimans 2022): D = D_u + w (D_c - D_u)."""

    name = "cfg"
    options = (CFG_SCALE,)

    def __init__(self, scale: float = 7.5):
        self.scale = scale

    def __call__(self, ctx: StepContext, x: Tensor) -> Estimate:
        eps_c, eps_u = paired_eps(ctx, x, ctx.embeddings, ctx.null_embeddings)
        delta = eps_c - eps_u
        return Estimate(eps_u + self.scale * delta, delta, self.scale)

    def describe(self) -> dict:
        return {"name": self.name, "scale": self.scale}


class Autoguidance(Predictor):
    """Autoguidance (Karras et al. 2024): D = D_guide(c) + w (D_c - D_guide(c)), the guide a weaker model."""

    name = "atg"
    options = (CFG_SCALE,)

    def __init__(self, scale: float = 2.0):
        self.scale = scale

    def __call__(self, ctx: StepContext, x: Tensor) -> Estimate:
        eps_c = branch_eps(ctx, x, ctx.embeddings)
        eps_g = branch_eps(ctx, x, ctx.embeddings, guide=True)
        delta = eps_c - eps_g
        return Estimate(eps_g + self.scale * delta, delta, self.scale)

    def describe(self) -> dict:
        return {"name": self.name, "scale": self.scale}

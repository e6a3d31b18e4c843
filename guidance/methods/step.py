"""What a method sees at one step (StepContext) and what it hands the scheduler (Prediction).

Their own module so that predictors and methods both import them without a cycle.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from guidance.backbone import Backbone, Control


@dataclass
class StepContext:
    """Everything a method may read at one step. Tensors are (B, C, H, W) unless noted."""

    backbone: Backbone
    x: Tensor
    t: Tensor  # integer timestep, 0-d
    index: int  # 0 is the first (noisiest) step
    steps: int
    a_t: float
    a_prev: float
    conditions: list[str | None]
    embeddings: Tensor  # (B, L, D) of `conditions`
    null_embeddings: Tensor  # (B, L, D) of the null condition
    control: Control | None = None
    energy: "torch.nn.Module | None" = None
    alphas: tuple[float, ...] = ()  # a_t at every step of the run (FIGD's weight profiles average over it)

    def rows(self, keep: Tensor) -> "StepContext":
        """The context of the samples where `keep` ((B,) bool) is true: a branch evaluated on a sub-batch."""
        kept = keep.nonzero()[:, 0].tolist()
        control = None if self.control is None else self.control.rows(keep)
        return replace(self, x=self.x[keep], conditions=[self.conditions[i] for i in kept], embeddings=self.embeddings[keep],
                       null_embeddings=self.null_embeddings[keep], control=control)  # fmt: skip

    @property
    def progress(self) -> float:
        """Fraction of the run done before this step: 0 at the first step."""
        return self.index / self.steps


@dataclass
class Prediction:
    """Model output for the scheduler (guided, detached) and what was learnt along the way."""

    model_output: Tensor
    eps: Tensor
    x0: Tensor
    guidance_delta: Tensor | None = None  # eps_c - eps_u where CFG ran: sizes FreeDoM's normalised step
    guidance_scale: float = 1.0  # the weight w_cfg (or w_atg) that guidance_delta carries in eps
    guidance: Tensor | None = None  # sum over the guiding terms of rho_i g_i, g_i = grad_{x_t} E_i (or an estimate)
    energy: Tensor | None = None  # (B,) energy of x0 where the method computed it

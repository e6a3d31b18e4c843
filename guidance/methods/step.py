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
    """Everything a method may read at one step. Tensors are (B, C, H, W) unless noted.

    Attributes:
        backbone: the denoiser, its decoders and its schedule.
        x: x_t.
        t: the integer timestep, 0-d.
        index: the step's position in the run; 0 is the first (noisiest) step.
        steps: the run's step count.
        a_t: alpha-bar at t.
        a_prev: alpha-bar where the step lands (1 at the clean end).
        conditions: one prompt or class name per sample; None is the null condition.
        embeddings: (B, L, D) of `conditions`.
        null_embeddings: (B, L, D) of the null condition.
        control: the ControlNet's map, if any.
        energy: the energy that guides the method (None where there is none).
        alphas: a_t at every step of the run (FIGD's weight profiles average over it).
    """

    backbone: Backbone
    x: Tensor
    t: Tensor
    index: int
    steps: int
    a_t: float
    a_prev: float
    conditions: list[str | None]
    embeddings: Tensor
    null_embeddings: Tensor
    control: Control | None = None
    energy: "torch.nn.Module | None" = None
    alphas: tuple[float, ...] = ()

    def rows(self, keep: Tensor) -> "StepContext":
        """The context of a sub-batch, for a branch evaluated on some samples only.

        Args:
            keep: (B,) bool, true for the samples to keep.

        Returns:
            The context with x, conditions, embeddings and control cut to those samples.
        """
        kept = keep.nonzero()[:, 0].tolist()
        control = None if self.control is None else self.control.rows(keep)
        return replace(
            self,
            x=self.x[keep],
            conditions=[self.conditions[i] for i in kept],
            embeddings=self.embeddings[keep],
            null_embeddings=self.null_embeddings[keep],
            control=control,
        )

    @property
    def progress(self) -> float:
        """Fraction of the run done before this step: 0 at the first step."""
        return self.index / self.steps


@dataclass
class Prediction:
    """Model output for the scheduler (guided, detached) and what was learnt along the way. Tensors are (B, C, H, W)
    unless noted.

    Attributes:
        model_output: the guided estimate as the backbone's prediction type, for the scheduler.
        eps: the guided noise estimate.
        x0: x0_hat, the clean estimate (Tweedie) of eps.
        guidance_delta: eps_c - eps_u where CFG ran: sizes FreeDoM's normalised step.
        guidance_scale: the weight w_cfg (or w_atg) that guidance_delta carries in eps.
        guidance: sum over the guiding terms of rho_i g_i, g_i = grad_{x_t} E_i (or an estimate).
        energy: (B,) energy of x0 where the method computed it.
    """

    model_output: Tensor
    eps: Tensor
    x0: Tensor
    guidance_delta: Tensor | None = None
    guidance_scale: float = 1.0
    guidance: Tensor | None = None
    energy: Tensor | None = None

"""GFCG: gradient-free classifier guidance (arXiv 2411.15393), a predictor built on CFG or Autoguidance."""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor

from ..errors import MethodConfigError
from ..schedule import to_eps_and_x0
from .predictors import Predictor, branch_eps, paired_eps

if TYPE_CHECKING:
    from .base import StepContext

BASES = ("none", "cfg", "atg")
SCALE_RULES = ("confusion", "ratio")


class Classifier(Protocol):
    """Class probabilities of pixels in [-1, 1]; used in inference mode only."""

    class_names: tuple[str, ...]

    def __call__(self, images: Tensor) -> Tensor: ...


class GFCG(Predictor):
    """A classifier picks a reference class and a scale per sample and step; no gradients anywhere.

    docs/methods.md, GFCG steps 1-4 [ours]: p = softmax(f(x0_hat(D_c))); c_ref = argmax_{k != c} p_k;
    w_t = w_max (1 - p_c) ("confusion") or w_max p_ref / (p_c + p_ref) ("ratio"), 0 outside `window`;
      base "none": D = D_c + w_t (D_c - D(c_ref))
      base "cfg":  D = D_c + (w_cfg - 1)(D_c - D_u) + w_t (D_c - D(c_ref))
      base "atg":  D = D_c + (w_atg - 1)(D_c - D_guide(c)) + w_t (D_c - D(c_ref))
      base "atg", fused: D = D_c + (w_atg - 1 + w_t)(D_c - D_guide(c_ref))   (two calls, ATG's cost)
    """

    name = "gfcg"

    def __init__(
        self,
        classifier: Classifier,
        max_scale: float = 2.0,
        base: str = "none",
        base_scale: float = 1.0,
        scale_rule: str = "confusion",
        fused: bool = False,
        window: "tuple[float, float]" = (0.0, 1.0),
    ):
        if base not in BASES or scale_rule not in SCALE_RULES:
            raise MethodConfigError(f"GFCG base must be one of {BASES} and scale_rule one of {SCALE_RULES}")
        if fused and base != "atg":
            raise MethodConfigError("the fused GFCG variant is defined with Autoguidance (base='atg')")
        self.classifier, self.max_scale, self.base, self.base_scale = classifier, max_scale, base, base_scale
        self.scale_rule, self.fused, self.window = scale_rule, fused, window
        self.last_reference: list[str] = []
        self.last_scale: Tensor | None = None

    def reference(self, ctx: "StepContext", eps_c: Tensor) -> tuple[list[str], Tensor]:
        """The most confusable non-target class and the guidance scale w_t, per sample."""
        names = self.classifier.class_names
        target = torch.tensor([names.index(c) for c in self._targets(ctx)])
        with torch.no_grad():
            x0 = to_eps_and_x0(ctx.x.detach(), eps_c.detach(), ctx.a_t, "epsilon")[1]
            probs = self.classifier(ctx.backbone.decode(x0)).float().cpu()
        p_c = probs.gather(1, target[:, None])[:, 0]
        others = probs.scatter(1, target[:, None], -1.0)
        p_ref, ref = others.max(1)
        if self.scale_rule == "confusion":
            scale = self.max_scale * (1 - p_c)
        else:
            scale = self.max_scale * p_ref / (p_c + p_ref + 1e-12)
        if not self.window[0] <= ctx.progress < self.window[1]:
            scale = torch.zeros_like(scale)
        self.last_reference, self.last_scale = [names[i] for i in ref.tolist()], scale
        return self.last_reference, scale

    def _targets(self, ctx: "StepContext") -> list[str]:
        if any(c is None or c not in self.classifier.class_names for c in ctx.conditions):
            raise MethodConfigError(f"GFCG needs a target class among {self.classifier.class_names}")
        return ctx.conditions

    def __call__(self, ctx: "StepContext", x: Tensor) -> tuple[Tensor, Tensor | None]:
        eps_c = branch_eps(ctx, x, ctx.embeddings)
        ref_names, scale = self.reference(ctx, eps_c)
        w_t = scale.to(x.device).reshape(-1, 1, 1, 1)
        ref_embeddings = ctx.backbone.embed(ref_names)
        if self.fused:
            eps_ref = branch_eps(ctx, x, ref_embeddings, guide=True)
            return eps_c + (self.base_scale - 1 + w_t) * (eps_c - eps_ref), None
        if self.base == "cfg":
            eps_u, eps_ref = paired_eps(ctx, x, ctx.null_embeddings, ref_embeddings)
            delta = eps_c - eps_u
            return eps_c + (self.base_scale - 1) * delta + w_t * (eps_c - eps_ref), delta
        eps_ref = branch_eps(ctx, x, ref_embeddings)
        eps = eps_c + w_t * (eps_c - eps_ref)
        if self.base == "atg":
            eps = eps + (self.base_scale - 1) * (eps_c - branch_eps(ctx, x, ctx.embeddings, guide=True))
        return eps, None

    def describe(self) -> dict:
        return {
            "name": self.name,
            "max_scale": self.max_scale,
            "base": self.base,
            "base_scale": self.base_scale,
            "scale_rule": self.scale_rule,
            "fused": self.fused,
            "window": list(self.window),
        }

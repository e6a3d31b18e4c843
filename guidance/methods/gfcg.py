"""GFCG: gradient-free classifier guidance (arXiv 2411.15393), a predictor built on CFG or Autoguidance."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
from torch import Tensor

from guidance.backbone import Control
from guidance.energy import Classifier
from guidance.errors import MethodConfigError
from guidance.methods.options import TINY_DECODER, Bound, Option
from guidance.methods.predictors import CFG, Autoguidance, Estimate, Predictor, branch_eps
from guidance.methods.step import StepContext
from guidance.vp_arithmetic import to_eps_and_x0

BASES = ("none", "cfg", "atg")
SCALE_RULES = ("confusion", "ratio")


class Reading(NamedTuple):
    """What one classifier reading sets, per sample.

    Attributes:
        embeddings: (B, L, D) c_ref's embeddings.
        scale: (B, 1, 1, 1) w_t.
    """

    embeddings: Tensor
    scale: Tensor

    def acting(self) -> Tensor:
        """(B,) bool: the samples GFCG acts on (w_t != 0)."""
        return self.scale.flatten() != 0


@dataclass
class GFCGState:
    """What GFCG carries from one evaluation to the next within a run; `GFCG.reset` starts each run with a new one.

    Attributes:
        pending: with `one_call`, the reading taken from this evaluation's D_c for the next step (docs/methods.md,
            GFCG, One call); None before the first and after the last.
        read_at: the step the classifier last read x0_hat for (None: no reading yet this run).
        reading: that reading, None where it set w_t = 0 for every sample; it holds until the next reading
            (docs/methods.md, GFCG, Interval).
    """

    pending: Reading | None = None
    read_at: int | None = None
    reading: Reading | None = None


MAX_SCALE = Option(
    "gfcg_max_scale",
    2.0,
    Bound(0, 10, slider=(0, 5)),
    param="max_scale",
    label="GFCG maximum scale w_max",
    step=0.1,
    group="gfcg",
    sweep="GFCG maximum scale",
    sweep_values="0, 1, 2",
)
RULE = Option("gfcg_rule", "confusion", choices=SCALE_RULES, param="scale_rule", label="GFCG scale rule", group="gfcg")
FUSED = Option(
    "gfcg_fused",
    False,
    param="fused",
    label="Fused with Autoguidance (atg+gfcg at ATG's cost)",
    group="gfcg",
    excludes="gfcg_one_call",
)
WINDOW = Option("gfcg_window", (0.0, 1.0), window="GFCG window", empty_window=True, param="window")
# w_t below this fraction of w_max counts as 0 (docs/methods.md GFCG step 3)
THRESHOLD = Option("gfcg_threshold", 0.0, Bound(0, 1), param="threshold")
# c_ref and w_t from the previous step, so that every branch runs in one batched call (docs/methods.md GFCG, One call)
ONE_CALL = Option(
    "gfcg_one_call",
    False,
    param="one_call",
    group="gfcg",
    label="One batched call (reference class from the previous step; not with Fused)",
)
# the classifier reads x0_hat every n steps of the window; c_ref and w_t hold in between (docs/methods.md GFCG, Interval)
INTERVAL = Option(
    "gfcg_interval",
    1,
    Bound(1, 50, slider=(1, 10)),
    param="interval",
    group="gfcg",
    label="GFCG classifier interval (read x0_hat every n steps)",
)


class GFCG(Predictor):
    """A classifier picks a reference class and a scale per sample and step; no gradients anywhere.

    docs/methods.md, GFCG steps 1-4 [ours]: p = softmax(f(x0_hat(D_c))); c_ref = argmax_{k != c} p_k;
    w_t = w_max (1 - p_c) ("confusion") or w_max p_ref / (p_c + p_ref) ("ratio"), 0 outside `window`
    and where w_t < threshold * w_max (a sample the classifier already reads as c);
      base "none": D = D_c + w_t (D_c - D(c_ref))
      base "cfg":  D = D_c + (w_cfg - 1)(D_c - D_u) + w_t (D_c - D(c_ref))
      base "atg":  D = D_c + (w_atg - 1)(D_c - D_guide(c)) + w_t (D_c - D(c_ref))
      base "atg", fused: D = D_c + (w_atg - 1 + w_t)(D_c - D_guide(c_ref))   (two calls, ATG's cost)
    that is, the base's D from its predictor (guidance/methods/predictors.py: Predictor, CFG, Autoguidance) plus
    w_t (D_c - D_ref), where D_ref is D(c_ref), or in the fused variant the guide run at c_ref.
    Where GFCG does not act (outside `window`, w_max = 0, or w_t = 0 for every sample) it is its base
    at the base's cost: no reference branch, and outside the window or with w_max = 0 no decode and no
    classifier either; within a step, D(c_ref) runs only for the samples with w_t != 0 (docs/methods.md,
    GFCG, Cost). With CFG, D_c and D_u are one batched call. With `one_call` [ours], c_ref and w_t come from
    the previous evaluation's x0_hat, so that D_c, D_u and D(c_ref) run as one batched call (docs/methods.md,
    GFCG, One call).

    Args:
        classifier: reads x0_hat's pixels; the conditions must be among its class names.
        max_scale: w_max.
        base: "none", "cfg" or "atg", the predictor GFCG adds its term to.
        base_scale: the base's w_cfg or w_atg.
        scale_rule: "confusion" or "ratio", as above.
        fused: the fused variant (base "atg" only).
        window: the progress window [start, end) where GFCG acts.
        threshold: w_t below this fraction of w_max counts as 0.
        tiny_decoder: decode x0_hat for the classifier with the backbone's tiny decoder.
        one_call: take c_ref and w_t from the previous evaluation, for one batched call (not with `fused`).
        interval: the classifier reads x0_hat every `interval` steps of the window; the reading holds in between.

    Raises:
        MethodConfigError: an unknown base, a value outside its declared option (MAX_SCALE, RULE, WINDOW,
            THRESHOLD, INTERVAL), or `fused` without base "atg" or with `one_call`.
    """

    name = "gfcg"
    # base and base_scale come from the method's name and cfg_scale (guidance.methods.build_method)
    options = (MAX_SCALE, RULE, FUSED, WINDOW, THRESHOLD, TINY_DECODER, ONE_CALL, INTERVAL)

    def __init__(
        self,
        classifier: Classifier,
        max_scale: float = MAX_SCALE.default,
        base: str = "none",
        base_scale: float = 1.0,
        scale_rule: str = RULE.default,
        fused: bool = FUSED.default,
        window: "tuple[float, float]" = WINDOW.default,
        threshold: float = THRESHOLD.default,
        tiny_decoder: bool = TINY_DECODER.default,
        one_call: bool = ONE_CALL.default,
        interval: int = INTERVAL.default,
    ):
        if base not in BASES:
            raise MethodConfigError(f"GFCG base must be one of {BASES}, got {base!r}")
        if fused and base != "atg":
            raise MethodConfigError("the fused GFCG variant is defined with Autoguidance (base='atg')")
        if fused and one_call:
            raise MethodConfigError("the fused GFCG variant already costs two calls; one_call applies to the unfused one")
        self.classifier, self.max_scale, self.base, self.base_scale = classifier, MAX_SCALE.checked(max_scale), base, base_scale
        self.scale_rule, self.fused, self.window = RULE.checked(scale_rule), fused, WINDOW.checked(window)
        self.threshold, self.interval = THRESHOLD.checked(threshold), INTERVAL.checked(interval)
        self.tiny_decoder, self.one_call = tiny_decoder, one_call
        self.base_predictor = Predictor() if base == "none" else (CFG if base == "cfg" else Autoguidance)(base_scale)
        self.reset()

    def reset(self) -> None:
        """A new GFCGState, with no carried reading: a run's first reading comes from its own x0_hat."""
        self.state = GFCGState()

    def reference(self, ctx: StepContext, eps_c: Tensor) -> tuple[list[str], Tensor]:
        """The most confusable non-target class and the guidance scale w_t, per sample (GFCG steps 1-3).

        Args:
            ctx: the step; its conditions are the target classes.
            eps_c: (B, C, H, W) D_c, whose x0_hat the classifier reads.

        Returns:
            (c_ref's class name per sample, (B,) w_t on the CPU).

        Raises:
            MethodConfigError: a condition is not a class of the classifier.
        """
        names = self.classifier.class_names
        target = torch.tensor([names.index(c) for c in self._targets(ctx)])
        with torch.no_grad():
            x0 = to_eps_and_x0(ctx.x.detach(), eps_c.detach(), ctx.a_t, ctx.backbone.estimate_type)[1]
            probs = self.classifier(ctx.backbone.guidance_decode(x0, self.tiny_decoder)).float().cpu()
        p_c = probs.gather(1, target[:, None])[:, 0]
        others = probs.scatter(1, target[:, None], -1.0)
        p_ref, ref = others.max(1)
        if self.scale_rule == "confusion":
            scale = self.max_scale * (1 - p_c)
        else:
            scale = self.max_scale * p_ref / (p_c + p_ref + 1e-12)
        scale = torch.where(scale < self.threshold * self.max_scale, 0.0, scale)
        return [names[i] for i in ref.tolist()], scale

    def _targets(self, ctx: StepContext) -> list[str]:
        if any(c is None or c not in self.classifier.class_names for c in ctx.conditions):
            raise MethodConfigError(f"GFCG needs a target class among {self.classifier.class_names}")
        return ctx.conditions

    def __call__(self, ctx: StepContext, x: Tensor) -> Estimate:
        """GFCG's eps: the base's D plus w_t (D_c - D_ref) where GFCG acts (docs/methods.md, GFCG step 4). Reads and
        updates `self.state`.

        Args:
            ctx: the step; its conditions must be classes of the classifier.
            x: x_t (FreeDoM passes a copy that requires grad).

        Returns:
            The estimate; delta and its weight are the base's, for FreeDoM's step rule.
        """
        if self.one_call:
            return self._one_call(ctx, x, self.state)
        if self.fused:
            return self._fused(ctx, x, self.state)
        eps_c, eps_other = self.base_predictor.branches(ctx, x)
        base = self.base_predictor.combine(eps_c, eps_other)
        reading = self.read(ctx, eps_c, ctx.index, self.state)
        if reading is None:
            return base
        return with_reference(base, eps_c, self._reference_branch(ctx, x, reading, eps_c), reading)

    def _reference_branch(self, ctx: StepContext, x: Tensor, reading: Reading, eps_c: Tensor) -> Tensor:
        """D(c_ref), run for the samples GFCG acts on only; elsewhere w_t = 0 and D_c stands in, never read."""
        acting = reading.acting()
        if bool(acting.all()):
            return branch_eps(ctx, x, reading.embeddings)
        eps_ref = eps_c.clone()
        eps_ref[acting] = branch_eps(ctx.rows(acting), x[acting], reading.embeddings[acting])
        return eps_ref

    def _fused(self, ctx: StepContext, x: Tensor, state: GFCGState) -> Estimate:
        """Autoguidance whose guide sees c_ref where GFCG acts: D_guide(c_ref) is then the reference branch as well,
        D = D_c + (w - 1 + w_t)(D_c - D_guide(c_ref)); where w_t = 0 the guide sees c, and D is Autoguidance's."""
        eps_c = branch_eps(ctx, x, ctx.embeddings)
        reading = self.read(ctx, eps_c, ctx.index, state)
        guide_embeddings = ctx.embeddings
        if reading is not None:
            acting = reading.acting().reshape(-1, 1, 1).to(reading.embeddings.device)
            guide_embeddings = torch.where(acting, reading.embeddings, ctx.embeddings)
        eps_guide = self.base_predictor.guide(ctx, x, guide_embeddings)
        base = self.base_predictor.combine(eps_c, eps_guide)
        return base if reading is None else with_reference(base, eps_c, eps_guide, reading)

    def _one_call(self, ctx: StepContext, x: Tensor, state: GFCGState) -> Estimate:
        """D_c, D_u (base "cfg") and D(c_ref) for the acting samples in one batched call, with the reading the previous
        evaluation left in `state.pending`; then the classifier reads this D_c for the next step."""
        reading = state.pending if ctx.index > 0 and self._acts(ctx.progress) else None
        rows = [(ctx, x, ctx.embeddings)] + ([(ctx, x, ctx.null_embeddings)] if self.base == "cfg" else [])
        if reading is not None:
            acting = reading.acting()
            rows.append((ctx.rows(acting), x[acting], reading.embeddings[acting]))
        contexts, xs, embeddings = zip(*rows)
        eps = branch_eps(stacked(list(contexts)), torch.cat(xs), torch.cat(embeddings))
        eps_c, rest = eps[: len(x)], eps[len(x) :]
        if self.base == "cfg":
            eps_other, rest = rest[: len(x)], rest[len(x) :]
        else:  # the guide is another model: a call of its own
            eps_other = self.base_predictor.guide(ctx, x, ctx.embeddings) if self.base == "atg" else None
        base = self.base_predictor.combine(eps_c, eps_other)
        state.pending = self.read(ctx, eps_c, ctx.index + 1, state) if ctx.index + 1 < ctx.steps else None
        if reading is None:
            return base
        eps_ref = eps_c.clone()
        eps_ref[acting] = rest
        return with_reference(base, eps_c, eps_ref, reading)

    def _acts(self, progress: float) -> bool:
        return self.max_scale != 0 and self.window[0] <= progress < self.window[1]

    def read(self, ctx: StepContext, eps_c: Tensor, index: int, state: GFCGState) -> Reading | None:
        """The reading that applies at step `index`, None where GFCG does not act there.

        Outside the window or with w_max = 0 no classifier runs; None too where w_t = 0 for every sample. The
        classifier reads x0_hat at the window's first step and every `interval` steps after it; between readings
        the last one holds (docs/methods.md, GFCG, Interval) [ours].

        Args:
            ctx: the step being evaluated.
            eps_c: D_c at this evaluation, whose x0_hat the classifier reads.
            index: the step the reading is for: this one, or with `one_call` the next.
            state: the run's state; a new reading is kept in it.

        Returns:
            c_ref's embeddings and w_t, or None.
        """
        self._targets(ctx)
        if not self._acts(index / ctx.steps):
            return None
        if not self._reads_at(index, ctx.steps) and state.read_at is not None and 0 < index - state.read_at < self.interval:
            return state.reading
        names, scale = self.reference(ctx, eps_c)
        reading = Reading(ctx.backbone.embed(names), scale.to(eps_c.device).reshape(-1, 1, 1, 1)) if bool(scale.any()) else None
        state.read_at, state.reading = index, reading
        return reading

    def _reads_at(self, index: int, steps: int) -> bool:
        """Whether the classifier reads x0_hat for step `index`: the window's first step that can use a reading (with
        one call, never step 0), then every `interval`."""
        first = next(i for i in range(1 if self.one_call else 0, steps) if self._acts(i / steps))
        return (index - first) % self.interval == 0

    def describe(self) -> dict:
        """The name and options; the speed options and the interval only where they are not their defaults."""
        return {
            "name": self.name,
            "max_scale": self.max_scale,
            "base": self.base,
            "base_scale": self.base_scale,
            "scale_rule": self.scale_rule,
            "fused": self.fused,
            "window": list(self.window),
            "threshold": self.threshold,
            **({"tiny_decoder": True} if self.tiny_decoder else {}),
            **({"one_call": True} if self.one_call else {}),
            **({"interval": self.interval} if self.interval != 1 else {}),
        }


def with_reference(base: Estimate, eps_c: Tensor, eps_ref: Tensor, reading: Reading) -> Estimate:
    """base + w_t (D_c - D_ref) (docs/methods.md, GFCG step 4).

    Args:
        base: the base predictor's estimate.
        eps_c: D_c.
        eps_ref: D_ref (rows where w_t = 0 are never read).
        reading: w_t per sample.

    Returns:
        The estimate, with the base's delta and weight.
    """
    return Estimate(base.eps + reading.scale * (eps_c - eps_ref), base.delta, base.scale)


def stacked(contexts: list[StepContext]) -> StepContext:
    """One context for the concatenated rows of `contexts` (sub-batches of one step): what one batched call needs,
    the control maps stacked to match (a single shared map stays shared).

    Args:
        contexts: sub-batch contexts of one step (`StepContext.rows`), in the order their rows are concatenated.

    Returns:
        The first context with the stacked control; its other per-sample fields are the first's.
    """
    first = contexts[0]
    control = first.control
    if control is not None and control.image.shape[0] != 1:
        control = Control(torch.cat([c.control.image for c in contexts]), control.scale)
    return replace(first, control=control)

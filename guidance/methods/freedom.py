"""FreeDoM (Yu et al., ICCV 2023): energy guidance with the gradient taken through the denoiser."""

from __future__ import annotations

import torch
from torch import Tensor

from guidance.energy import Energy, checked
from guidance.methods.base import Guidance, Prediction, StepContext, Term, Terms, TimeTravel, Window
from guidance.methods.dsg import DSG
from guidance.methods.options import TINY_DECODER, Bound, Option
from guidance.methods.predictors import Estimate, Predictor
from guidance.vp_arithmetic import expand, rms, to_eps_and_x0

STEP_RULES = ("auto", "alpha", "normalized", "constant", "freedom-pixel")

# the scale (k in docs/methods.md's equations); the app sets it through the strength (x each method's guiding value);
# the constant rule (DPS) takes raw step sizes
SCALE = Option("scale", 1.0, Bound(0, 100, slider=(0, 2)), sweep="scale (shared by every method)", sweep_values="0.02, 0.05, 0.1")
STEP_RULE = Option("step_rule", "auto", choices=STEP_RULES)
WINDOW = Option(
    "window",
    (0.0, 1.0),
    window="guidance window",
    convert=lambda window: Window(*window),
    label="Guidance window",
    step=0.05,
    group="gradient",
)
REPEATS = Option("repeats", 1, Bound(1, 10, slider=(1, 5)), param=None, label="Time-travel repeats", group="gradient")
TRAVEL_WINDOW = Option(
    "travel_window", (0.0, 1.0), window="time-travel window", param=None, label="Time-travel window", step=0.05, group="gradient"
)
CHECKPOINTING = Option("checkpointing", False)  # recompute the denoiser's activations in the backward pass (less memory)


class FreeDoM(Guidance):
    """x_{t-1} = step(x_t) - rho_t grad_{x_t} E(c, x0_hat(x_t)), back-propagating through the UNet.

    Step-size rules (docs/methods.md, FreeDoM step 5): "alpha" rho_t = scale sqrt(a_t) (pixel face models);
    "normalized" rho_t = scale * RMS(w_cfg (eps_c - eps_u)) / RMS(g) (SD, the paper's k); [ours] without
    an unconditional branch RMS(eps) stands in for the CFG term; "constant" rho_t = scale (DPS);
    "freedom-pixel" rho_t = scale RMS(eps) sqrt((1 - a_t) / a_t) c1 / RMS(g) (FreeDoM's pixel text-guidance rule,
    no CFG); "auto" is "normalized" when CFG or Autoguidance runs, else "alpha".
    Windows and time travel: FreeDoM step 6. An energy of `Terms` guides term by term, each in its own window
    with its own scale (FreeDoM step 7). With `dsg`, the update is DSG's spherical step instead
    (docs/methods.md, DSG steps 1-6; the scale then only weighs terms against each other). `weight` (1 here;
    FIGD's w_t) multiplies rho_t, or under DSG the guidance rate.

    Args:
        predictor: how the branches combine into eps; the gradient runs back through it.
        scale: the step-size scale of `step_rule` (the paper's k), for terms without their own.
        step_rule: one of STEP_RULES, as above.
        window: the progress window where terms without their own guide; None: the whole run.
        time_travel: the repeats per step and their window; None: no repeats.
        dsg: DSG's update in place of the gradient step; None: the gradient step.
        tiny_decoder: decode x0_hat for the energies with the backbone's tiny decoder (the final image still comes
            from the full VAE), for speed.
        checkpointing: recompute the denoiser's activations in the backward pass instead of keeping them
            (diffusers' gradient checkpointing), for small GPUs.

    Raises:
        MethodConfigError: `scale` outside its declared range (SCALE), or `step_rule` not one of STEP_RULES.
    """

    name = "freedom"
    uses_energy = True
    options = (SCALE, STEP_RULE, WINDOW, REPEATS, TRAVEL_WINDOW, TINY_DECODER, CHECKPOINTING)

    def __init__(
        self,
        predictor: Predictor,
        scale: float = SCALE.default,
        step_rule: str = STEP_RULE.default,
        window: Window | None = None,
        time_travel: TimeTravel | None = None,
        dsg: DSG | None = None,
        tiny_decoder: bool = TINY_DECODER.default,
        checkpointing: bool = CHECKPOINTING.default,
    ):
        super().__init__(predictor)
        self.tiny_decoder, self.checkpointing = tiny_decoder, checkpointing
        self.scale, self.step_rule = SCALE.checked(scale), STEP_RULE.checked(step_rule)
        self.window = window or Window()
        self.time_travel = time_travel or TimeTravel()
        self.dsg = dsg
        if dsg is not None:
            self.name = f"{self.name}+dsg"

    @classmethod
    def arguments(cls, values) -> dict:
        """The declared options as constructor arguments, time travel made of its repeats and window."""
        return {**super().arguments(values), "time_travel": TimeTravel(values.repeats, Window(*values.travel_window))}

    def check(self, scheduler: str, eta: float) -> None:
        """DSG's check where DSG runs; any scheduler and eta otherwise."""
        if self.dsg is not None:
            self.dsg.check(scheduler, eta)

    def terms(self, energy: Energy) -> list[Term]:
        """The energy's terms, with the method's window and scale where a term has none (FreeDoM step 7).

        Args:
            energy: one energy, or `Terms`.

        Returns:
            One term per energy (a plain energy is one term), each with its window and scale set.
        """
        parts = energy.terms if isinstance(energy, Terms) else [Term(energy)]
        return [Term(t.energy, t.window or self.window, self.scale if t.scale is None else t.scale) for t in parts]

    def guiding_terms(self, ctx: StepContext) -> list[Term]:
        """The terms whose window holds this step, if DSG guides it (DSG step 6).

        Args:
            ctx: the step, with its energy.

        Returns:
            The terms that guide this step; empty where none does.
        """
        if self.dsg is not None and not self.dsg.applies(ctx.index, ctx.steps):
            return []
        return [term for term in self.terms(ctx.energy) if ctx.progress in term.window]

    def repeats(self, ctx: StepContext) -> int:
        """The time-travel count where some term's window holds the step, else 1."""
        inside = any(ctx.progress in term.window for term in self.terms(ctx.energy))
        return self.time_travel.count(ctx.progress) if inside else 1

    def predict(self, ctx: StepContext) -> Prediction:
        """Guidance.predict where no term guides; else with `guidance` = sum of rho_i g_i and, where every term
        guides, the energy of x0_hat."""
        terms = self.guiding_terms(ctx)
        if not terms:
            return super().predict(ctx)
        estimate, gradients, values = self.energy_gradients(ctx, [term.energy for term in terms])
        every_term = len(terms) == len(self.terms(ctx.energy))
        pred = self._prediction(ctx, estimate, energy=sum(values) if every_term else None)
        pred.guidance = sum(expand(self.step_size(ctx, pred, g, term.scale), g) * g for term, g in zip(terms, gradients))
        return pred

    def energy_gradients(self, ctx: StepContext, energies: list[Energy]) -> tuple[Estimate, list[Tensor], list[Tensor]]:
        """Each energy's value and gradient at x_t: autograd through the denoiser, the decoder and each energy.

        Args:
            ctx: the step.
            energies: the guiding terms' energies.

        Returns:
            (the predictor's estimate, grad_{x_t} E_i each (B, C, H, W), E_i each (B,)).
        """
        x = ctx.x.detach().requires_grad_(True)
        with torch.enable_grad(), ctx.backbone.gradient_checkpointing(self.checkpointing):
            estimate = self.predictor(ctx, x)
            _, x0 = to_eps_and_x0(x, estimate.eps, ctx.a_t, ctx.backbone.estimate_type)
            values, gradients = gradients_of(energies, ctx.backbone.guidance_decode(x0, self.tiny_decoder), x)
        return estimate, gradients, values

    def update(self, ctx: StepContext, pred: Prediction, mean: Tensor, sigma: float | None, noise: Tensor) -> Tensor:
        """Guidance.update minus `pred.guidance` (rho g) where terms guided; DSG's step on the sphere with `dsg`."""
        if pred.guidance is None:
            return super().update(ctx, pred, mean, sigma, noise)
        if self.dsg is not None:
            return self.dsg.step(mean, sigma, noise, pred.guidance, self.weight(ctx))
        return super().update(ctx, pred, mean, sigma, noise) - pred.guidance

    def weight(self, ctx: StepContext) -> float:
        """A factor on rho_t (under DSG on the guidance rate): 1 for FreeDoM, FIGD's w_t for FIGD.

        Args:
            ctx: the step.

        Returns:
            The factor, 1 here.
        """
        return 1.0

    def step_size(self, ctx: StepContext, pred: Prediction, gradient: Tensor, scale: float) -> Tensor:
        """rho_t per sample of a term's gradient and scale: the rule's value times `weight` (step 5).

        Args:
            ctx: the step.
            pred: the step's prediction (eps, and the CFG term that the "normalized" rule reads).
            gradient: (B, C, H, W) the term's gradient g.
            scale: the term's scale.

        Returns:
            (B,) rho_t, on the CPU.
        """
        return self.weight(ctx) * self._rule_step(ctx, pred, gradient, scale)

    def _rule_step(self, ctx: StepContext, pred: Prediction, gradient: Tensor, scale: float) -> Tensor:
        rule = self.step_rule
        if rule == "auto":
            rule = "normalized" if pred.guidance_delta is not None else "alpha"
        if rule == "alpha":
            return torch.full((pred.eps.shape[0],), scale * ctx.a_t**0.5)
        if rule == "constant":
            return torch.full((pred.eps.shape[0],), float(scale))
        if rule == "freedom-pixel":  # c1: x0_hat's coefficient in the DDPM posterior mean
            c1 = ctx.a_prev**0.5 * (1 - ctx.a_t / ctx.a_prev) / (1 - ctx.a_t)
            reference = ((1 - ctx.a_t) / ctx.a_t) ** 0.5 * c1 * rms(pred.eps)
            return (scale * reference / (rms(gradient) + 1e-12)).cpu()
        reference = pred.eps if pred.guidance_delta is None else pred.guidance_scale * pred.guidance_delta
        return (scale * rms(reference) / (rms(gradient) + 1e-12)).cpu()

    def describe(self) -> dict:
        """Guidance.describe with the scale, step rule, windows, repeats, speed options and DSG's."""
        options = {
            "scale": self.scale,
            "step_rule": self.step_rule,
            "window": [self.window.start, self.window.end],
            "repeats": self.time_travel.repeats,
            "travel_window": [self.time_travel.window.start, self.time_travel.window.end],
        }
        speed = {key: True for key in ("tiny_decoder", "checkpointing") if getattr(self, key)}
        return {**super().describe(), **options, **speed, **(self.dsg.describe() if self.dsg else {})}


def gradients_of(energies: list[Energy], images: Tensor, leaf: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Each energy of `images` and its gradient w.r.t. `leaf`, one backward pass per energy through the shared graph.

    Args:
        energies: the energies to evaluate.
        images: (B, 3, H, W) pixels in [-1, 1], computed from `leaf`.
        leaf: the tensor that requires grad (x_t for FreeDoM, x0_hat for FIGD).

    Returns:
        (E_i each (B,), detached; grad_leaf E_i each shaped as `leaf`).
    """
    values = [checked(energy, images) for energy in energies]
    last = len(values) - 1
    gradients = [torch.autograd.grad(v.sum(), leaf, retain_graph=i < last)[0] for i, v in enumerate(values)]
    return [v.detach() for v in values], gradients

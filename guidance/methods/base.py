"""What every guidance method plugs into: the base class, windows, time travel and energy terms.

The sampling loop (guidance/sampling.py) calls, per step and per time-travel repeat:
  1. `method.predict(ctx)`  -> Prediction (model output for the scheduler, x0 estimate, gradient)
  2. the scheduler gives the unguided mean of x_{t-1} and its noise std sigma_t
  3. `method.update(ctx, prediction, mean, sigma, noise)` -> x_{t-1}
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from guidance.energy import Energy, SumEnergy
from guidance.methods.options import Configurable
from guidance.methods.predictors import Estimate, Predictor
from guidance.methods.step import Prediction, StepContext
from guidance.vp_arithmetic import from_eps, to_eps_and_x0


@dataclass
class Window:
    """A range of progress fractions [start, end): 0 is the first step, 1 the end of sampling."""

    start: float = 0.0
    end: float = 1.0

    def __contains__(self, progress: float) -> bool:
        return self.start <= progress < self.end


class Guidance(Configurable):
    """Plain sampling: the predictor's output, the scheduler's step, no energy. Subclasses declare their options
    (guidance.methods.options.Option) in `options`."""

    name = "plain"
    uses_energy = False

    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    def check(self, scheduler: str, eta: float) -> None:
        """Raises MethodConfigError when the method cannot run with this scheduler and eta; any will do here."""

    def reset(self) -> None:
        """Start a run afresh: the sampler calls it before each run, so that a method object reused across runs
        (or requests) gives what a new one would."""
        self.predictor.reset()

    def repeats(self, ctx: StepContext) -> int:
        """How many times the step is run (FreeDoM's time travel repeats it)."""
        return 1

    def predict(self, ctx: StepContext) -> Prediction:
        with torch.no_grad():
            estimate = self.predictor(ctx, ctx.x)
        return self._prediction(ctx, estimate)

    def update(self, ctx: StepContext, pred: Prediction, mean: Tensor, sigma: float, noise: Tensor) -> Tensor:
        """x_{t-1} from the unguided mean and noise std of the scheduler's step (None: noise already in)."""
        return mean if sigma is None else mean + sigma * noise

    @staticmethod
    def _prediction(ctx: StepContext, estimate: Estimate, **extra) -> Prediction:
        eps = estimate.eps.detach()
        _, x0 = to_eps_and_x0(ctx.x.detach(), eps, ctx.a_t, "epsilon")
        out = from_eps(ctx.x.detach(), eps, ctx.a_t, ctx.backbone.prediction_type)
        delta = None if estimate.delta is None else estimate.delta.detach()
        return Prediction(
            model_output=out, eps=eps, x0=x0, guidance_delta=delta, guidance_scale=estimate.scale, **extra
        )

    def describe(self) -> dict:
        """Options for reports and captions."""
        return {"method": self.name, "predictor": self.predictor.describe()}


@dataclass
class TimeTravel:
    """FreeDoM's repeats: inside `window`, each step runs `repeats` times, re-noising between runs."""

    repeats: int = 1
    window: Window = field(default_factory=Window)

    def count(self, progress: float) -> int:
        return self.repeats if progress in self.window else 1


@dataclass
class Term:
    """One energy of a sum with its own guidance window and step scale; None: the method's (FreeDoM step 7)."""

    energy: Energy
    window: Window | None = None
    scale: float | None = None


class Terms(SumEnergy):
    """Energies that guide each in its own window with its own step size (docs/methods.md, FreeDoM step 7) [ours].

    Measured, it is their sum with the first one's metric; FreeDoM, FIGD and DPS take one gradient and one
    step size per term whose window holds the step.
    """

    def __init__(self, terms: list[Term]):
        super().__init__([term.energy for term in terms])
        self.terms = terms

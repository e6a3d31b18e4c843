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
from guidance.vp_arithmetic import eps_difference, to_eps_and_x0, to_output


@dataclass
class Window:
    """A range of progress fractions [start, end): 0 is the first step, 1 the end of sampling.

    Attributes:
        start: the first progress inside the window.
        end: the first progress past it.
    """

    start: float = 0.0
    end: float = 1.0

    def __contains__(self, progress: float) -> bool:
        return self.start <= progress < self.end


class Guidance(Configurable):
    """Plain sampling: the predictor's output, the scheduler's step, no energy. Subclasses declare their options
    (guidance.methods.options.Option) in `options`.

    Args:
        predictor: how the denoiser's branches combine into one noise estimate (guidance.methods.predictors).

    Attributes:
        name: the method's name in reports ("figd+dsg", ...).
        uses_energy: whether the method needs an energy (guidance.sampling.sample refuses to run it without one).
    """

    name = "plain"
    uses_energy = False

    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    def check(self, scheduler: str, eta: float) -> None:
        """Checks that the method can run with this scheduler and eta; any will do here.

        Args:
            scheduler: a name of guidance.schedulers.adapters.SCHEDULERS.
            eta: DDIM's eta.

        Raises:
            MethodConfigError: the method cannot run so (DSG: anything but DDIM with eta > 0).
        """

    def reset(self) -> None:
        """Start a run afresh: the sampler calls it before each run, so that a method object reused across runs
        (or requests) gives what a new one would."""
        self.predictor.reset()

    def repeats(self, ctx: StepContext) -> int:
        """How many times the step is run (FreeDoM's time travel repeats it).

        Args:
            ctx: the step.

        Returns:
            1 here.
        """
        return 1

    def predict(self, ctx: StepContext) -> Prediction:
        """The step's prediction (docs/methods.md, Sampling loop step 1): the predictor's estimate, without gradients.

        Args:
            ctx: the step: x_t (B, C, H, W), its timestep, conditions and energy.

        Returns:
            The model output for the scheduler with eps and x0_hat; no guidance term here.
        """
        with torch.no_grad():
            estimate = self.predictor(ctx, ctx.x)
        return self._prediction(ctx, estimate)

    def update(self, ctx: StepContext, pred: Prediction, mean: Tensor, sigma: float, noise: Tensor) -> Tensor:
        """x_{t-1} from the unguided mean and noise std of the scheduler's step (docs/methods.md, Sampling loop step 3).

        Args:
            ctx: the step.
            pred: this step's `predict` output.
            mean: (B, C, H, W) the scheduler's unguided mean of x_{t-1}.
            sigma: its noise std sigma_t: 0 for deterministic solvers, None where the scheduler added its noise (DDPM).
            noise: (B, C, H, W) z ~ N(0, I), drawn by the loop.

        Returns:
            x_{t-1}, (B, C, H, W): mean + sigma_t z here.
        """
        return mean if sigma is None else mean + sigma * noise

    @staticmethod
    def _prediction(ctx: StepContext, estimate: Estimate, **extra) -> Prediction:
        backbone, x, estimate_type = ctx.backbone, ctx.x.detach(), ctx.backbone.estimate_type
        eps, x0 = to_eps_and_x0(x, estimate.eps.detach(), ctx.a_t, estimate_type)
        out = to_output(x, estimate.eps.detach(), ctx.a_t, backbone.prediction_type, estimate_type)
        delta = None if estimate.delta is None else eps_difference(estimate.delta.detach(), ctx.a_t, estimate_type)
        return Prediction(model_output=out, eps=eps, x0=x0, guidance_delta=delta, guidance_scale=estimate.scale, **extra)

    def describe(self) -> dict:
        """Options for reports and captions.

        Returns:
            The method's name and options, with its predictor's under "predictor"; JSON-ready.
        """
        return {"method": self.name, "predictor": self.predictor.describe()}


@dataclass
class TimeTravel:
    """FreeDoM's repeats: inside `window`, each step runs `repeats` times, re-noising between runs.

    Attributes:
        repeats: runs per step inside the window (1: no time travel).
        window: the progress window where steps repeat.
    """

    repeats: int = 1
    window: Window = field(default_factory=Window)

    def count(self, progress: float) -> int:
        """How many times the step at `progress` (a fraction of the run) runs: `repeats` inside the window, else 1."""
        return self.repeats if progress in self.window else 1


@dataclass
class Term:
    """One energy of a sum with its own guidance window and step scale (FreeDoM step 7).

    Attributes:
        energy: the term's energy.
        window: where it guides; None: the method's window.
        scale: its step-size scale; None: the method's.
    """

    energy: Energy
    window: Window | None = None
    scale: float | None = None


class Terms(SumEnergy):
    """Energies that guide each in its own window with its own step size (docs/methods.md, FreeDoM step 7) [ours].

    Measured, it is their sum with the first one's metric; FreeDoM, FIGD and DPS take one gradient and one
    step size per term whose window holds the step.

    Args:
        terms: the energies with their windows and scales; the first one's metric is the sum's.
    """

    def __init__(self, terms: list[Term]):
        super().__init__([term.energy for term in terms])
        self.terms = terms

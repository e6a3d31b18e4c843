"""DSG: diffusion with spherical Gaussian constraint (Yang et al., ICML 2024), a plug-in update rule."""

from __future__ import annotations

import math

from torch import Tensor

from guidance.errors import MethodConfigError
from guidance.methods.options import Bound, Configurable, Option
from guidance.vp_arithmetic import expand, norm


RATE = Option(
    "dsg_rate", 0.1, Bound(0, 1), param="rate", sweep="DSG rate", sweep_values="0.05, 0.1, 0.2"
)  # the app's strength sets it
INTERVAL = Option(
    "dsg_interval",
    1,
    Bound(1, 50, slider=(1, 10)),
    param="interval",
    label="DSG interval (guide every n steps)",
    group="gradient",
)


class DSG(Configurable):
    """Replaces "mean + sigma z - rho g" by a step of length sqrt(n) sigma_t on the sphere.

    docs/methods.md, DSG steps 3-5: r = sqrt(n) sigma_t, d* = -r g / ||g||, d_m = sigma_t z + rate (d* - sigma_t z),
    x_{t-1} = mean + r d_m / ||d_m||, with per-sample norms; `weight` (FIGD's w_t) scales the rate, capped at 1 (DSG
    step 4 [ours]). Guidance acts every `interval` steps with the official code's phase (DSG step 6: its step counter
    runs down to 0), so the last step is always guided.

    Args:
        rate: the guidance rate in [0, 1]: how far d_m turns from the sampled noise towards d*.
        interval: guide every `interval` steps (1: every step).

    Raises:
        MethodConfigError: `rate` or `interval` outside its declared range (RATE, INTERVAL).
    """

    options = (RATE, INTERVAL)

    def __init__(self, rate: float = RATE.default, interval: int = INTERVAL.default):
        self.rate, self.interval = RATE.checked(rate), INTERVAL.checked(interval)

    @staticmethod
    def check(scheduler: str, eta: float) -> None:
        """DSG needs a step with exposed noise: DDIM with eta > 0, or on a flow model the stochastic flow-matching
        step ("flow-sde", docs/methods.md, "Gaussian paths").

        Args:
            scheduler: the scheduler's name.
            eta: DDIM's eta.

        Raises:
            MethodConfigError: another scheduler, or DDIM with eta = 0.
        """
        if scheduler.startswith("flow") and scheduler != "flow-sde":
            raise MethodConfigError(
                "DSG steps on the sphere of the sampler's noise, and the flow's Euler step has none: use "
                "FlowMatchEulerDiscreteScheduler with stochastic_sampling=True (the app: flow-sde)"
            )
        if not (scheduler == "flow-sde" or (scheduler == "ddim" and eta > 0)):
            raise MethodConfigError(
                "DSG steps on the sphere of the sampler's noise: use DDIM with eta > 0 (eta = 1 in the paper)"
            )

    def applies(self, index: int, steps: int) -> bool:
        """Whether a step is guided: the official idx = steps - 1 - index, idx % interval == 0.

        Args:
            index: the step, 0 the first.
            steps: the run's step count.

        Returns:
            True where DSG guides the step.
        """
        return (steps - 1 - index) % self.interval == 0

    def step(self, mean: Tensor, sigma: float | None, noise: Tensor, gradient: Tensor, weight: float = 1.0) -> Tensor:
        """x_{t-1} on the sphere of radius sqrt(n) sigma_t around the mean (DSG steps 3-5).

        Args:
            mean, sigma, noise: as in Guidance.update.
            gradient: (B, C, H, W) g, the guidance direction (its length does not matter).
            weight: a factor on the rate (FIGD's w_t); the product is capped at 1.

        Returns:
            (B, C, H, W) x_{t-1}; the mean itself where sigma_t = 0.

        Raises:
            MethodConfigError: sigma is None (a scheduler that adds its noise itself).
        """
        if sigma is None:
            raise MethodConfigError("DSG needs a scheduler that exposes its noise (use DDIM, eta > 0)")
        if sigma == 0:  # deterministic or last step: nothing to constrain
            return mean
        radius = math.sqrt(mean[0].numel()) * sigma
        d_star = -radius * gradient / expand(norm(gradient) + 1e-12, gradient)
        d_sample = sigma * noise
        d_mix = d_sample + min(1.0, weight * self.rate) * (d_star - d_sample)
        return mean + radius * d_mix / expand(norm(d_mix) + 1e-12, d_mix)

    def describe(self) -> dict:
        """The rate and interval, under their option names."""
        return {"dsg_rate": self.rate, "dsg_interval": self.interval}

"""A Gaussian mixture whose denoiser is exact, as a backbone for the solvers suite (docs/methods.md, EVODiff,
"One grid for every solver").

Data x0 ~ sum_k pi_k N(mu_k, s_k^2 I) in `dim` dimensions, noised on the VP path x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps
of a diffusers DDPM-family schedule. Given x_t, component k has posterior weight
w_k ~ pi_k N(x_t; sqrt(a) mu_k, v_k I) with v_k = a s_k^2 + 1 - a, and

    E[x0 | x_t] = sum_k w_k (mu_k + sqrt(a) s_k^2 / v_k (x_t - sqrt(a) mu_k)),
    eps_hat = (x_t - sqrt(a) E[x0 | x_t]) / sqrt(1 - a) = -sqrt(1 - a) grad log p_t(x_t),

so a solver's distance to the probability-flow ODE's solution is its own error alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from diffusers import DDPMScheduler
from torch import Tensor

from guidance.backbone import Backbone, Condition, Control
from guidance.errors import WeightsUnavailableError
from guidance.schedulers import SD_SCHEDULE
from guidance.schedulers.grids import SOLVERS, grid_scheduler, ode_solve
from guidance.worlds.base import Unavailable, World

RING_MODES, RING_RADIUS, RING_STD = 8, 4.0, 0.4  # the suite's mixture: modes on a circle, samples of scale about 4
# the embedded world's and Stable Diffusion 1.5's training schedule, on "leading" timesteps for every solver
WORLD_SCHEDULE = {**SD_SCHEDULE, "timestep_spacing": "leading"}


class GaussianMixture:
    """The mixture's density on the VP path and its exact denoiser, in float64.

    Args:
        means: (K, D) component means mu_k.
        stds: (K,) component stds s_k.
        weights: (K,) mixture weights pi_k (normalised here).
    """

    def __init__(self, means: Tensor, stds: Tensor, weights: Tensor):
        self.means = means.double()
        self.stds = stds.double()
        self.log_weights = (weights.double() / weights.double().sum()).log()

    @classmethod
    def ring(cls, modes: int = RING_MODES, radius: float = RING_RADIUS, std: float = RING_STD) -> "GaussianMixture":
        """Equal-weight modes evenly spaced on a circle in the plane."""
        angles = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
        means = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
        return cls(means, torch.full((modes,), std, dtype=torch.float64), torch.ones(modes, dtype=torch.float64))

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def _component_terms(self, x: Tensor, a: float) -> tuple[Tensor, Tensor]:
        """(log pi_k N(x; sqrt(a) mu_k, v_k I)) as (B, K), and v_k as (K,)."""
        variances = a * self.stds**2 + (1 - a)
        squared = ((x[:, None, :] - a**0.5 * self.means[None]) ** 2).sum(-1)
        log_normal = -0.5 * squared / variances - 0.5 * self.dim * torch.log(2 * math.pi * variances)
        return self.log_weights + log_normal, variances

    def log_density(self, x: Tensor, a: float) -> Tensor:
        """log p_t(x) at alpha-bar `a`, per sample.

        Args:
            x: (B, D) noisy samples.
            a: alpha-bar a_t in (0, 1].

        Returns:
            (B,) log densities.
        """
        return torch.logsumexp(self._component_terms(x.double(), a)[0], dim=1)

    def x0_hat(self, x: Tensor, a: float) -> Tensor:
        """E[x0 | x_t = x] at alpha-bar `a` (module docstring).

        Args:
            x: (B, D) noisy samples.
            a: alpha-bar a_t in (0, 1).

        Returns:
            (B, D) float64 posterior means.
        """
        x = x.double()
        terms, variances = self._component_terms(x, a)
        posterior = torch.softmax(terms, dim=1)
        shrink = a**0.5 * self.stds**2 / variances
        per_component = self.means[None] + shrink[None, :, None] * (x[:, None, :] - a**0.5 * self.means[None])
        return (posterior[..., None] * per_component).sum(1)

    def eps_hat(self, x: Tensor, a: float) -> Tensor:
        """E[eps | x_t = x] = (x - sqrt(a) x0_hat) / sqrt(1 - a), float64 (B, D)."""
        return (x.double() - a**0.5 * self.x0_hat(x, a)) / (1 - a) ** 0.5

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """n draws of x0 (float64, (n, D))."""
        k = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        return self.means[k] + self.stds[k, None] * torch.randn((n, self.dim), generator=generator, dtype=torch.float64)


class MixtureBackbone(Backbone):
    """The mixture as an unconditional backbone: `predict` returns the exact eps (or v, or x0, as the config's
    prediction type says); samples are (B, D) points and `decode` returns them as they are (no pixels).

    Args:
        mixture: the data.
        scheduler_config: a diffusers DDPM-family config; its schedule gives a_t (default: the embedded world's).
    """

    name = "mixture"
    device = torch.device("cpu")
    dtype = torch.float32
    image_size = 0

    def __init__(self, mixture: GaussianMixture | None = None, scheduler_config: dict | None = None):
        super().__init__()
        self.mixture = mixture or GaussianMixture.ring()
        self.scheduler_config = dict(scheduler_config or WORLD_SCHEDULE)
        self.prediction_type = self.scheduler_config.get("prediction_type", "epsilon")
        alphas_cumprod = DDPMScheduler.from_config(self.scheduler_config).alphas_cumprod
        self.alphas_cumprod, self._alphas64 = alphas_cumprod.float(), alphas_cumprod.double()
        self.sample_shape = (self.mixture.dim,)

    def embed(self, conditions: Sequence[Condition]) -> Tensor:
        """No conditioning: a (B, 1, 1) zero."""
        return torch.zeros(len(conditions), 1, 1)

    def _forward(self, x: Tensor, t: Tensor, embeddings: Tensor, control: Control | None, guide: bool) -> Tensor:
        a = float(self._alphas64[int(t.flatten()[0])])
        return self.output(x, a).to(x.dtype)

    def output(self, x: Tensor, a: float) -> Tensor:
        """The exact model output at alpha-bar `a`, of `prediction_type`, float64.

        Args:
            x: (B, D) noisy samples.
            a: alpha-bar a_t in (0, 1).
        """
        x0, eps = self.mixture.x0_hat(x, a), self.mixture.eps_hat(x, a)
        if self.prediction_type == "epsilon":
            return eps
        if self.prediction_type == "v_prediction":
            return a**0.5 * eps - (1 - a) ** 0.5 * x0
        return x0

    def decode(self, x0: Tensor) -> Tensor:
        """The points themselves (the mixture has no pixels)."""
        return x0


def mixture_world() -> World:
    """A World around the mixture backbone, for the solvers suite; it has no networks to measure images with."""
    missing = Unavailable(
        WeightsUnavailableError(
            "the Gaussian mixture's image networks", "nowhere: it has none", "only the solvers suite runs on it"
        )
    )
    return World(
        backbone=MixtureBackbone(),
        face_detector=missing,
        face_embedder=missing,
        style_features=missing,
        classifier=missing,
        evaluator=missing,
    )


def solver_paths(
    solvers: Sequence[str], grid: str, nfe: int, samples: int = 8, seed: int = 500, backbone: MixtureBackbone | None = None
) -> dict[str, Tensor]:
    """Each solver's path through the plane from the same noise to the ring's modes (the Solvers tab's teaching view).

    Args:
        solvers: among guidance.schedulers.grids.SOLVERS (others are skipped).
        grid: one of guidance.schedulers.grids.GRIDS, shared by every solver.
        nfe: model calls per path.
        samples: paths per solver.
        seed: of the noise.
        backbone: the mixture (default: the ring).

    Returns:
        Per solver, the points it passes: (steps + 1, samples, 2), the noise first.
    """
    backbone = backbone or MixtureBackbone()
    noise = backbone.initial_noise(samples, torch.Generator().manual_seed(seed))
    embeddings = backbone.embed([None] * samples)
    found = {}
    for solver in (s for s in solvers if s in SOLVERS):
        points = [noise]
        ode_solve(backbone, grid_scheduler(solver, backbone.scheduler_config, grid, nfe), noise, embeddings, points.append)
        found[solver] = torch.stack(points)
    return found

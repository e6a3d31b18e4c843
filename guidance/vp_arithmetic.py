"""Noise-schedule arithmetic shared by the sampler and the methods (VP diffusion).

x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps, with a_t the cumulative product of alphas.
"""
from __future__ import annotations

import torch
from torch import Tensor


def expand(value: Tensor | float, like: Tensor) -> Tensor:
    """A scalar or per-sample (B,) value shaped to broadcast against `like` (B, C, H, W)."""
    value = torch.as_tensor(value, device=like.device, dtype=torch.float32)
    return value.reshape(-1, *([1] * (like.ndim - 1))) if value.ndim else value


def to_eps_and_x0(x: Tensor, out: Tensor, a_t: Tensor | float, prediction_type: str) -> tuple[Tensor, Tensor]:
    """Noise and clean estimate (Tweedie) from a model output of the given prediction type."""
    a = expand(a_t, x)
    sa, s1a = a.sqrt(), (1 - a).sqrt()
    if prediction_type == "epsilon":
        eps = out
        x0 = (x - s1a * eps) / sa
    elif prediction_type == "v_prediction":
        x0 = sa * x - s1a * out
        eps = sa * out + s1a * x
    elif prediction_type == "sample":
        x0 = out
        eps = (x - sa * x0) / s1a
    else:
        raise ValueError(f"unknown prediction_type {prediction_type!r}")
    return eps, x0


def from_eps(x: Tensor, eps: Tensor, a_t: Tensor | float, prediction_type: str) -> Tensor:
    """The model output of `prediction_type` that corresponds to the noise estimate `eps`."""
    a = expand(a_t, x)
    sa, s1a = a.sqrt(), (1 - a).sqrt()
    if prediction_type == "epsilon":
        return eps
    x0 = (x - s1a * eps) / sa
    if prediction_type == "v_prediction":
        return sa * eps - s1a * x0
    if prediction_type == "sample":
        return x0
    raise ValueError(f"unknown prediction_type {prediction_type!r}")


def renoise(x_prev: Tensor, a_t: float, a_prev: float, noise: Tensor) -> Tensor:
    """FreeDoM's time travel: go back from step t-1 to t, x_t = sqrt(a_t/a_prev) x_prev + sqrt(1 - a_t/a_prev) z."""
    ratio = a_t / a_prev
    return ratio**0.5 * x_prev + (1 - ratio) ** 0.5 * noise


def rms(x: Tensor) -> Tensor:
    """Root mean square per sample, shape (B,)."""
    return x.flatten(1).pow(2).mean(1).sqrt()


def norm(x: Tensor) -> Tensor:
    """L2 norm per sample over C, H, W, shape (B,)."""
    return x.flatten(1).norm(dim=1)

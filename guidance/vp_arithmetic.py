"""Noise-schedule arithmetic shared by the sampler and the methods (VP diffusion).

x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps, with a_t the cumulative product of alphas.

The conversions read the same arguments: x is x_t, (B, C, H, W); a_t is alpha-bar at t, a float or one per sample
(B,); prediction_type is what the model predicts: "epsilon", "v_prediction" or "sample".
"""
from __future__ import annotations

import torch
from torch import Tensor


def expand(value: Tensor | float, like: Tensor) -> Tensor:
    """A scalar or per-sample value shaped to broadcast against a batch.

    Args:
        value: a scalar or (B,) values.
        like: (B, C, H, W) the tensor to broadcast against.

    Returns:
        float32 on `like`'s device: 0-d for a scalar, else (B, 1, 1, 1).
    """
    value = torch.as_tensor(value, device=like.device, dtype=torch.float32)
    return value.reshape(-1, *([1] * (like.ndim - 1))) if value.ndim else value


def to_eps_and_x0(x: Tensor, out: Tensor, a_t: Tensor | float, prediction_type: str) -> tuple[Tensor, Tensor]:
    """Noise and clean estimate (Tweedie) from a model output of the given prediction type.

    Args:
        x, a_t, prediction_type: as in the module docstring.
        out: the model output at x, shaped as x.

    Returns:
        (eps, x0), each shaped as x.

    Raises:
        ValueError: an unknown prediction type.
    """
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
    """The model output of `prediction_type` that corresponds to the noise estimate `eps`.

    Args:
        x, a_t, prediction_type: as in the module docstring.
        eps: the noise estimate at x, shaped as x.

    Returns:
        The model output, shaped as x.

    Raises:
        ValueError: an unknown prediction type.
    """
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
    """FreeDoM's time travel: go back from step t-1 to t, x_t = sqrt(a_t/a_prev) x_prev + sqrt(1 - a_t/a_prev) z.

    Args:
        x_prev: (B, C, H, W) x_{t-1}.
        a_t: alpha-bar at t.
        a_prev: alpha-bar at t-1.
        noise: z ~ N(0, I), shaped as x_prev.

    Returns:
        x_t, shaped as x_prev.
    """
    ratio = a_t / a_prev
    return ratio**0.5 * x_prev + (1 - ratio) ** 0.5 * noise


def rms(x: Tensor) -> Tensor:
    """Root mean square per sample.

    Args:
        x: (B, ...) a batch.

    Returns:
        (B,) the RMS over each sample's entries.
    """
    return x.flatten(1).pow(2).mean(1).sqrt()


def norm(x: Tensor) -> Tensor:
    """L2 norm per sample over C, H, W.

    Args:
        x: (B, C, H, W) a batch.

    Returns:
        (B,) the norms.
    """
    return x.flatten(1).norm(dim=1)

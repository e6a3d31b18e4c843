"""Noise-schedule arithmetic shared by the sampler and the methods, in the VP view of any Gaussian path.

x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps, with a_t alpha-bar. A Gaussian path z_t = alpha_t x0 + sigma_t eps is the
VP path scaled by c_t = sqrt(alpha_t^2 + sigma_t^2), with a_t = alpha_t^2 / c_t^2 (docs/methods.md, "Gaussian
paths"): the methods work on x_t = z_t / c_t. Rectified flow (alpha_t = 1 - s, sigma_t = s) is the case that flow
models (SD 3) predict the velocity v = eps - x0 of; its s and c_t follow from a_t alone (`flow_sigma`, `flow_scale`).

The conversions read the same arguments: x is x_t, (B, C, H, W); a_t is alpha-bar at t, a float or one per sample
(B,); prediction_type is what the model predicts: "epsilon", "v_prediction", "sample" or "flow_prediction" (the
velocity of a flow model, whose input is c_t x_t).
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
    if prediction_type == "flow_prediction":  # z = c x = (1 - s) x0 + s eps: x0 = z - s v, eps = z + (1 - s) v
        s, z = flow_sigma(a), model_input(x, a_t, prediction_type)
        return z + (1 - s) * out, z - s * out
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


def to_output(x: Tensor, estimate: Tensor, a_t: Tensor | float, prediction_type: str, estimate_type: str = "epsilon") -> Tensor:
    """The model output of `prediction_type` that corresponds to an estimate of `estimate_type`.

    Args:
        x, a_t, prediction_type: as in the module docstring.
        estimate: the noise estimate ("epsilon") or clean estimate ("sample") at x, shaped as x.
        estimate_type: what `estimate` is.

    Returns:
        The model output, shaped as x.

    Raises:
        ValueError: an unknown prediction type.
    """
    if estimate_type == "sample":
        eps, x0 = to_eps_and_x0(x, estimate, a_t, "sample")
        return eps - x0 if prediction_type == "flow_prediction" else to_output(x, eps, a_t, prediction_type)
    a = expand(a_t, x)
    sa, s1a = a.sqrt(), (1 - a).sqrt()
    eps = estimate
    if prediction_type == "epsilon":
        return eps
    x0 = (x - s1a * eps) / sa
    if prediction_type == "flow_prediction":
        return eps - x0
    if prediction_type == "v_prediction":
        return sa * eps - s1a * x0
    if prediction_type == "sample":
        return x0
    raise ValueError(f"unknown prediction_type {prediction_type!r}")


def flow_sigma(a_t: Tensor | float) -> Tensor | float:
    """s of the rectified-flow path z = (1 - s) x0 + s eps whose VP view has alpha-bar a_t:
    sqrt(1 - a_t) / (sqrt(a_t) + sqrt(1 - a_t)).

    Args:
        a_t: alpha-bar, a float or a tensor.

    Returns:
        s, of the argument's type.
    """
    return (1 - a_t) ** 0.5 / (a_t**0.5 + (1 - a_t) ** 0.5)


def flow_scale(a_t: Tensor | float) -> Tensor | float:
    """c_t of the rectified-flow path whose VP view has alpha-bar a_t: z = c_t x, c_t = 1 / (sqrt(a_t) + sqrt(1 - a_t)).

    Args:
        a_t: alpha-bar, a float or a tensor.

    Returns:
        c_t, of the argument's type.
    """
    return 1 / (a_t**0.5 + (1 - a_t) ** 0.5)


def flow_alpha(s: float) -> float:
    """alpha-bar of the VP view of the rectified-flow point z = (1 - s) x0 + s eps: (1 - s)^2 / ((1 - s)^2 + s^2).

    Args:
        s: the flow's noise level in [0, 1].

    Returns:
        a_t in [0, 1].
    """
    return (1 - s) ** 2 / ((1 - s) ** 2 + s**2)


def model_input(x: Tensor, a_t: Tensor | float, prediction_type: str) -> Tensor:
    """What the model reads for the VP view x: c_t x for a flow model, x itself for a VP model.

    Args:
        x, a_t, prediction_type: as in the module docstring.

    Returns:
        The model's input, shaped as x.
    """
    return x * flow_scale(expand(a_t, x)) if prediction_type == "flow_prediction" else x


def eps_difference(delta: Tensor, a_t: Tensor | float, estimate_type: str) -> Tensor:
    """A difference of two estimates at the same x (CFG's D_c - D_u) in noise units: itself for noise estimates;
    for clean estimates, -sqrt(a_t / (1 - a_t)) times it (eps = (x - sqrt(a_t) x0) / sqrt(1 - a_t)).

    Args:
        delta: (B, C, H, W) the difference.
        a_t: alpha-bar at t.
        estimate_type: "epsilon" or "sample", what the estimates are.

    Returns:
        The difference of the noise estimates, shaped as `delta`.
    """
    if estimate_type == "epsilon":
        return delta
    a = expand(a_t, delta)
    return -(a / (1 - a)).sqrt() * delta


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

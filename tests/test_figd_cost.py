"""FIGD's cost: its denoiser pass keeps no graph (inference mode, the gradient taken from x0_hat), and its w_t
profile's mean is computed once per run."""

from __future__ import annotations

import torch
from helpers import MeanColour, run, step_context

from guidance.methods import Settings, build_method


def x_and_energy(backbone):
    x = torch.randn((2, *backbone.sample_shape), generator=torch.Generator().manual_seed(0))
    return x, MeanColour()


def test_figd_runs_the_denoiser_in_inference_mode_and_differentiates_from_x0(tiny_sd):
    x, energy = x_and_energy(tiny_sd)
    ctx, seen = step_context(tiny_sd, x, energy), []
    handle = tiny_sd.unet.register_forward_pre_hook(lambda *a: seen.append(torch.is_inference_mode_enabled()))
    try:
        estimate, (gradient,), _ = build_method("figd", Settings(cfg_scale=2.0)).energy_gradients(ctx, [energy])
    finally:
        handle.remove()
    assert seen == [True] and not estimate.eps.is_inference()
    x0 = ((x - (1 - ctx.a_t) ** 0.5 * estimate.eps) / ctx.a_t**0.5).requires_grad_(True)
    expected = torch.autograd.grad(energy(tiny_sd.decode(x0)).sum(), x0)[0]
    assert torch.allclose(gradient, expected, atol=1e-6)


def test_figd_weight_mean_is_computed_once_per_run(tiny_sd):
    from guidance.methods.figd import mean_weight

    mean_weight.cache_clear()
    run(tiny_sd, "figd", MeanColour(), scale=0.5, fisher_weight="flat-prior")
    assert mean_weight.cache_info().misses == 1 and mean_weight.cache_info().hits >= 5

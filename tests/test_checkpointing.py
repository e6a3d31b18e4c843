"""Gradient checkpointing for FreeDoM and DPS: the same gradient with the denoisers recomputing their activations, and
the denoisers switched back afterwards."""

from __future__ import annotations

import pytest
import torch
from helpers import MeanColour, step_context

from guidance.methods import Settings, build_method


def x_and_energy(backbone):
    x = torch.randn((2, *backbone.sample_shape), generator=torch.Generator().manual_seed(0))
    return x, MeanColour()


def test_checkpointed_freedom_takes_the_same_gradient_with_the_unet_checkpointed(tiny_sd):
    x, energy = x_and_energy(tiny_sd)
    blocks = [m for m in tiny_sd.unet.modules() if hasattr(m, "gradient_checkpointing")]
    seen = []
    handle = tiny_sd.unet.register_forward_pre_hook(lambda *a: seen.append(all(b.gradient_checkpointing for b in blocks)))
    try:
        gradients = [
            build_method(name, Settings(cfg_scale=2.0, checkpointing=on)).energy_gradients(
                step_context(tiny_sd, x, energy), [energy]
            )[1][0]
            for name in ("freedom", "dps")
            for on in (False, True)
        ]
    finally:
        handle.remove()
    assert seen == [False, True, False, True]
    assert not any(b.gradient_checkpointing for b in blocks)  # switched off after the step
    assert torch.allclose(gradients[0], gradients[1], atol=1e-5) and torch.allclose(gradients[2], gradients[3], atol=1e-5)
    assert build_method("freedom", Settings(checkpointing=True)).describe()["checkpointing"] is True
    assert build_method("figd", Settings(checkpointing=True)).checkpointing is False  # FIGD keeps no UNet graph


def test_gradient_checkpointing_context_switches_every_denoiser_back_off_even_after_an_error(tiny_sd):
    models = (tiny_sd.unet, tiny_sd.controlnet)
    with pytest.raises(RuntimeError, match="inside"):
        with tiny_sd.gradient_checkpointing(True):
            assert all(m.is_gradient_checkpointing for m in models)
            raise RuntimeError("inside")
    assert not any(m.is_gradient_checkpointing for m in models)

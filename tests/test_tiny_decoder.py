"""The tiny decoder on the guidance path: it decodes x0_hat for the energies only, loads like any other weights, and
its absence is a typed error."""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderTiny
from helpers import MeanColour, run
from tiny_sd import tiny_autoencoder

from guidance.errors import MethodConfigError, WeightsUnavailableError
from guidance.worlds.sd15 import load_sd15


@pytest.mark.parametrize("name", ["freedom", "figd"])
def test_tiny_decoder_feeds_only_the_guidance_path(sd_with_tiny_decoder, name):
    backbone = sd_with_tiny_decoder
    calls = {"tiny": 0, "full": 0}
    tiny_decode, full_decode = backbone.tiny_decoder.decode, backbone.vae.decode

    def counted(kind, function):
        def wrapper(*args, **kwargs):
            calls[kind] += 1
            return function(*args, **kwargs)

        return wrapper

    backbone.tiny_decoder.decode, backbone.vae.decode = counted("tiny", tiny_decode), counted("full", full_decode)
    try:
        result = run(backbone, name, MeanColour(), scale=0.5, tiny_decoder=True)
    finally:
        del backbone.tiny_decoder.decode, backbone.vae.decode
    assert calls == {"tiny": 6, "full": 1}  # one guidance decode per step, the final image from the full VAE
    with torch.no_grad():
        assert not torch.allclose(
            backbone.guidance_decode(torch.randn(1, *backbone.sample_shape), tiny=True),
            backbone.decode(torch.randn(1, *backbone.sample_shape)),
        )
    assert result.options["tiny_decoder"] is True and result.final_energy is not None


def test_the_app_registry_loads_sd_with_its_tiny_decoder(tiny_sd_folders, tmp_path):
    from guidance.worlds.registry import SD, WorldRegistry

    tiny_autoencoder().save_pretrained(tmp_path / "taesd")
    worlds = {
        vae: WorldRegistry(sd_model=str(tiny_sd_folders[0]), tiny_vae=vae, device="cpu")
        for vae in (str(tmp_path / "taesd"), None)
    }
    assert isinstance(worlds[str(tmp_path / "taesd")].load(SD).backbone.tiny_decoder, AutoencoderTiny)
    assert worlds[None].load(SD).backbone.tiny_decoder is None


def test_tiny_decoder_errors_are_typed(tiny_sd, tiny_sd_folders, tmp_path):
    with pytest.raises(MethodConfigError, match="tiny decoder"):
        run(tiny_sd, "figd", MeanColour(), scale=0.5, tiny_decoder=True)
    with pytest.raises(WeightsUnavailableError, match="AutoencoderTiny"):
        load_sd15(str(tiny_sd_folders[0]), device="cpu", image_size=16, tiny_vae=str(tmp_path / "no-taesd"))

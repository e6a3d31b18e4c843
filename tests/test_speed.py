"""The speed and memory options: FIGD's graph-free denoiser pass, gradient checkpointing for FreeDoM and DPS,
and the tiny decoder on the guidance path (loaded like any other weights)."""
from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderTiny
from helpers import MeanColour, run, step_context

from guidance.errors import MethodConfigError, WeightsUnavailableError
from guidance.methods import Settings, build_method
from guidance.worlds.sd15 import load_sd15


def tiny_autoencoder(latent_channels: int = 4) -> AutoencoderTiny:
    """A TAESD-architecture AutoencoderTiny with one upsampling (the tiny SD VAE's factor 2), random weights."""
    torch.manual_seed(1)
    return AutoencoderTiny(latent_channels=latent_channels, encoder_block_out_channels=(8, 8), num_encoder_blocks=(1, 1),
                           decoder_block_out_channels=(8, 8), num_decoder_blocks=(1, 1))  # fmt: skip


@pytest.fixture(scope="module")
def sd_with_tiny_decoder(tiny_sd_folders, tmp_path_factory):
    folder = tmp_path_factory.mktemp("taesd")
    tiny_autoencoder().save_pretrained(folder)
    sd, controlnet = tiny_sd_folders
    return load_sd15(str(sd), controlnet=str(controlnet), device="cpu", image_size=16, tiny_vae=str(folder))


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


def test_checkpointed_freedom_takes_the_same_gradient_with_the_unet_checkpointed(tiny_sd):
    x, energy = x_and_energy(tiny_sd)
    blocks = [m for m in tiny_sd.unet.modules() if hasattr(m, "gradient_checkpointing")]
    seen = []
    handle = tiny_sd.unet.register_forward_pre_hook(lambda *a: seen.append(all(b.gradient_checkpointing for b in blocks)))
    try:
        gradients = [
            build_method(name, Settings(cfg_scale=2.0, checkpointing=on)).energy_gradients(step_context(tiny_sd, x, energy), [energy])[1][0]
            for name in ("freedom", "dps") for on in (False, True)
        ]  # fmt: skip
    finally:
        handle.remove()
    assert seen == [False, True, False, True]
    assert not any(b.gradient_checkpointing for b in blocks)  # switched off after the step
    assert torch.allclose(gradients[0], gradients[1], atol=1e-5) and torch.allclose(gradients[2], gradients[3], atol=1e-5)
    assert build_method("freedom", Settings(checkpointing=True)).describe()["checkpointing"] is True
    assert build_method("figd", Settings(checkpointing=True)).checkpointing is False  # FIGD keeps no UNet graph


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
        assert not torch.allclose(backbone.guidance_decode(torch.randn(1, *backbone.sample_shape), tiny=True),
                                  backbone.decode(torch.randn(1, *backbone.sample_shape)))  # fmt: skip
    assert result.options["tiny_decoder"] is True and result.final_energy is not None


def test_the_app_registry_loads_sd_with_its_tiny_decoder(tiny_sd_folders, tmp_path):
    from guidance.worlds.registry import SD, WorldRegistry

    tiny_autoencoder().save_pretrained(tmp_path / "taesd")
    worlds = {vae: WorldRegistry(sd_model=str(tiny_sd_folders[0]), tiny_vae=vae, device="cpu") for vae in (str(tmp_path / "taesd"), None)}
    assert isinstance(worlds[str(tmp_path / "taesd")].load(SD).backbone.tiny_decoder, AutoencoderTiny)
    assert worlds[None].load(SD).backbone.tiny_decoder is None


def test_tiny_decoder_errors_are_typed(tiny_sd, tiny_sd_folders, tmp_path):
    with pytest.raises(MethodConfigError, match="tiny decoder"):
        run(tiny_sd, "figd", MeanColour(), scale=0.5, tiny_decoder=True)
    with pytest.raises(WeightsUnavailableError, match="AutoencoderTiny"):
        load_sd15(str(tiny_sd_folders[0]), device="cpu", image_size=16, tiny_vae=str(tmp_path / "no-taesd"))


def test_gradient_checkpointing_context_switches_every_denoiser_back_off_even_after_an_error(tiny_sd):
    models = (tiny_sd.unet, tiny_sd.controlnet)
    with pytest.raises(RuntimeError, match="inside"):
        with tiny_sd.gradient_checkpointing(True):
            assert all(m.is_gradient_checkpointing for m in models)
            raise RuntimeError("inside")
    assert not any(m.is_gradient_checkpointing for m in models)


def test_control_map_is_repeated_once_per_batch_size():
    from guidance.backbone import Control

    control = Control(torch.rand(1, 3, 8, 8), scale=0.7)
    doubled = control.for_batch(2)
    assert control.for_batch(1) is control and control.for_batch(2) is doubled
    assert doubled.image.shape[0] == 2 and torch.equal(doubled.image[1], control.image[0]) and doubled.scale == 0.7


def test_figd_weight_mean_is_computed_once_per_run(tiny_sd):
    from guidance.methods.figd import mean_weight

    mean_weight.cache_clear()
    run(tiny_sd, "figd", MeanColour(), scale=0.5, fisher_weight="flat-prior")
    assert mean_weight.cache_info().misses == 1 and mean_weight.cache_info().hits >= 5


def test_loaded_worlds_keep_their_convolution_weights_channels_last(sd_with_tiny_decoder):
    from guidance.worlds.embedded import load_backbone

    for backbone in (sd_with_tiny_decoder, load_backbone()):
        weights = [p for net in (backbone.unet, backbone.vae, backbone.controlnet, backbone.tiny_decoder) for p in net.parameters()]
        kernels = [p for p in weights if p.dim() == 4]
        assert len(kernels) > 20 and all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels)
        assert not any(p.requires_grad for p in weights)


PEAK_MEMORY_CHECK = """
import torch
from guidance.recording import PeakMemory

def touch(megabytes):
    block = torch.ones(megabytes * 2**18)  # float32: 4 bytes each, every page written
    del block

touch(600)  # a peak before the measured blocks, which must not count in them
with PeakMemory(torch.device("cpu")) as idle:
    pass
with PeakMemory(torch.device("cpu")) as busy:
    touch(300)
print(idle.peak_mb, busy.peak_mb)
"""


def test_peak_memory_on_the_cpu_counts_a_block_freed_inside_it_and_nothing_from_before_it():
    """In a fresh process: the test session's other threads (app servers) would move a process-wide peak."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", PEAK_MEMORY_CHECK], cwd=root, capture_output=True, text=True, check=True)
    idle, busy = map(float, done.stdout.split())
    assert idle < 50
    assert 280 < busy < 400

"""The sampling loop on tiny SD components: loading, plain runs, schedulers and solvers, errors, cancellation, time travel."""

from __future__ import annotations

import pytest
import torch
from helpers import PROMPTS, FixedClassifier, MeanColour, NaNEnergy, reachable_target, run

from guidance.errors import MethodConfigError, SamplingNaNError, WeightsUnavailableError
from guidance.methods import FreeDoM, Settings, build_method
from guidance.sampling import sample
from guidance.worlds.sd15 import load_sd15


def test_loader_reads_saved_components(tiny_sd):
    assert tiny_sd.sample_shape == (4, 2, 2) or tiny_sd.sample_shape[0] == 4
    assert tiny_sd.has_controlnet and tiny_sd.embed(PROMPTS).shape[0] == 2


def test_missing_weights_raise_typed_error(tmp_path):
    with pytest.raises(WeightsUnavailableError) as info:
        load_sd15(str(tmp_path / "nowhere"), device="cpu")
    assert "UNet" in str(info.value) and "nowhere" in str(info.value)
    with pytest.raises(WeightsUnavailableError):
        load_sd15("no-such-org/no-such-model", device="cpu", local_files_only=True)


def test_plain_run_records_every_step(tiny_sd):
    result = run(tiny_sd, "cfg", MeanColour(), cfg_scale=3.0)
    assert result.images.shape == (2, 3, 16, 16) and result.images.abs().max() <= 1
    assert len(result.steps) == 6 and all(s.seconds > 0 and s.nfe == 2 for s in result.steps)
    assert result.nfe == 12 and all(e is not None for e in result.energy_per_step)


def test_runs_are_reproducible_and_seeded(tiny_sd):
    a, b = run(tiny_sd, "figd", MeanColour(), scale=0.5), run(tiny_sd, "figd", MeanColour(), scale=0.5)
    c = run(tiny_sd, "figd", MeanColour(), scale=0.5, seed=4)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)


def test_nan_in_sampling_raises_typed_error(tiny_sd):
    with pytest.raises(SamplingNaNError):
        run(tiny_sd, "figd", NaNEnergy(), scale=1.0)


def test_time_travel_repeats_steps_and_needs_a_stateless_scheduler(tiny_sd):
    result = run(tiny_sd, "freedom", MeanColour(), repeats=3, travel_window=(0.0, 0.5), steps=6)
    assert [s.nfe for s in result.steps] == [3, 3, 3, 1, 1, 1]
    with pytest.raises(MethodConfigError):
        run(tiny_sd, "freedom", MeanColour(), repeats=3, scheduler="dpmsolver++")


def test_method_names_are_checked():
    with pytest.raises(MethodConfigError):
        build_method("figd+freedom")
    with pytest.raises(MethodConfigError):
        build_method("dsg")
    assert isinstance(build_method("figd+dsg"), FreeDoM)


@pytest.mark.parametrize("scheduler", ["ddim", "ddpm", "dpmsolver++", "unipc", "evodiff"])
def test_every_scheduler_drives_the_loop(tiny_sd, scheduler):
    result = run(tiny_sd, "figd", MeanColour(), scheduler=scheduler, steps=5)
    assert result.nfe == 5 and torch.isfinite(result.images).all()


def test_controlnet_changes_the_output(tiny_sd):
    control = tiny_sd.prepare_control(torch.rand(1, 3, 16, 16))
    with_map = sample(tiny_sd, build_method("cfg", Settings(cfg_scale=2.0)), PROMPTS, steps=3, control=control)
    without = sample(tiny_sd, build_method("cfg", Settings(cfg_scale=2.0)), PROMPTS, steps=3)
    assert not torch.equal(with_map.images, without.images)


def test_cancellation_stops_between_steps(tiny_sd):
    seen = []
    result = sample(
        tiny_sd, build_method("plain"), PROMPTS, steps=8, progress=lambda i, n: seen.append(i), should_stop=lambda: len(seen) >= 3
    )
    assert result.cancelled and len(result.steps) == 3 and result.images.shape == (2, 3, 16, 16)


def test_evodiff_drives_a_stock_stable_diffusion_pipeline_with_cfg(tiny_sd):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from guidance import EVODiffScheduler

    pipe = StableDiffusionPipeline(
        vae=tiny_sd.vae,
        text_encoder=tiny_sd.text_encoder,
        tokenizer=tiny_sd.tokenizer,
        unet=tiny_sd.unet,
        scheduler=DDIMScheduler.from_config(tiny_sd.scheduler_config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.scheduler = EVODiffScheduler.from_config(pipe.scheduler.config)
    calls = []
    handle = tiny_sd.unet.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    try:
        images = pipe("a cat", num_inference_steps=5, guidance_scale=3.0, height=16, width=16, output_type="pt").images
    finally:
        handle.remove()
    assert calls == [2] * 5  # one batched CFG call (conditional + unconditional) per step
    assert images.shape == (1, 3, 16, 16) and torch.isfinite(images).all()


def test_out_of_memory_becomes_a_typed_error(tiny_sd, monkeypatch):
    from guidance.errors import DeviceOutOfMemoryError

    def exhausted(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(tiny_sd, "predict", exhausted)
    with pytest.raises(DeviceOutOfMemoryError, match="fewer samples"):
        run(tiny_sd, "cfg", cfg_scale=2.0)


def test_gfcg_with_evodiff_and_controlnet_with_face_style_combinations(tiny_sd):
    classifier = FixedClassifier([0.4, 0.3, 0.2, 0.1])
    result = sample(tiny_sd, build_method("gfcg", Settings(), classifier), ["cat"], steps=4, scheduler="evodiff")
    assert result.nfe == 8 and torch.isfinite(result.images).all()
    control = tiny_sd.prepare_control(torch.rand(1, 3, 16, 16))
    guided = sample(
        tiny_sd,
        build_method("figd+dsg", Settings(cfg_scale=2.0)),
        PROMPTS,
        steps=4,
        eta=1.0,
        energy=reachable_target(tiny_sd),
        control=control,
    )
    assert torch.isfinite(guided.images).all() and guided.nfe == 8


def test_sd_world_loads_without_face_and_clip_weights_and_names_them_on_use(tiny_sd_folders, tmp_path, monkeypatch):
    from guidance.worlds import load_sd15_world

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    sd, controlnet = tiny_sd_folders
    world = load_sd15_world(str(sd), controlnet=str(controlnet), device="cpu")
    assert world.backbone.has_controlnet
    with pytest.raises(WeightsUnavailableError, match="vggface2"):
        world.face_embedder(torch.zeros(1, 3, 160, 160))
    with pytest.raises(WeightsUnavailableError, match="ViT-B-16"):
        world.style_features(torch.zeros(1, 3, 64, 64))


@pytest.mark.parametrize("name", ["ddim", "dpmsolver++", "unipc", "evodiff"])
def test_every_solver_clips_x0_as_the_config_says(name):
    """A config with clip_sample makes every solver clamp x0_hat to [-1, 1]; the last step returns it."""
    from diffusers import DDPMScheduler

    from guidance.schedulers.adapters import make_scheduler

    x = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    finals = {}
    for clip in (True, False):
        scheduler = make_scheduler(name, DDPMScheduler(clip_sample=clip).config)
        scheduler.set_timesteps(4)
        y = x
        for t in scheduler.timesteps:
            y = scheduler.step(-3 * torch.ones_like(y), t, y).prev_sample  # x0_hat far above 1 at every step
        finals[clip] = y
    assert float(finals[False].max()) > 1.5
    assert float(finals[True].max()) < float(finals[False].max()) - 0.5


def test_make_scheduler_keeps_evodiff_on_its_logsnr_grid_from_the_top_label():
    """The embedded world's DDPM config says "leading"; the playground's EVODiff still starts at label T-1."""
    from diffusers import DDPMScheduler

    from guidance.schedulers.adapters import make_scheduler

    scheduler = make_scheduler("evodiff", DDPMScheduler(timestep_spacing="leading", steps_offset=1).config)
    scheduler.set_timesteps(10)
    assert scheduler.config.time_grid == "logsnr" and int(scheduler.timesteps[0]) == 999

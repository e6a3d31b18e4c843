"""Tests for guidance/schedulers/evodiff.py (EVODiff as a diffusers scheduler), CPU only.

Most checks use an analytic model: for Gaussian data x0 ~ N(0, diag(s^2)) the exact
noise predictor is eps(x, t) = sqrt(1 - a) x / (a s^2 + 1 - a) and the probability-flow
ODE maps x_T to x_t = x_T sqrt(a_t s^2 + 1 - a_t) / sqrt(a_T s^2 + 1 - a_T) elementwise.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMPipeline,
    DiTPipeline,
    DiTTransformer2DModel,
    DPMSolverMultistepScheduler,
    UNet2DModel,
)

from guidance.schedulers.evodiff import EVODiffScheduler

SHAPE = (2, 3, 8, 8)


@pytest.fixture
def data_std() -> torch.Tensor:
    """Per-element data std s of the analytic Gaussian model (varies over channels and pixels)."""
    gen = torch.Generator().manual_seed(1)
    return torch.rand((1, *SHAPE[1:]), generator=gen, dtype=torch.float64) * 1.5 + 0.1


def alpha_bar(scheduler, t) -> torch.Tensor:
    return scheduler.alphas_cumprod.double()[int(t)]


def exact_eps(x: torch.Tensor, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return ((1 - a).sqrt() * x / (a * s**2 + 1 - a)).to(x.dtype)


def exact_v(x: torch.Tensor, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """v = sqrt(a) eps - sqrt(1 - a) x0 with the exact E[eps | x] and E[x0 | x]."""
    x0 = a.sqrt() * s**2 * x / (a * s**2 + 1 - a)
    return (a.sqrt() * exact_eps(x, a, s) - (1 - a).sqrt() * x0).to(x.dtype)


def exact_flow(x_start: torch.Tensor, a_start: torch.Tensor, a_end: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return x_start * ((a_end * s**2 + 1 - a_end) / (a_start * s**2 + 1 - a_start)).sqrt()


def sample(scheduler, steps: int, x: torch.Tensor, s: torch.Tensor, predictor=exact_eps) -> torch.Tensor:
    scheduler.set_timesteps(steps)
    for t in scheduler.timesteps:
        x = scheduler.step(predictor(x, alpha_bar(scheduler, t), s), t, x).prev_sample
    return x


def noise(dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def relative_error(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((x - ref).norm() / ref.norm())


def test_first_step_is_ddim() -> None:
    ddim = DDIMScheduler(clip_sample=False, timestep_spacing="trailing")
    evo = EVODiffScheduler.from_config(ddim.config, time_grid="time")
    ddim.set_timesteps(10)
    evo.set_timesteps(10)
    assert evo.timesteps[:2].tolist() == ddim.timesteps[:2].tolist() == [999, 899]
    x, eps = noise(torch.float32, 0), noise(torch.float32, 1)
    t = evo.timesteps[0]
    expected = ddim.step(eps, t, x, eta=0.0).prev_sample
    torch.testing.assert_close(evo.step(eps, t, x).prev_sample, expected, rtol=1e-5, atol=1e-5)


def test_deterministic(data_std: torch.Tensor) -> None:
    runs = [sample(EVODiffScheduler(), 8, noise(), data_std) for _ in range(2)]
    assert torch.equal(runs[0], runs[1])


def test_timesteps_are_descending_int_labels() -> None:
    evo = EVODiffScheduler()
    for steps in (1, 2, 5, 20, 100, 999):
        evo.set_timesteps(steps)
        ts = evo.timesteps
        assert ts.dtype == torch.int64 and len(ts) == steps
        assert int(ts[0]) == 999 and bool((ts[1:] < ts[:-1]).all()) and int(ts[-1]) >= 1


def test_from_config_and_stock_pipeline() -> None:
    for other in (DDIMScheduler(), DPMSolverMultistepScheduler(beta_schedule="scaled_linear")):
        evo = EVODiffScheduler.from_config(other.config)
        assert evo.config.beta_schedule == other.config.beta_schedule
        assert DDIMScheduler in evo.compatibles
    unet = UNet2DModel(
        sample_size=8,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(8, 16),
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )
    calls = []
    unet.register_forward_hook(lambda *_: calls.append(1))
    pipe = DDPMPipeline(unet=unet, scheduler=EVODiffScheduler.from_config(DDIMScheduler().config))
    pipe.set_progress_bar_config(disable=True)
    images = pipe(batch_size=2, num_inference_steps=5, generator=torch.manual_seed(0), output_type="np").images
    assert len(calls) == 5
    assert images.shape == (2, 8, 8, 3) and bool(torch.isfinite(torch.from_numpy(images)).all())


def test_stock_cfg_pipeline() -> None:
    transformer = DiTTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=8,
        num_layers=1,
        norm_num_groups=4,
        sample_size=4,
        patch_size=2,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8,),
        norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",),
    )
    calls = []
    transformer.register_forward_hook(lambda *_: calls.append(1))
    pipe = DiTPipeline(transformer=transformer, vae=vae, scheduler=EVODiffScheduler())
    pipe.set_progress_bar_config(disable=True)
    out = pipe(class_labels=[1, 2], guidance_scale=3.0, num_inference_steps=4, output_type="pt").images
    assert len(calls) == 4 and bool(torch.isfinite(out).all())


def test_v_prediction_matches_epsilon(data_std: torch.Tensor) -> None:
    x = noise()
    by_eps = sample(EVODiffScheduler(), 10, x, data_std, exact_eps)
    by_v = sample(EVODiffScheduler(prediction_type="v_prediction"), 10, x, data_std, exact_v)
    torch.testing.assert_close(by_v, by_eps, rtol=1e-6, atol=1e-6)


# Relative errors of the official sampler (EVODiff_edm.sample, ShiguiLi/EVODiff) run offline
# on the same VP grid, data and noise; it agreed with this scheduler to 3e-7 (float64).
# 25 steps exercises the N > 20 rule of docs/methods.md, EVODiff step 11.
@pytest.mark.parametrize(("steps", "official_error"), [(10, 0.08438056), (25, 0.02577873)])
def test_close_to_exact_ode_solution(data_std: torch.Tensor, steps: int, official_error: float) -> None:
    x = noise()
    evo = EVODiffScheduler()
    a = evo.alphas_cumprod.double()
    ref = exact_flow(x, a[999], a[0], data_std)  # both grids run from label 999 to label 0
    err = relative_error(sample(evo, steps, x, data_std), ref)
    ddim = DDIMScheduler(clip_sample=False, set_alpha_to_one=False, timestep_spacing="trailing")
    assert err < relative_error(sample(ddim, 3, x, data_std), ref)
    assert err < relative_error(sample(ddim, steps, x, data_std), ref)
    assert err == pytest.approx(official_error, rel=1e-5)


def test_predictor_is_dpm_solver_pp_2m_with_plain_differences(data_std: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    evo = EVODiffScheduler()
    monkeypatch.setattr(evo, "_balance", lambda new, old, beta0, w: 1.0)  # b1 = b2 = 1
    monkeypatch.setattr(evo, "_damped_ratio", lambda b1, r: r)  # r_i = r
    evo.set_timesteps(10)
    dpm = DPMSolverMultistepScheduler(
        solver_order=2, algorithm_type="dpmsolver++", solver_type="midpoint", lower_order_final=False
    )
    dpm.set_timesteps(timesteps=evo.timesteps.tolist())
    x_evo = x_dpm = noise(torch.float32)
    for t in evo.timesteps[:2]:  # the first step, then step 2's predictor point x_P
        x_evo = evo.step(exact_eps(x_evo, alpha_bar(evo, t), data_std), t, x_evo).prev_sample
        x_dpm = dpm.step(exact_eps(x_dpm, alpha_bar(dpm, t), data_std), t, x_dpm).prev_sample
    torch.testing.assert_close(x_evo, x_dpm, rtol=1e-6, atol=1e-6)


def test_final_denoise_keeps_nfe(data_std: torch.Tensor) -> None:
    evo = EVODiffScheduler(final_denoise=True)
    evo.set_timesteps(6)
    assert len(evo.timesteps) == 6 and int(evo.timesteps[-1]) == 0
    x = noise()
    for t in evo.timesteps:
        out = evo.step(exact_eps(x, alpha_bar(evo, t), data_std), t, x)
        x = out.prev_sample
    assert torch.equal(out.prev_sample, out.pred_original_sample)


def test_float16_model_with_float32_coefficients(data_std: torch.Tensor) -> None:
    x = noise(torch.float32)
    full = sample(EVODiffScheduler(), 10, x, data_std.float())
    half = sample(EVODiffScheduler(), 10, x.half(), data_std.half())
    assert half.dtype == torch.float16
    assert relative_error(half.float(), full) < 1e-2


def test_begin_index_and_add_noise(data_std: torch.Tensor) -> None:
    evo = EVODiffScheduler()
    evo.set_timesteps(10)
    begin = 4
    t0 = evo.timesteps[begin]
    x0, z = noise(seed=2), noise(seed=3)
    a = alpha_bar(evo, t0)
    x = evo.add_noise(x0, z, t0.repeat(SHAPE[0]))
    torch.testing.assert_close(x, a.sqrt() * x0 + (1 - a).sqrt() * z)
    evo.set_begin_index(begin)
    first = evo.step(exact_eps(x, a, data_std), t0, x).prev_sample
    assert evo.step_index == begin + 1
    # A run started mid-schedule opens with the "first step" (first order), from the same point.
    t1 = evo.timesteps[begin + 1]
    a1 = alpha_bar(evo, t1)
    x0_hat = (x - (1 - a).sqrt() * exact_eps(x, a, data_std)) / a.sqrt()
    ddim = a1.sqrt() * x0_hat + (1 - a1).sqrt() * exact_eps(x, a, data_std)
    torch.testing.assert_close(first, ddim)


def test_clip_sample_clamps_every_data_prediction(data_std: torch.Tensor) -> None:
    """With clip_sample the solver sees x0_hat clamped to [-1, 1]; without it, the same run is untouched."""
    small = data_std * 0.1  # an exact model whose x0_hat stays well inside [-1, 1] at every step
    x = noise()
    torch.testing.assert_close(sample(EVODiffScheduler(clip_sample=True), 8, x, small), sample(EVODiffScheduler(), 8, x, small))
    clipped, plain = EVODiffScheduler(clip_sample=True), EVODiffScheduler()
    for scheduler in (clipped, plain):
        scheduler.set_timesteps(8)
    t = clipped.timesteps[3]
    big_eps = -5 * torch.ones_like(x)  # x0_hat = (x + 5 sigma) / alpha, far above 1
    assert float(clipped.step(big_eps, t, x).pred_original_sample.max()) == 1.0
    assert float(plain.step(big_eps, t, x).pred_original_sample.max()) > 2.0
    assert EVODiffScheduler.from_config(DDIMScheduler(clip_sample=True).config).config.clip_sample


# The checks diffusers runs on its own schedulers (tests/schedulers/test_schedulers.py and
# test_scheduler_dpm_multi.py), with EVODiff in place of DPM-Solver++.


def public(config) -> dict:
    return {k: v for k, v in config.items() if not k.startswith("_")}


def run_steps(scheduler, x: torch.Tensor, s: torch.Tensor, count: int | None = None) -> list[torch.Tensor]:
    """prev_sample and pred_original_sample of the first `count` calls (all by default)."""
    outputs = []
    for t in scheduler.timesteps[:count]:
        out = scheduler.step(exact_eps(x, alpha_bar(scheduler, t), s), t, x)
        outputs += [out.prev_sample, out.pred_original_sample]
        x = out.prev_sample
    return outputs


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"time_grid": "time", "timestep_spacing": "trailing", "beta_schedule": "scaled_linear"},
        {"timestep_spacing": "leading", "steps_offset": 1, "final_denoise": True, "clip_sample": True},
        {"prediction_type": "v_prediction", "rescale_betas_zero_snr": True, "num_train_timesteps": 100},
    ],
)
def test_save_pretrained_round_trip_gives_identical_steps(tmp_path, data_std: torch.Tensor, config: dict) -> None:
    evo = EVODiffScheduler(**config)
    evo.save_pretrained(tmp_path)
    loaded = EVODiffScheduler.from_pretrained(tmp_path)
    assert public(loaded.config) == public(evo.config)
    runs = []
    for scheduler in (evo, loaded):
        scheduler.set_timesteps(6)
        runs.append(run_steps(scheduler, noise(), data_std))
    assert torch.equal(evo.timesteps, loaded.timesteps)
    assert all(torch.equal(a, b) for a, b in zip(*runs))


@pytest.mark.parametrize("shape", [(2, 4), (1, 3, 5), (2, 3, 4, 4), (1, 2, 2, 3, 3)])
def test_step_output_shapes_and_tuple_equivalence(shape: tuple[int, ...]) -> None:
    evo, twin = EVODiffScheduler(), EVODiffScheduler()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    y = x
    for scheduler in (evo, twin):
        scheduler.set_timesteps(5)
    for t in evo.timesteps:  # Step 1, predictors and correctors, and the last step
        residual = 0.1 * x
        out = evo.step(residual, t, x)
        prev, x0 = twin.step(residual, t, y, return_dict=False)
        assert out.prev_sample.shape == out.pred_original_sample.shape == shape
        assert torch.equal(out.prev_sample, prev) and torch.equal(out.pred_original_sample, x0)
        x, y = out.prev_sample, prev


def test_from_config_chain_through_other_schedulers_gives_the_same_run(data_std: torch.Tensor) -> None:
    from diffusers import DEISMultistepScheduler, DPMSolverSinglestepScheduler, UniPCMultistepScheduler

    shared = {"beta_schedule": "scaled_linear", "prediction_type": "v_prediction", "timestep_spacing": "trailing"}
    scheduler = EVODiffScheduler(**shared)
    for other in (DPMSolverMultistepScheduler, DPMSolverSinglestepScheduler, UniPCMultistepScheduler, DEISMultistepScheduler):
        scheduler = other.from_config(scheduler.config)
        assert {k: scheduler.config[k] for k in shared} == shared
    chained = EVODiffScheduler.from_config(scheduler.config)
    x = noise()
    torch.testing.assert_close(
        sample(chained, 8, x, data_std, exact_v), sample(EVODiffScheduler(**shared), 8, x, data_std, exact_v), rtol=0, atol=0
    )


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
def test_timestep_spacing_is_honoured_on_both_grids(spacing: str) -> None:
    dpm = DPMSolverMultistepScheduler(timestep_spacing=spacing, steps_offset=1)
    on_time = EVODiffScheduler.from_config(dpm.config, time_grid="time")
    on_logsnr = EVODiffScheduler.from_config(dpm.config)
    assert on_logsnr.config.timestep_spacing == on_time.config.timestep_spacing == spacing
    for steps in (2, 10, 25):
        for scheduler in (dpm, on_time, on_logsnr):
            scheduler.set_timesteps(steps)
        assert on_time.timesteps.tolist() == dpm.timesteps.tolist()  # the same calls as DPM-Solver++
        assert int(on_logsnr.timesteps[0]) == int(dpm.timesteps[0])  # logSNR grid from DPM-Solver++'s first label


def test_unknown_timestep_spacing_is_rejected() -> None:
    with pytest.raises(ValueError, match="timestep_spacing"):
        EVODiffScheduler(timestep_spacing="uniform")


@pytest.mark.parametrize("steps", [1, 2, 3, 999, 1000])
def test_every_step_count_up_to_the_training_steps(data_std: torch.Tensor, steps: int) -> None:
    evo = EVODiffScheduler()
    evo.set_timesteps(steps)
    ts = evo.timesteps
    assert len(ts) == steps and int(ts[0]) == 999 and bool((ts[1:] < ts[:-1]).all()) and int(ts[-1]) >= 0
    outputs = run_steps(evo, noise(), data_std)
    assert all(bool(torch.isfinite(out).all()) for out in outputs)
    if steps == 1:  # "Step 1" alone: DDIM from label 999 to label 0
        ddim = DDIMScheduler(clip_sample=False, set_alpha_to_one=False, timestep_spacing="trailing")
        torch.testing.assert_close(outputs[0], sample(ddim, 1, noise(), data_std), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("train_steps", [25, 1000])
def test_as_many_steps_as_training_labels_ends_at_the_clean_level(data_std: torch.Tensor, train_steps: int) -> None:
    """Every label is called; the last step lands on sigma = 0 by the "Last step" rule's limit."""
    evo = EVODiffScheduler(num_train_timesteps=train_steps)
    evo.set_timesteps(train_steps)
    assert evo.timesteps.tolist() == list(range(train_steps - 1, -1, -1))
    outputs = run_steps(evo, noise(), data_std)
    final, m_a, m_b = outputs[-2], outputs[-1], outputs[-3]  # x_N, D at label 0, D at label 1
    torch.testing.assert_close(final, m_a + 0.5 * (m_a - m_b), rtol=1e-12, atol=1e-12)


def test_final_denoise_from_one_step_to_every_label(data_std: torch.Tensor) -> None:
    evo = EVODiffScheduler(final_denoise=True)
    evo.set_timesteps(1)  # one call: D(x_T) at label 999
    assert evo.timesteps.tolist() == [999]
    x = noise()
    a = alpha_bar(evo, 999)
    out = evo.step(exact_eps(x, a, data_std), evo.timesteps[0], x)
    torch.testing.assert_close(out.prev_sample, (x - (1 - a).sqrt() * exact_eps(x, a, data_std)) / a.sqrt())
    evo.set_timesteps(1000)  # 999 solver steps over every label, then D at label 0
    assert evo.timesteps.tolist() == list(range(999, -1, -1))
    for steps in (0, 1001):
        with pytest.raises(ValueError, match="num_inference_steps"):
            evo.set_timesteps(steps)


def test_custom_timesteps(data_std: torch.Tensor) -> None:
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import retrieve_timesteps

    evo, custom = EVODiffScheduler(), EVODiffScheduler()
    evo.set_timesteps(10)
    custom.set_timesteps(timesteps=evo.timesteps.tolist())
    x = noise()
    assert torch.equal(sample(custom, 10, x, data_std), sample(evo, 10, x, data_std))
    labels = [999, 700, 400, 100, 0]  # ends at label 0: the last step lands on the clean level
    timesteps, count = retrieve_timesteps(custom, timesteps=labels)
    assert timesteps.tolist() == labels and count == 5
    assert all(bool(torch.isfinite(out).all()) for out in run_steps(custom, x, data_std))
    for bad in ([999, 999, 0], [500, 600], [1000, 0], [999, -1], [999.5, 0], []):
        with pytest.raises(ValueError, match="timesteps"):
            custom.set_timesteps(timesteps=bad)
    with pytest.raises(ValueError, match="exactly one"):
        custom.set_timesteps(10, timesteps=labels)


@pytest.mark.parametrize(
    "config",
    [{"beta_start": 0.5, "beta_end": 1.5}, {"beta_start": -0.01}, {"trained_betas": [0.0, 0.1, 0.2]}, {"beta_end": 1.0}],
)
def test_betas_outside_the_unit_interval_are_rejected(config: dict) -> None:
    with pytest.raises(ValueError, match=r"beta in \(0, 1\)"):
        EVODiffScheduler(**config)

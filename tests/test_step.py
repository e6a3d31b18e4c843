"""One guided step: DDIM's mean and sigma_t by its formula against diffusers' step, the loop against a hand-written
diffusers loop, and GFCG on its base predictor with its state carried explicitly."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler
from helpers import PROMPTS, FixedClassifier

from guidance.methods import GFCG, Settings, StepContext, build_method
from guidance.methods.gfcg import GFCGState
from guidance.recording import decode_estimate
from guidance.sampling import sample
from guidance.schedulers.adapters import ddim_eta, ddim_mean_and_sigma, make_scheduler, mean_and_sigma, previous_alpha


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("clip", ["none", "clip_sample", "thresholding"])
@pytest.mark.parametrize("set_alpha_to_one", [False, True])
def test_ddim_formula_is_diffusers_ddim_step_bit_for_bit(prediction_type, clip, set_alpha_to_one):
    """mean is DDIMScheduler.step with zero noise and mean + sigma_t z its step with noise z, at every eta."""
    scheduler = DDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type=prediction_type,
        clip_sample=clip == "clip_sample",
        thresholding=clip == "thresholding",
        set_alpha_to_one=set_alpha_to_one,
        steps_offset=1,
    )
    scheduler.set_timesteps(7)
    generator = torch.Generator().manual_seed(0)
    for t in scheduler.timesteps:
        x, out, z = 2 * torch.randn(3, 2, 4, 8, 8, generator=generator)
        for eta in (0.0, 0.37, 1.0):
            mean, sigma = ddim_mean_and_sigma(scheduler, out, t, x, eta)
            assert torch.equal(mean, scheduler.step(out, t, x, eta=eta, variance_noise=torch.zeros_like(x)).prev_sample)
            assert torch.equal(mean + sigma * z, scheduler.step(out, t, x, eta=eta, variance_noise=z).prev_sample)
            assert torch.equal(mean_and_sigma(scheduler, out, t, x, eta, generator)[0], mean)
    a_t, a_prev = float(scheduler.alphas_cumprod[int(t) + 1000 // 7]), float(scheduler.alphas_cumprod[int(t)])
    _, sigma = ddim_mean_and_sigma(scheduler, out, torch.tensor(int(t) + 1000 // 7), x, 0.5)
    assert sigma == pytest.approx(0.5 * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)) ** 0.5, rel=1e-6)


@pytest.mark.parametrize("eta, noise_rule", [(0.0, "ddim"), (0.5, "ddim"), (1.0, "ddim"), (0.5, "freedom")])
def test_plain_ddim_sampling_is_a_diffusers_ddim_loop_with_the_same_noise(tiny_sd, eta, noise_rule):
    """The loop's steps 2-3 for plain sampling, mean + sigma_t z, give diffusers' DDIM step with that z, bit for bit."""
    steps = 4
    result = sample(tiny_sd, build_method("plain"), PROMPTS, steps=steps, seed=5, eta=eta, noise_rule=noise_rule)
    scheduler = make_scheduler("ddim", tiny_sd.scheduler_config)
    scheduler.set_timesteps(steps)
    generator = torch.Generator().manual_seed(5)
    x = tiny_sd.initial_noise(len(PROMPTS), generator) * scheduler.init_noise_sigma
    embeddings = tiny_sd.embed(PROMPTS)
    for index, t in enumerate(scheduler.timesteps):
        with torch.no_grad():
            out = tiny_sd.predict(x, t, embeddings, None)
        z = torch.randn(x.shape, generator=generator)
        eta_t = ddim_eta(noise_rule, eta, tiny_sd.alpha(t), previous_alpha(scheduler, index))
        x = scheduler.step(out, t, x, eta=eta_t, variance_noise=z).prev_sample
    assert torch.equal(result.images, decode_estimate(tiny_sd, x))


def context(backbone, x: torch.Tensor, index: int, steps: int = 4) -> StepContext:
    t = torch.tensor(900 - 250 * index)
    conditions = ["cat", "dog"]
    alphas = tuple(backbone.alpha(900 - 250 * i) for i in range(steps))
    return StepContext(
        backbone,
        x,
        t,
        index,
        steps,
        backbone.alpha(t),
        backbone.alpha(t - 250),
        conditions,
        backbone.embed(conditions),
        backbone.embed([None, None]),
        None,
        None,
        alphas,
    )


@pytest.mark.parametrize("base", ["none", "cfg"])
def test_gfcg_where_it_does_not_act_is_its_base_predictor_bit_for_bit(tiny_sd, base):
    """GFCG's base is the CFG predictor itself (or the conditional branch), so w_max = 0 gives its images exactly."""
    name = "cfg+gfcg" if base == "cfg" else "gfcg"
    settings = Settings(cfg_scale=2.0, gfcg_max_scale=0.0)
    off = sample(tiny_sd, build_method(name, settings, FixedClassifier([0.4, 0.3, 0.2, 0.1])), ["cat", "dog"], steps=3)
    alone = sample(tiny_sd, build_method("cfg" if base == "cfg" else "plain", settings), ["cat", "dog"], steps=3)
    assert torch.equal(off.images, alone.images)


def test_gfcg_state_is_new_at_each_reset_and_carries_the_reading_between_steps(tiny_sd):
    gfcg = GFCG(FixedClassifier([0.4, 0.3, 0.2, 0.1]), base="cfg", base_scale=2.0, one_call=True, interval=2)
    x = torch.randn(2, *tiny_sd.sample_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        gfcg(context(tiny_sd, x, 0), x)
    state = gfcg.state
    assert state.pending is not None and state.read_at == 1  # one call: step 0 reads x0_hat for step 1
    assert torch.allclose(state.pending.scale.flatten(), torch.tensor([2.0 * (1 - 0.4), 2.0 * (1 - 0.3)]))  # w_max (1 - p_c)
    assert state.pending.acting().tolist() == [True, True]
    gfcg.reset()
    assert gfcg.state == GFCGState() and gfcg.state is not state


def test_gfcg_in_one_call_keeps_its_batched_call_in_the_gradients_graph(tiny_sd):
    """Under FreeDoM the predictor runs on x_t with requires_grad: the one batched call (D_c, D_u, D(c_ref)) must be
    evaluated at that x_t, so that the gradient runs through the denoiser as in GFCG's own order."""
    x = torch.randn(2, *tiny_sd.sample_shape, generator=torch.Generator().manual_seed(1))
    found = {}
    for one_call in (False, True):
        gfcg = GFCG(FixedClassifier([0.4, 0.3, 0.2, 0.1]), base="cfg", base_scale=2.0, one_call=one_call)
        with torch.no_grad():
            gfcg(context(tiny_sd, x, 0), x)  # one call: the reading for step 1
        leaf = x.clone().requires_grad_(True)
        eps = gfcg(context(tiny_sd, x, 1), leaf).eps
        found[one_call] = eps.detach(), torch.autograd.grad(eps.square().sum(), leaf)[0]
    torch.testing.assert_close(found[True][0], found[False][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(found[True][1], found[False][1], rtol=1e-4, atol=1e-4)

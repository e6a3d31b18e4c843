"""The gradient methods (FreeDoM, FIGD, DPS): their gradients, step rules, weight profiles, and terms with windows."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import torch
from helpers import PROMPTS, FixedClassifier, MeanColour, reachable_target, run, step_context

from guidance.errors import MethodConfigError
from guidance.methods import Settings, build_method
from guidance.sampling import sample
from guidance.worlds.sd15 import load_sd15


def count_unet_backwards(backbone) -> list[int]:
    calls = [0]
    handle = backbone.unet.conv_in.register_full_backward_hook(lambda *a: calls.__setitem__(0, calls[0] + 1))
    return calls, handle


def test_figd_never_backpropagates_through_the_unet_but_freedom_does(tiny_sd):
    calls, handle = count_unet_backwards(tiny_sd)
    try:
        run(tiny_sd, "figd", MeanColour(), scale=0.5)
        assert calls[0] == 0
        run(tiny_sd, "freedom", MeanColour(), scale=0.5)
        assert calls[0] == 6
    finally:
        handle.remove()


def test_freedom_gradient_matches_finite_differences(tiny_sd_folders):
    sd, _ = tiny_sd_folders
    backbone = load_sd15(str(sd), device="cpu", dtype=torch.float64, image_size=16)
    method = build_method("freedom", Settings(cfg_scale=2.0))
    backbone.predict = _float64_predict(backbone)
    x = torch.randn((2, *backbone.sample_shape), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    energy = MeanColour().double()
    ctx = step_context(backbone, x, energy)
    _, (gradient,), _ = method.energy_gradients(ctx, [energy])
    direction = torch.randn_like(x)
    h = 1e-2  # decode() returns float32 pixels, so smaller steps drown in rounding

    def total(z):
        with torch.no_grad():
            eps = method.predictor(step_context(backbone, z, energy), z).eps
            a = ctx.a_t
            return energy(backbone.decode((z - (1 - a) ** 0.5 * eps) / a**0.5)).sum()

    numeric = (total(x + h * direction) - total(x - h * direction)) / (2 * h)
    analytic = (gradient * direction).sum()
    assert abs(analytic - numeric) <= 2e-3 * abs(numeric), (analytic.item(), numeric.item())


def _float64_predict(backbone):
    """The backbone's predict, kept in float64 (the default casts outputs to float32)."""

    def predict(x, t, embeddings, control=None, guide=False):
        backbone.evaluations += x.shape[0]
        return backbone._forward(x, t.expand(x.shape[0]), embeddings.to(x.dtype), control, guide)

    return predict


# FIGD's default (unit) weight under the alpha rule steps scale sqrt(a_t) grad_{x0} E: it needs a larger scale here
@pytest.mark.parametrize(
    "name, scale", [("freedom", 30.0), ("figd", 60.0), ("dps", 30.0), ("freedom+dsg", 30.0), ("figd+dsg", 30.0)]
)
def test_guided_run_lowers_the_energy(tiny_sd, name, scale):
    energy = reachable_target(tiny_sd)
    plain = run(tiny_sd, "plain", energy, eta=1.0, steps=10)
    guided = run(tiny_sd, name, energy, eta=1.0, steps=10, scale=scale, dsg_rate=0.3)
    assert sum(guided.final_energy) < 0.9 * sum(plain.final_energy)


@pytest.mark.parametrize("name", ["figd", "figd+dsg"])
def test_figd_weight_profiles_give_different_trajectories_under_the_normalised_rule_and_dsg(tiny_sd, name):
    """w_t multiplies rho_t after the normalisation, and DSG's rate, so it is not cancelled (docs/methods.md, FIGD step 3)."""
    images = [
        run(tiny_sd, name, MeanColour(), step_rule="normalized", scale=0.5, eta=1.0, dsg_rate=0.3, fisher_weight=w).images
        for w in ("unit", "flat-prior", "gaussian-data")
    ]
    for a, b in itertools.combinations(images, 2):
        assert (a - b).abs().max() > 1e-3


def test_figd_weight_profiles_follow_a_t_with_mean_one_over_the_run(tiny_sd):
    seen = {}
    for profile in ("flat-prior", "gaussian-data"):
        method, pairs = build_method("figd", Settings(fisher_weight=profile)), []
        weight = method.weight
        method.weight = lambda ctx, weight=weight, pairs=pairs: pairs.append((ctx.a_t, weight(ctx))) or pairs[-1][1]
        sample(tiny_sd, method, PROMPTS, steps=6, seed=0, energy=MeanColour())
        seen[profile] = torch.tensor(pairs, dtype=torch.float64)
    for profile, power in (("flat-prior", -0.5), ("gaussian-data", 0.5)):
        a, w = seen[profile].T
        assert len(w) == 6 and w.mean().item() == pytest.approx(1.0)
        torch.testing.assert_close(w / a**power, torch.full_like(w, (w / a**power)[0].item()))
    assert seen["flat-prior"][0, 1] > 1 > seen["flat-prior"][-1, 1]  # strongest at the noisiest step
    with pytest.raises(MethodConfigError, match="flat-prior"):
        build_method("figd", Settings(fisher_weight="gaussian"))


def test_freedom_noise_rule_is_the_face_gd_step():
    """x_{t-1} = sqrt(a_prev) x0 + 0.5 sqrt(1 - a_prev) z + sqrt(0.75) sqrt(1 - a_prev) eps (docs/methods.md, Sampling loop step 2)."""
    from diffusers import DDIMScheduler

    from guidance.schedulers.adapters import ddim_eta, mean_and_sigma, previous_alpha

    scheduler = DDIMScheduler(beta_schedule="linear", beta_start=1e-4, beta_end=0.02, clip_sample=False, set_alpha_to_one=True)
    scheduler.set_timesteps(100)  # Face-GD's pixel CelebA-HQ schedule and step count
    x, eps = torch.randn(2, 1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    for index in (0, 50, 98, 99):
        t = scheduler.timesteps[index]
        a_t, a_prev = float(scheduler.alphas_cumprod[t]), previous_alpha(scheduler, index)
        mean, sigma = mean_and_sigma(scheduler, eps, t, x, ddim_eta("freedom", 0.5, a_t, a_prev), torch.Generator())
        x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t**0.5
        official = a_prev**0.5 * x0 + 0.75**0.5 * (1 - a_prev) ** 0.5 * eps
        torch.testing.assert_close(mean, official, rtol=1e-4, atol=1e-4)
        assert sigma == pytest.approx(0.5 * (1 - a_prev) ** 0.5, rel=1e-4, abs=1e-6)
    _, ddim_sigma = mean_and_sigma(scheduler, eps, scheduler.timesteps[50], x, 0.5, torch.Generator())
    assert ddim_sigma < 0.5 * 0.5 * (1 - previous_alpha(scheduler, 50)) ** 0.5  # DDIM's eta = 0.5: over 2x smaller


def test_freedom_with_cfg_and_gfcg_sizes_its_step_with_the_cfg_weight(tiny_sd):
    """rho = k RMS(w_cfg (eps_c - eps_u)) / RMS(g) (docs/methods.md, "Step size"), with GFCG on top of CFG too."""
    from guidance.vp_arithmetic import rms

    x = torch.randn(2, *tiny_sd.sample_shape, generator=torch.Generator().manual_seed(1))

    def step_size(name, classifier=None):
        method = build_method(name, Settings(cfg_scale=3.0, step_rule="normalized"), classifier)
        ctx = step_context(tiny_sd, x, MeanColour())
        ctx.conditions = ["cat", "cat"]
        pred = method.predict(ctx)
        _, (gradient,), _ = method.energy_gradients(ctx, [ctx.energy])
        rho = method.step_size(ctx, pred, gradient, 1.0)
        torch.testing.assert_close(pred.guidance, rho.view(-1, 1, 1, 1) * gradient)  # the step predict hands the update
        return rho, pred, gradient

    cfg, _, _ = step_size("freedom+cfg")
    certain, _, _ = step_size("freedom+cfg+gfcg", FixedClassifier([1.0, 0.0, 0.0, 0.0]))  # p_c = 1: w_t = 0
    torch.testing.assert_close(certain, cfg)
    confused, pred, gradient = step_size("freedom+cfg+gfcg", FixedClassifier([0.4, 0.3, 0.2, 0.1]))
    assert pred.guidance_scale == 3.0
    torch.testing.assert_close(confused, rms(3.0 * pred.guidance_delta) / rms(gradient))


def test_freedom_pixel_step_rule_is_face_gds_text_guidance_rule(tiny_sd):
    """rho = k RMS(eps) sqrt((1 - a_t) / a_t) c1 / RMS(g), c1 = sqrt(a_prev)(1 - a_t / a_prev) / (1 - a_t) (FreeDoM step 5)."""
    from guidance.vp_arithmetic import rms

    method = build_method("freedom", Settings(scale=0.02, step_rule="freedom-pixel"))
    ctx = step_context(tiny_sd, torch.randn(2, *tiny_sd.sample_shape, generator=torch.Generator().manual_seed(1)), MeanColour())
    pred = method.predict(ctx)
    _, (g,), _ = method.energy_gradients(ctx, [ctx.energy])
    a, a_prev = ctx.a_t, ctx.a_prev
    c1 = a_prev**0.5 * (1 - a / a_prev) / (1 - a)
    rho = 0.02 * rms(pred.eps) * ((1 - a) / a) ** 0.5 * c1 / rms(g)
    torch.testing.assert_close(pred.guidance, rho.view(-1, 1, 1, 1) * g)
    energy = reachable_target(tiny_sd)
    guided = run(tiny_sd, "freedom", energy, step_rule="freedom-pixel", scale=0.5, eta=1.0)
    assert sum(guided.final_energy) < sum(run(tiny_sd, "plain", energy, eta=1.0).final_energy)


@pytest.mark.parametrize("name", ["freedom", "figd"])
def test_each_term_of_a_sum_takes_its_own_step_in_its_own_window(tiny_sd, name):
    """x_{t-1} = mean + sigma z - sum_i rho_i g_i over the terms whose window holds the step (FreeDoM step 7)."""
    from guidance.methods import Term, Terms, Window
    from guidance.vp_arithmetic import rms

    colour, target = MeanColour(), reachable_target(tiny_sd)
    method = build_method(name, Settings(scale=0.2, step_rule="normalized"))
    ctx = step_context(tiny_sd, torch.randn(2, *tiny_sd.sample_shape, generator=torch.Generator().manual_seed(2)), None)
    ctx.energy = Terms([Term(colour), Term(target, scale=0.05)])  # progress 1/3: both guide
    pred = method.predict(ctx)
    _, (g1, g2), _ = method.energy_gradients(ctx, [colour, target])

    def step(k, g):
        return (k * rms(pred.eps) / rms(g)).view(-1, 1, 1, 1) * g

    torch.testing.assert_close(pred.guidance, step(0.2, g1) + step(0.05, g2))
    torch.testing.assert_close(pred.energy, colour(tiny_sd.decode(pred.x0)) + target(tiny_sd.decode(pred.x0)))
    ctx.energy = Terms([Term(colour), Term(target, window=Window(0.5, 1.0))])  # the second waits for progress 0.5
    pred = method.predict(ctx)
    torch.testing.assert_close(pred.guidance, step(0.2, g1))
    assert pred.energy is None  # the loop records the whole sum instead


def test_dps_under_the_normalised_rule_takes_freedoms_step(tiny_sd):
    """Why the energy tabs give DPS FreeDoM's guiding value (its scale): with the tabs' normalised rule the two steps are one."""
    settings = Settings(scale=0.3, step_rule="normalized", cfg_scale=2.0)
    freedom, dps = (
        sample(tiny_sd, build_method(name, settings), PROMPTS, steps=3, energy=reachable_target(tiny_sd))
        for name in ("freedom", "dps")
    )
    assert torch.equal(freedom.images, dps.images)
    assert not torch.equal(
        freedom.images,
        sample(
            tiny_sd,
            build_method("dps", replace(settings, step_rule="constant")),
            PROMPTS,
            steps=3,
            energy=reachable_target(tiny_sd),
        ).images,
    )

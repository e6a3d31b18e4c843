"""Properties of the sampling loop and the methods that can fail, on tiny SD components."""
from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest
import torch

from guidance.energy import Energy
from guidance.errors import MethodConfigError, SamplingNaNError, WeightsUnavailableError
from guidance.methods import DSG, GFCG, FreeDoM, Settings, StepContext, build_method
from guidance.sampling import SamplingResult, sample
from guidance.worlds.sd15 import load_sd15

PROMPTS = ["a red cat", "a blue dog"]


class MeanColour(Energy):
    """Distance of each image's mean colour to a target colour: simple, smooth, differentiable."""

    def __init__(self, target=(0.8, -0.6, 0.2)):
        super().__init__()
        self.register_buffer("target", torch.tensor(target).view(1, 3))

    def forward(self, images):
        return (images.mean((2, 3)) - self.target).norm(dim=1)


class TargetImage(Energy):
    """L2 distance to a fixed image that the decoder can produce (so guidance can reach it)."""

    def __init__(self, target):
        super().__init__()
        self.register_buffer("target", target)

    def forward(self, images):
        return (images - self.target).flatten(1).norm(dim=1)


def reachable_target(backbone) -> TargetImage:
    with torch.no_grad():
        latent = torch.randn((1, *backbone.sample_shape), generator=torch.Generator().manual_seed(9))
        return TargetImage(backbone.decode(latent))


class NaNEnergy(Energy):
    def forward(self, images):
        return images.mean((1, 2, 3)) * float("nan")


def run(backbone, name, energy=None, **kw):
    settings = Settings(**{k: kw.pop(k) for k in list(kw) if hasattr(Settings, k)})
    return sample(backbone, build_method(name, settings), PROMPTS, energy=energy, **{"steps": 6, "seed": 3, **kw})


def count_unet_backwards(backbone) -> list[int]:
    calls = [0]
    handle = backbone.unet.conv_in.register_full_backward_hook(lambda *a: calls.__setitem__(0, calls[0] + 1))
    return calls, handle


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
    ctx = _context(backbone, x, energy)
    _, (gradient,), _ = method.energy_gradients(ctx, [energy])
    direction = torch.randn_like(x)
    h = 1e-2  # decode() returns float32 pixels, so smaller steps drown in rounding

    def total(z):
        with torch.no_grad():
            eps = method.predictor(_context(backbone, z, energy), z).eps
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


def _context(backbone, x, energy, index=2, steps=6):
    t = torch.tensor(500)
    embeddings = backbone.embed(PROMPTS)
    null = backbone.embed([None, None])
    alphas = tuple(backbone.alpha(t + 100 * (index - i)) for i in range(steps))  # the run's grid around t
    return StepContext(backbone, x, t, index, steps, backbone.alpha(t), backbone.alpha(t - 100), PROMPTS, embeddings, null, None, energy, alphas)


# FIGD's default (unit) weight under the alpha rule steps scale sqrt(a_t) grad_{x0} E: it needs a larger scale here
@pytest.mark.parametrize("name, scale", [("freedom", 30.0), ("figd", 60.0), ("dps", 30.0), ("freedom+dsg", 30.0), ("figd+dsg", 30.0)])
def test_guided_run_lowers_the_energy(tiny_sd, name, scale):
    energy = reachable_target(tiny_sd)
    plain = run(tiny_sd, "plain", energy, eta=1.0, steps=10)
    guided = run(tiny_sd, name, energy, eta=1.0, steps=10, scale=scale, dsg_rate=0.3)
    assert sum(guided.final_energy) < 0.9 * sum(plain.final_energy)


def dsg_steps(tiny_sd, **options) -> tuple[list[tuple], SamplingResult]:
    """figd+dsg (rate 0.2) sampled with `options`; per step: (sigma_t, a_prev, RMS radius of x_prev - mean per sample)."""
    seen = []
    method = build_method("figd+dsg", Settings(dsg_rate=0.2))
    original = method.update

    def spy(ctx, pred, mean, sigma, noise):
        x_prev = original(ctx, pred, mean, sigma, noise)
        seen.append((sigma, ctx.a_prev, ((x_prev - mean).flatten(1).norm(dim=1) / math.sqrt(mean[0].numel())).tolist()))
        return x_prev

    method.update = spy
    return seen, sample(tiny_sd, method, PROMPTS, seed=0, energy=MeanColour(), **options)


def test_every_dsg_step_lies_on_the_sphere_around_the_unguided_mean(tiny_sd):
    seen, _ = dsg_steps(tiny_sd, steps=8, eta=1.0)
    lengths = [[r / sigma for r in radii] for sigma, _, radii in seen if sigma]
    assert len(lengths) == 8  # SD's config keeps a small sigma at the last step (set_alpha_to_one=False)
    assert torch.allclose(torch.tensor(lengths), torch.ones(8, 2), atol=1e-4)


def test_dsg_rate_one_steps_exactly_down_the_gradient():
    mean, noise, gradient = torch.zeros(1, 4, 8, 8), torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    x = DSG(rate=1.0).step(mean, 0.5, noise, gradient)
    assert torch.allclose(x, -math.sqrt(256) * 0.5 * gradient / gradient.norm(), atol=1e-5)


def test_dsg_interval_has_the_official_phase():
    """The official loop counts idx down from steps - 1 and guides when idx % interval == 0."""
    dsg = DSG(interval=5)
    assert [i for i in range(100) if dsg.applies(i, 100)] == list(range(4, 100, 5))
    assert [i for i in range(7) if DSG(interval=3).applies(i, 7)] == [0, 3, 6]
    assert all(DSG(interval=1).applies(i, 10) for i in range(10))


@pytest.mark.parametrize("steps, guided", [(5, [0, 2, 4]), (6, [1, 3, 5])])
def test_dsg_interval_decides_which_steps_take_the_gradient(tiny_sd, steps, guided):
    method = build_method("figd+dsg", Settings(dsg_interval=2))
    seen, original = [], method.energy_gradients
    method.energy_gradients = lambda ctx, energies: seen.append(ctx.index) or original(ctx, energies)
    sample(tiny_sd, method, PROMPTS, steps=steps, eta=1.0, seed=0, energy=MeanColour())
    assert seen == guided


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


def test_dsg_runs_on_the_sphere_of_the_freedom_noise_rule(tiny_sd):
    seen, result = dsg_steps(tiny_sd, steps=6, eta=0.5, noise_rule="freedom")
    assert len(seen) == 6 and result.options["noise_rule"] == "freedom"
    for sigma, a_prev, radii in seen:
        assert sigma == pytest.approx(0.5 * (1 - a_prev) ** 0.5, rel=1e-4) and radii == pytest.approx([sigma, sigma], rel=1e-4)
    for bad in ({"scheduler": "ddpm"}, {"eta": 1.5}, {"noise_rule": "ancestral"}):
        with pytest.raises(MethodConfigError):
            sample(tiny_sd, build_method("freedom"), PROMPTS, steps=2, energy=MeanColour(), **{"eta": 0.5, "noise_rule": "freedom", **bad})


def test_dsg_needs_exposed_noise(tiny_sd):
    with pytest.raises(MethodConfigError):
        run(tiny_sd, "figd+dsg", MeanColour(), scheduler="ddpm")


class FixedClassifier:
    """Returns fixed probabilities, whatever the image."""

    class_names = ("cat", "dog", "fox", "owl")

    def __init__(self, probs):
        self.probs = torch.tensor(probs)

    def __call__(self, images):
        return self.probs.expand(images.shape[0], -1)


@pytest.mark.parametrize("probs, reference", [([0.5, 0.1, 0.3, 0.1], "fox"), ([0.2, 0.1, 0.05, 0.65], "owl")])
def test_gfcg_picks_the_most_probable_other_class(tiny_sd, probs, reference):
    gfcg = GFCG(FixedClassifier(probs), max_scale=2.0)
    ctx = _context(tiny_sd, torch.randn(2, *tiny_sd.sample_shape), None)
    ctx.conditions = ["cat", "cat"]
    names, scale = gfcg.reference(ctx, torch.zeros(2, *tiny_sd.sample_shape))
    assert names == [reference, reference]
    assert torch.allclose(scale, torch.full((2,), 2.0 * (1 - probs[0])))


def test_gfcg_scale_rises_with_confusion(tiny_sd):
    ctx = _context(tiny_sd, torch.randn(1, *tiny_sd.sample_shape), None)
    ctx.conditions = ["cat"]
    scales = [GFCG(FixedClassifier([p, 1 - p, 0, 0]), rule).reference(ctx, torch.zeros(1, *tiny_sd.sample_shape))[1].item()
              for p in (0.9, 0.6, 0.3) for rule in [3.0]]  # fmt: skip
    assert scales[0] < scales[1] < scales[2]


def test_freedom_with_cfg_and_gfcg_sizes_its_step_with_the_cfg_weight(tiny_sd):
    """rho = k RMS(w_cfg (eps_c - eps_u)) / RMS(g) (docs/methods.md, "Step size"), with GFCG on top of CFG too."""
    from guidance.vp_arithmetic import rms

    x = torch.randn(2, *tiny_sd.sample_shape, generator=torch.Generator().manual_seed(1))

    def step_size(name, classifier=None):
        method = build_method(name, Settings(cfg_scale=3.0, step_rule="normalized"), classifier)
        ctx = _context(tiny_sd, x, MeanColour())
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
    ctx = _context(tiny_sd, torch.randn(2, *tiny_sd.sample_shape, generator=torch.Generator().manual_seed(1)), MeanColour())
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
    ctx = _context(tiny_sd, torch.randn(2, *tiny_sd.sample_shape, generator=torch.Generator().manual_seed(2)), None)
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


def test_a_gradient_method_with_gfcg_runs_on_cfg_when_cfg_scale_is_set_and_reports_what_runs(tiny_sd):
    """"freedom+gfcg" at cfg_scale 3 is GFCG on CFG 3 (D_c and D_u each step), as "freedom" at cfg_scale 3 is CFG 3;
    GFCG without a base reports no base weight, whatever cfg_scale says."""
    certain = FixedClassifier([1.0, 0.0, 0.0, 0.0])  # p_c = 1: w_t = 0, the base alone runs
    method = build_method("freedom+gfcg", Settings(cfg_scale=3.0), certain)
    result = sample(tiny_sd, method, ["cat"], steps=2, energy=MeanColour())
    assert result.nfe == 2 * 2
    options = result.options["predictor"]
    assert (options["name"], options["base"], options["base_scale"]) == ("gfcg", "cfg", 3.0)
    for name, settings in (("freedom+gfcg", Settings()), ("gfcg", Settings(cfg_scale=2.5))):
        options = build_method(name, settings, certain).describe()["predictor"]
        assert (options["base"], options["base_scale"]) == ("none", 1.0)


def test_gfcg_runs_inside_the_loop_with_extra_evaluations(tiny_sd):
    classifier = FixedClassifier([0.4, 0.3, 0.2, 0.1])
    result = sample(tiny_sd, build_method("cfg+gfcg", Settings(cfg_scale=2.0), classifier), ["cat", "dog"], steps=4)
    assert result.nfe == 4 * 3  # conditional, unconditional, reference
    with pytest.raises(MethodConfigError):
        build_method("gfcg")


class CountingClassifier(FixedClassifier):
    """FixedClassifier that counts its calls."""

    def __init__(self, probs):
        super().__init__(probs)
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        return super().__call__(images)


def unet_batches(backbone) -> tuple[list[int], object]:
    batches = []
    handle = backbone.unet.register_forward_hook(lambda module, args, output: batches.append(args[0].shape[0]))
    return batches, handle


def test_gfcg_outside_its_window_costs_what_cfg_costs(tiny_sd):
    """Outside the window no classifier and no reference branch run: D_c and D_u are CFG's one batched call."""
    classifier = CountingClassifier([0.4, 0.3, 0.2, 0.1])
    method = build_method("cfg+gfcg", Settings(cfg_scale=2.0, gfcg_window=(0.5, 1.0)), classifier)
    batches, handle = unet_batches(tiny_sd)
    try:
        result = sample(tiny_sd, method, ["cat", "dog"], steps=4)
        cfg = sample(tiny_sd, build_method("cfg", Settings(cfg_scale=2.0)), ["cat", "dog"], steps=4)
    finally:
        handle.remove()
    assert [s.nfe for s in result.steps] == [2, 2, 3, 3] and [s.nfe for s in cfg.steps] == [2, 2, 2, 2]
    assert classifier.calls == 2
    assert batches[:6] == [4, 4, 4, 2, 4, 2]  # (D_c, D_u) per step, then D(c_ref) where GFCG acts


def test_gfcg_with_every_weight_zero_is_its_base_at_its_cost(tiny_sd):
    certain = CountingClassifier([1.0, 0.0, 0.0, 0.0])  # p_c = 1 for "cat": w_t = 0, no reference branch
    result = sample(tiny_sd, build_method("cfg+gfcg", Settings(cfg_scale=2.0), certain), ["cat", "cat"], steps=3)
    cfg = sample(tiny_sd, build_method("cfg", Settings(cfg_scale=2.0)), ["cat", "cat"], steps=3)
    assert [s.nfe for s in result.steps] == [2, 2, 2] and certain.calls == 3
    torch.testing.assert_close(result.images, cfg.images, rtol=1e-5, atol=1e-5)
    unused = CountingClassifier([0.4, 0.3, 0.2, 0.1])
    off = sample(tiny_sd, build_method("cfg+gfcg", Settings(cfg_scale=2.0, gfcg_max_scale=0.0), unused), ["cat"], steps=3)
    assert off.nfe == 6 and unused.calls == 0  # w_max = 0: no decode, no classifier


def test_gfcg_threshold_skips_the_reference_branch_for_samples_read_as_their_class(tiny_sd):
    """w_t = w_max (1 - 0.95) = 0.1 is below 0.1 w_max = 0.2: counted as 0, so CFG's cost and CFG's picture."""
    confident = CountingClassifier([0.95, 0.05, 0.0, 0.0])
    kept = sample(tiny_sd, build_method("cfg+gfcg", Settings(cfg_scale=2.0), confident), ["cat"], steps=3)
    skipped = sample(tiny_sd, build_method("cfg+gfcg", Settings(cfg_scale=2.0, gfcg_threshold=0.1), confident), ["cat"], steps=3)
    cfg = sample(tiny_sd, build_method("cfg", Settings(cfg_scale=2.0)), ["cat"], steps=3)
    assert [s.nfe for s in kept.steps] == [3, 3, 3] and [s.nfe for s in skipped.steps] == [2, 2, 2]
    torch.testing.assert_close(skipped.images, cfg.images, rtol=1e-5, atol=1e-5)


def test_gfcg_runs_the_reference_branch_only_for_the_samples_it_acts_on(tiny_sd):
    """cat: w_t = 0.1 < 0.1 w_max, not acting; dog: w_t = 1.9. D(c_ref) is one call on the dog alone (NFE 2.5 per
    sample), the cat gets CFG's picture and the dog the picture it gets when both act."""
    probs = CountingClassifier([0.95, 0.05, 0.0, 0.0])
    batches, handle = unet_batches(tiny_sd)
    try:
        subset = sample(tiny_sd, build_method("cfg+gfcg", Settings(cfg_scale=2.0, gfcg_threshold=0.1), probs), ["cat", "dog"], steps=3)
    finally:
        handle.remove()
    both = sample(tiny_sd, build_method("cfg+gfcg", Settings(cfg_scale=2.0), probs), ["cat", "dog"], steps=3)
    cfg = sample(tiny_sd, build_method("cfg", Settings(cfg_scale=2.0)), ["cat", "dog"], steps=3)
    assert batches == [4, 1] * 3 and [s.nfe for s in subset.steps] == [2.5] * 3 and [s.nfe for s in both.steps] == [3] * 3
    torch.testing.assert_close(subset.images[0], cfg.images[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(subset.images[1], both.images[1], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(subset.images[1], cfg.images[1], atol=1e-3)


def test_gfcg_in_one_call_batches_every_branch_with_the_reference_of_the_step_before(tiny_sd):
    """The classifier reads the same at every step, so a reference taken one evaluation late changes nothing once
    the window starts after step 0: GFCG's picture and NFE, with D_c, D_u (2 + 2 rows) and D(c_ref) for the acting
    dog (1 row) in one call of 5 instead of calls of 4 and 1."""
    probs = CountingClassifier([0.95, 0.05, 0.0, 0.0])
    settings = Settings(cfg_scale=2.0, gfcg_threshold=0.1, gfcg_window=(0.25, 1.0))
    batches, handle = unet_batches(tiny_sd)
    try:
        one_call = sample(tiny_sd, build_method("cfg+gfcg", replace(settings, gfcg_one_call=True), probs), ["cat", "dog"], steps=4)
        calls_one = list(batches)
        batches.clear()
        separate = sample(tiny_sd, build_method("cfg+gfcg", settings, probs), ["cat", "dog"], steps=4)
    finally:
        handle.remove()
    assert calls_one == [4, 5, 5, 5] and batches == [4, 4, 1, 4, 1, 4, 1]
    assert [s.nfe for s in one_call.steps] == [s.nfe for s in separate.steps] == [2, 2.5, 2.5, 2.5]
    assert one_call.options["predictor"]["one_call"] is True and "one_call" not in separate.options["predictor"]
    torch.testing.assert_close(one_call.images, separate.images, rtol=1e-5, atol=1e-5)
    maps = tiny_sd.prepare_control(torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)))  # one per sample
    mapped = [sample(tiny_sd, build_method("cfg+gfcg", replace(settings, gfcg_one_call=one), probs), ["cat", "dog"], steps=4, control=maps)
              for one in (True, False)]  # fmt: skip
    torch.testing.assert_close(mapped[0].images, mapped[1].images, rtol=1e-5, atol=1e-5)


def test_gfcg_in_one_call_on_autoguidance_matches_gfcg_and_refuses_the_fused_variant(tiny_sd, monkeypatch):
    monkeypatch.setattr(tiny_sd, "guide_unet", tiny_sd.unet)  # any second network serves as the guide here
    monkeypatch.setattr(tiny_sd, "has_guide_model", True)
    settings = Settings(cfg_scale=2.0, gfcg_window=(0.25, 1.0))
    runs = [sample(tiny_sd, build_method("atg+gfcg", replace(settings, gfcg_one_call=one), CountingClassifier([0.4, 0.3, 0.2, 0.1])),
                   ["cat", "dog"], steps=4) for one in (True, False)]  # fmt: skip
    torch.testing.assert_close(runs[0].images, runs[1].images, rtol=1e-5, atol=1e-5)
    with pytest.raises(MethodConfigError, match="fused"):
        build_method("atg+gfcg", replace(settings, gfcg_one_call=True, gfcg_fused=True), CountingClassifier([1.0, 0, 0, 0]))


class ReadingsClassifier(FixedClassifier):
    """Returns the next row of `readings` at each call: a verdict that changes as sampling goes on."""

    def __init__(self, readings):
        super().__init__(readings[0])
        self.readings, self.calls = [torch.tensor(r) for r in readings], 0

    def __call__(self, images):
        self.calls += 1
        return self.readings[self.calls - 1].expand(images.shape[0], -1)


READINGS = ([0.4, 0.3, 0.2, 0.1], [0.3, 0.1, 0.1, 0.5], [0.8, 0.1, 0.1, 0.0], [0.2, 0.6, 0.1, 0.1])


@pytest.mark.parametrize("one_call", [False, True])
def test_gfcg_interval_reads_the_classifier_every_n_steps_of_its_window_and_holds_its_verdict_between(tiny_sd, one_call):
    """Interval 2 over a window that starts at step 2 of 8: the classifier reads x0_hat for steps 2, 4 and 6, and
    steps 3, 5 and 7 reuse c_ref and w_t: the picture of interval 1 with each reading repeated for two steps."""
    settings = Settings(cfg_scale=2.0, gfcg_window=(0.25, 1.0), gfcg_one_call=one_call)
    every_other = ReadingsClassifier(READINGS[:3])
    method = build_method("cfg+gfcg", replace(settings, gfcg_interval=2), every_other)
    held = sample(tiny_sd, method, ["cat", "dog"], steps=8)
    repeated = ReadingsClassifier([r for r in READINGS[:3] for _ in range(2)])
    each_step = sample(tiny_sd, build_method("cfg+gfcg", settings, repeated), ["cat", "dog"], steps=8)
    assert every_other.calls == 3 and repeated.calls == 6 and held.options["predictor"]["interval"] == 2
    torch.testing.assert_close(held.images, each_step.images, rtol=1e-5, atol=1e-5)
    fresh = ReadingsClassifier(READINGS[:3])
    changing = sample(tiny_sd, build_method("cfg+gfcg", settings, ReadingsClassifier(READINGS[:3] + READINGS[:3])), ["cat", "dog"], steps=8)
    assert (held.images - changing.images).abs().max() > 1e-4  # readings at every step move the picture (by 7e-4 here)
    method.predictor.classifier = fresh  # a second run on the same method reads afresh from its window's first step
    again = sample(tiny_sd, method, ["cat"], steps=8)
    assert fresh.calls == 3 and again.images.shape[0] == 1


@pytest.mark.parametrize("one_call, reads", [(False, 3), (True, 2)])
def test_gfcg_interval_counts_from_the_first_step_that_can_use_a_reading(tiny_sd, one_call, reads):
    """Window (0, 1), 7 steps, interval 3: GFCG's own order reads for steps 0, 3 and 6; one call has no reference
    branch at step 0, so it reads for steps 1 and 4 (and the reading for step 7 would fall past the end)."""
    classifier = CountingClassifier([0.4, 0.3, 0.2, 0.1])
    sample(tiny_sd, build_method("cfg+gfcg", Settings(cfg_scale=2.0, gfcg_one_call=one_call, gfcg_interval=3), classifier), ["cat"], steps=7)
    assert classifier.calls == reads


def test_gfcg_interval_must_be_a_whole_number_of_steps():
    for bad in (0, 2.5, True, float("nan")):
        with pytest.raises(MethodConfigError, match="gfcg_interval"):
            Settings(gfcg_interval=bad)
    assert type(Settings(gfcg_interval=3.0).gfcg_interval) is int  # as a slider sends it: 3.0 is the count 3
    with pytest.raises(MethodConfigError, match="interval"):
        GFCG(FixedClassifier([1.0, 0, 0, 0]), interval=0)


@pytest.mark.parametrize("fused", [False, True])
def test_gfcg_on_autoguidance_is_autoguidance_where_it_does_not_act(tiny_sd, monkeypatch, fused):
    monkeypatch.setattr(tiny_sd, "guide_unet", tiny_sd.unet)  # any second network serves as the guide here
    monkeypatch.setattr(tiny_sd, "has_guide_model", True)
    atg = sample(tiny_sd, build_method("atg", Settings(cfg_scale=2.0)), ["cat", "dog"], steps=4)
    classifier = CountingClassifier([0.4, 0.3, 0.2, 0.1])
    settings = Settings(cfg_scale=2.0, gfcg_fused=fused, gfcg_window=(0.5, 1.0))
    result = sample(tiny_sd, build_method("atg+gfcg", settings, classifier), ["cat", "dog"], steps=4)
    assert [s.nfe for s in result.steps] == ([2, 2, 2, 2] if fused else [2, 2, 3, 3]) and classifier.calls == 2
    never = sample(tiny_sd, build_method("atg+gfcg", Settings(cfg_scale=2.0, gfcg_fused=fused, gfcg_window=(0.0, 0.0)), classifier),
                   ["cat", "dog"], steps=4)  # fmt: skip
    torch.testing.assert_close(never.images, atg.images, rtol=1e-5, atol=1e-5)
    assert classifier.calls == 2


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
    result = sample(tiny_sd, build_method("plain"), PROMPTS, steps=8, progress=lambda i, n: seen.append(i), should_stop=lambda: len(seen) >= 3)
    assert result.cancelled and len(result.steps) == 3 and result.images.shape == (2, 3, 16, 16)


def test_evodiff_drives_a_stock_stable_diffusion_pipeline_with_cfg(tiny_sd):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from guidance import EVODiffScheduler

    pipe = StableDiffusionPipeline(
        vae=tiny_sd.vae, text_encoder=tiny_sd.text_encoder, tokenizer=tiny_sd.tokenizer, unet=tiny_sd.unet,
        scheduler=DDIMScheduler.from_config(tiny_sd.scheduler_config), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
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
    guided = sample(tiny_sd, build_method("figd+dsg", Settings(cfg_scale=2.0)), PROMPTS, steps=4, eta=1.0,
                    energy=reachable_target(tiny_sd), control=control)  # fmt: skip
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


def test_dps_under_the_normalised_rule_takes_freedoms_step(tiny_sd):
    """Why the energy tabs give DPS FreeDoM's preset strength: with the tabs' normalised rule the two steps are one."""
    settings = Settings(scale=0.3, step_rule="normalized", cfg_scale=2.0)
    freedom, dps = (sample(tiny_sd, build_method(name, settings), PROMPTS, steps=3, energy=reachable_target(tiny_sd)) for name in ("freedom", "dps"))
    assert torch.equal(freedom.images, dps.images)
    assert not torch.equal(freedom.images, sample(tiny_sd, build_method("dps", replace(settings, step_rule="constant")), PROMPTS, steps=3,
                                                  energy=reachable_target(tiny_sd)).images)  # fmt: skip

"""DSG: steps on the sphere around the unguided mean, its rate and interval, and the noise it needs."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import PROMPTS, MeanColour, run

from guidance.errors import MethodConfigError
from guidance.methods import DSG, Settings, build_method
from guidance.sampling import SamplingResult, sample


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


def test_dsg_runs_on_the_sphere_of_the_freedom_noise_rule(tiny_sd):
    seen, result = dsg_steps(tiny_sd, steps=6, eta=0.5, noise_rule="freedom")
    assert len(seen) == 6 and result.options["noise_rule"] == "freedom"
    for sigma, a_prev, radii in seen:
        assert sigma == pytest.approx(0.5 * (1 - a_prev) ** 0.5, rel=1e-4) and radii == pytest.approx([sigma, sigma], rel=1e-4)
    for bad in ({"scheduler": "ddpm"}, {"eta": 1.5}, {"noise_rule": "ancestral"}):
        with pytest.raises(MethodConfigError):
            sample(
                tiny_sd,
                build_method("freedom"),
                PROMPTS,
                steps=2,
                energy=MeanColour(),
                **{"eta": 0.5, "noise_rule": "freedom", **bad},
            )


def test_dsg_needs_exposed_noise(tiny_sd):
    with pytest.raises(MethodConfigError):
        run(tiny_sd, "figd+dsg", MeanColour(), scheduler="ddpm")

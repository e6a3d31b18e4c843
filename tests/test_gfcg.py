"""GFCG: the reference class and scale, its cost against its base, one-call batching, its interval, and autoguidance."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from helpers import CountingClassifier, FixedClassifier, MeanColour, step_context, unet_batches

from guidance.errors import MethodConfigError
from guidance.methods import GFCG, Settings, build_method
from guidance.sampling import sample


@pytest.mark.parametrize("probs, reference", [([0.5, 0.1, 0.3, 0.1], "fox"), ([0.2, 0.1, 0.05, 0.65], "owl")])
def test_gfcg_picks_the_most_probable_other_class(tiny_sd, probs, reference):
    gfcg = GFCG(FixedClassifier(probs), max_scale=2.0)
    ctx = step_context(tiny_sd, torch.randn(2, *tiny_sd.sample_shape), None)
    ctx.conditions = ["cat", "cat"]
    names, scale = gfcg.reference(ctx, torch.zeros(2, *tiny_sd.sample_shape))
    assert names == [reference, reference]
    assert torch.allclose(scale, torch.full((2,), 2.0 * (1 - probs[0])))


def test_gfcg_scale_rises_with_confusion(tiny_sd):
    ctx = step_context(tiny_sd, torch.randn(1, *tiny_sd.sample_shape), None)
    ctx.conditions = ["cat"]
    scales = [
        GFCG(FixedClassifier([p, 1 - p, 0, 0]), rule).reference(ctx, torch.zeros(1, *tiny_sd.sample_shape))[1].item()
        for p in (0.9, 0.6, 0.3)
        for rule in [3.0]
    ]
    assert scales[0] < scales[1] < scales[2]


def test_a_gradient_method_with_gfcg_runs_on_cfg_when_cfg_scale_is_set_and_reports_what_runs(tiny_sd):
    """ "freedom+gfcg" at cfg_scale 3 is GFCG on CFG 3 (D_c and D_u each step), as "freedom" at cfg_scale 3 is CFG 3;
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
        subset = sample(
            tiny_sd, build_method("cfg+gfcg", Settings(cfg_scale=2.0, gfcg_threshold=0.1), probs), ["cat", "dog"], steps=3
        )
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
        one_call = sample(
            tiny_sd, build_method("cfg+gfcg", replace(settings, gfcg_one_call=True), probs), ["cat", "dog"], steps=4
        )
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
    mapped = [
        sample(
            tiny_sd, build_method("cfg+gfcg", replace(settings, gfcg_one_call=one), probs), ["cat", "dog"], steps=4, control=maps
        )
        for one in (True, False)
    ]
    torch.testing.assert_close(mapped[0].images, mapped[1].images, rtol=1e-5, atol=1e-5)


def test_gfcg_in_one_call_on_autoguidance_matches_gfcg_and_refuses_the_fused_variant(tiny_sd, monkeypatch):
    monkeypatch.setattr(tiny_sd, "guide_unet", tiny_sd.unet)  # any second network serves as the guide here
    monkeypatch.setattr(tiny_sd, "has_guide_model", True)
    settings = Settings(cfg_scale=2.0, gfcg_window=(0.25, 1.0))
    runs = [
        sample(
            tiny_sd,
            build_method("atg+gfcg", replace(settings, gfcg_one_call=one), CountingClassifier([0.4, 0.3, 0.2, 0.1])),
            ["cat", "dog"],
            steps=4,
        )
        for one in (True, False)
    ]
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
    changing = sample(
        tiny_sd, build_method("cfg+gfcg", settings, ReadingsClassifier(READINGS[:3] + READINGS[:3])), ["cat", "dog"], steps=8
    )
    assert (held.images - changing.images).abs().max() > 1e-4  # readings at every step move the picture (by 7e-4 here)
    method.predictor.classifier = fresh  # a second run on the same method reads afresh from its window's first step
    again = sample(tiny_sd, method, ["cat"], steps=8)
    assert fresh.calls == 3 and again.images.shape[0] == 1


@pytest.mark.parametrize("one_call, reads", [(False, 3), (True, 2)])
def test_gfcg_interval_counts_from_the_first_step_that_can_use_a_reading(tiny_sd, one_call, reads):
    """Window (0, 1), 7 steps, interval 3: GFCG's own order reads for steps 0, 3 and 6; one call has no reference
    branch at step 0, so it reads for steps 1 and 4 (and the reading for step 7 would fall past the end)."""
    classifier = CountingClassifier([0.4, 0.3, 0.2, 0.1])
    sample(
        tiny_sd,
        build_method("cfg+gfcg", Settings(cfg_scale=2.0, gfcg_one_call=one_call, gfcg_interval=3), classifier),
        ["cat"],
        steps=7,
    )
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
    never = sample(
        tiny_sd,
        build_method("atg+gfcg", Settings(cfg_scale=2.0, gfcg_fused=fused, gfcg_window=(0.0, 0.0)), classifier),
        ["cat", "dog"],
        steps=4,
    )
    torch.testing.assert_close(never.images, atg.images, rtol=1e-5, atol=1e-5)
    assert classifier.calls == 2

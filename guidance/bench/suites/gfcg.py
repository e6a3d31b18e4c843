"""`gfcg`: CFG, GFCG, CFG+GFCG, Autoguidance, Autoguidance+GFCG and its fused variant, on class-balanced samples.

Accuracy is the evaluator's (never the guiding classifier's); Frechet distance to as many held-out renders
(floor alongside); diversity is the mean pairwise evaluator-feature distance within a class. Goal: CFG+GFCG
more accurate than CFG at the same CFG scale, at <= 1.3x CFG's time per step (with the classifier reading
the full decoder's x0_hat, and the tiny decoder's).
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

import torch

from guidance.tasks import preset
from guidance.worlds import World

from ..common import (
    Options, Rows, SuiteOutput, balanced, class_quality, generate, goal, images_of, realism, timing, warm_up,
)  # fmt: skip
from ..metrics import diversity, features

NEEDS = ("classifier",)

@dataclass(frozen=True)
class Plan:
    samples: int  # class-balanced
    steps: int
    cfg_scale: float = 2.5  # also Autoguidance's scale
    gfcg_max_scale: float = 2.0
    batch: int = 16
    rounds: int = 5  # interleaved timing rounds
    timing_steps: int = 25  # steps of each timed run: as many as the samples take, since GFCG acts mostly early


PLANS = {
    "quick": Plan(samples=20, steps=15, timing_steps=15),
    "full": Plan(samples=120, steps=25),
    "quick-sd": Plan(samples=2, steps=4, rounds=1, timing_steps=2),
    "full-sd": Plan(samples=8, steps=10, batch=4, rounds=3, timing_steps=4),
}
VARIANTS = {  # label: (method name, settings overrides)
    "cfg": ("cfg", {}),
    "gfcg": ("gfcg", {}),
    "cfg+gfcg": ("cfg+gfcg", {}),
    "cfg+gfcg, every sample": ("cfg+gfcg", {"gfcg_threshold": 0.0}),  # the reference branch wherever w_t > 0
    "cfg+gfcg tiny decoder": ("cfg+gfcg", {"tiny_decoder": True}),  # the classifier reads the tiny decoder's x0_hat
    "cfg+gfcg, one call": ("cfg+gfcg", {"gfcg_one_call": True}),  # c_ref from the step before: every branch in one call
    "cfg+gfcg tiny decoder, one call": ("cfg+gfcg", {"tiny_decoder": True, "gfcg_one_call": True}),
    "atg": ("atg", {}),
    "atg+gfcg": ("atg+gfcg", {}),
    "atg+gfcg fused": ("atg+gfcg", {"gfcg_fused": True}),
}


def run(world: World, opts: Options) -> SuiteOutput:
    plan = opts.plan(PLANS)
    names = world.classifier.class_names
    conditions = balanced(names, plan.samples)
    targets = torch.tensor([names.index(c) for c in conditions])
    rows, notes, variants = Rows("gfcg"), [], {}
    for label, (method, overrides) in VARIANTS.items():
        if "atg" in method and not world.backbone.has_guide_model:
            notes.append(f"{label}: skipped, {world.backbone.name} has no guide model for Autoguidance")
            continue
        if overrides.get("tiny_decoder") and world.backbone.tiny_decoder is None:
            notes.append(f"{label}: skipped, {world.backbone.name} was loaded without a tiny decoder")
            continue
        variants[label] = method, preset("classes", cfg_scale=plan.cfg_scale, gfcg_max_scale=plan.gfcg_max_scale, **overrides)
    for label, (method, settings) in variants.items():
        warm_up(world, method, names[0], settings)
        results = generate(world, method, conditions, steps=plan.steps, settings=settings, batch=plan.batch)
        row = {"task": "class", "method": label, **timing(results)}
        if opts.embedded:
            images = images_of(results)
            row |= class_quality(world, images, targets) | realism(world, images)
            row["diversity"] = diversity(features(world.evaluator, images), targets)
        rows.append(row)
    for row, ratio in zip(rows, interleaved_ratios(world, variants, conditions[: plan.batch], plan)):
        row["step_ratio_to_cfg"] = ratio
    return SuiteOutput(rows, goals(rows), config=asdict(plan), notes=notes)


def interleaved_ratios(world: World, variants: dict, conditions: list[str], plan: Plan) -> list[float]:
    """Each variant's time per step over CFG's, the median over `plan.rounds` rounds in which every variant runs
    one batch of `plan.timing_steps` steps in turn: robust to a shared machine's load changing between variants."""
    rounds = []
    for _ in range(plan.rounds):
        ms = {label: timing(generate(world, method, conditions, steps=plan.timing_steps, settings=settings, batch=plan.batch))["ms_per_step"]
              for label, (method, settings) in variants.items()}  # fmt: skip
        rounds.append({label: value / ms["cfg"] for label, value in ms.items()})
    return [statistics.median(r[label] for r in rounds) for label in variants]


def goals(rows: list[dict]) -> list[dict]:
    by = {r["method"]: r for r in rows}
    cfg, both = by["cfg"], by["cfg+gfcg"]
    found = []
    if "accuracy" in cfg:
        better = both["accuracy"] > cfg["accuracy"]
        found.append(goal("CFG+GFCG accuracy above CFG's (same CFG scale)", f"> {cfg['accuracy']:.3f}", both["accuracy"], better))
    for label in ("cfg+gfcg", "cfg+gfcg tiny decoder", "cfg+gfcg, one call", "cfg+gfcg tiny decoder, one call"):
        if label in by:
            ratio = by[label]["step_ratio_to_cfg"]
            found.append(goal(f"{label}: time per step over CFG's (median of interleaved rounds)", "<= 1.3x", ratio, ratio <= 1.3, "x"))
    if "atg+gfcg fused" in by:
        fused = by["atg+gfcg fused"]["step_ratio_to_cfg"] / by["atg"]["step_ratio_to_cfg"] - 1
        found.append(goal("fused ATG+GFCG extra time per step over ATG", "<= 15%", 100 * fused, fused <= 0.15, "%"))
    return found

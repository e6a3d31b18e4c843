"""`gfcg`: CFG, GFCG, CFG+GFCG, Autoguidance, Autoguidance+GFCG and its fused variant, on class-balanced samples.

GFCG runs at the classes preset (one batched call, the classifier every 3 steps) and in its own order (the
classifier at every step, the reference branch after it), with what each part of the preset saves. Accuracy is
the evaluator's (never the guiding classifier's); Frechet distance to as many held-out renders (floor
alongside); diversity is the mean pairwise evaluator-feature distance within a class. Goals: CFG+GFCG more
accurate than CFG at the same CFG scale and as accurate as GFCG in its own order (sample by sample from the same
noise and class, a bootstrap interval over the samples), at <= 1.3x CFG's time per step (with the classifier
reading the full decoder's x0_hat, and the tiny decoder's; a bootstrap interval over the interleaved rounds).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

import numpy as np
import torch

from guidance.bench.common import (
    Options,
    Rows,
    SuiteOutput,
    balanced,
    class_quality,
    generate,
    goal_over,
    images_of,
    realism,
    timing,
    warm_up,
)
from guidance.bench.metrics import diversity, features, probabilities
from guidance.statistics import mean_difference
from guidance.playground.tasks import preset
from guidance.worlds import World

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
    "full": Plan(samples=120, steps=25, rounds=7),
    "quick-sd": Plan(samples=2, steps=4, rounds=1, timing_steps=2),
    "full-sd": Plan(samples=8, steps=10, batch=4, rounds=3, timing_steps=4),
}
OWN_ORDER = {"gfcg_one_call": False, "gfcg_interval": 1}  # GFCG's order: the classifier at every step, D(c_ref) after it
VARIANTS = {  # label: (method name, settings overrides of the classes preset: one call, classifier every 3 steps)
    "cfg": ("cfg", {}),
    "gfcg": ("gfcg", {}),
    "cfg+gfcg": ("cfg+gfcg", {}),
    "cfg+gfcg, own order": ("cfg+gfcg", OWN_ORDER),
    "cfg+gfcg, own order, every sample": ("cfg+gfcg", {**OWN_ORDER, "gfcg_threshold": 0.0}),  # D(c_ref) wherever w_t > 0
    "cfg+gfcg, one call, every step": ("cfg+gfcg", {"gfcg_interval": 1}),
    "cfg+gfcg, two calls, interval 3": ("cfg+gfcg", {"gfcg_one_call": False}),
    "cfg+gfcg tiny decoder": ("cfg+gfcg", {"tiny_decoder": True}),  # the classifier reads the tiny decoder's x0_hat
    "atg": ("atg", {}),
    "atg+gfcg": ("atg+gfcg", {}),
    "atg+gfcg, own order": ("atg+gfcg", OWN_ORDER),
    "atg+gfcg fused": ("atg+gfcg", {"gfcg_fused": True, "gfcg_one_call": False}),  # two calls already: no one call
}


def run(world: World, opts: Options) -> SuiteOutput:
    """Every variant in VARIANTS the world can run, on class-balanced samples, then interleaved timing rounds
    (the interface: guidance.bench.suites)."""
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
    correct = {}
    for label, (method, settings) in variants.items():
        warm_up(world, method, names[0], settings)
        results = generate(world, method, conditions, steps=plan.steps, settings=settings, batch=plan.batch)
        row = {"task": "class", "method": label, **timing(results)}
        if opts.embedded:
            images = images_of(results)
            row |= class_quality(world, images, targets) | realism(world, images)
            row["diversity"] = diversity(features(world.evaluator, images), targets)
            correct[label] = (probabilities(world.evaluator, images).argmax(1) == targets).float().tolist()
        rows.append(row)
    rounds = interleaved_rounds(world, variants, conditions[: plan.batch], plan)
    for row in rows:
        row["step_ratio_to_cfg"] = statistics.median(r[row["method"]] for r in rounds)
    return SuiteOutput(rows, goals(rows, correct, rounds), config=asdict(plan), notes=notes)


def interleaved_rounds(world: World, variants: dict, conditions: list[str], plan: Plan) -> list[dict[str, float]]:
    """Per round, each variant's time per step over CFG's, in `plan.rounds` rounds in which every variant runs one
    batch of `plan.timing_steps` steps in turn: robust to a shared machine's load changing between variants. The
    rows report the median over rounds.

    Args:
        world: where to sample.
        variants: by label, (method, settings); "cfg" among them.
        conditions: one batch's classes.
        plan: rounds, timing steps and batch.
    """
    rounds = []
    for _ in range(plan.rounds):
        ms = {
            label: timing(generate(world, method, conditions, steps=plan.timing_steps, settings=settings, batch=plan.batch))[
                "ms_per_step"
            ]
            for label, (method, settings) in variants.items()
        }
        rounds.append({label: value / ms["cfg"] for label, value in ms.items()})
    return rounds


def goals(rows: list[dict], correct: dict[str, list[float]], rounds: list[dict[str, float]]) -> list[dict]:
    """The goals: the preset's CFG+GFCG keeps GFCG's accuracy gain over CFG at <= 1.3x CFG's step; the fused
    variant's extra time over Autoguidance.

    Args:
        rows: the suite's rows.
        correct: per variant, 1.0 for each sample the evaluator reads as its class (the same conditions and noise
            for every variant); empty off the embedded world.
        rounds: the interleaved timing rounds (`interleaved_rounds`).
    """
    by = {r["method"]: r for r in rows}
    found = []
    if correct:
        both, cfg, own = correct["cfg+gfcg"], correct["cfg"], correct["cfg+gfcg, own order"]
        found.append(
            goal_over(
                "CFG+GFCG accuracy above CFG's, same CFG scale (CFG+GFCG minus CFG)",
                list(zip(both, cfg)),
                0.0,
                higher_is_better=True,
                strict=True,
                statistic=mean_difference,
                context=f"CFG: {by['cfg']['accuracy']:.3f}",
            )
        )
        found.append(
            goal_over(
                "CFG+GFCG keeps the accuracy of GFCG in its own order (minus own order's)",
                list(zip(both, own)),
                0.0,
                higher_is_better=True,
                statistic=mean_difference,
                context=f"own order: {by['cfg+gfcg, own order']['accuracy']:.3f}",
            )
        )
    for label in ("cfg+gfcg", "cfg+gfcg tiny decoder"):
        if label in by:
            found.append(
                goal_over(
                    f"{label}: time per step over CFG's (median of interleaved rounds)",
                    [r[label] for r in rounds],
                    1.3,
                    "x",
                    statistic=np.median,
                    over="rounds",
                )
            )
    if "atg+gfcg fused" in by:
        extra = [100 * (r["atg+gfcg fused"] / r["atg"] - 1) for r in rounds]
        found.append(
            goal_over(
                "fused ATG+GFCG extra time per step over ATG (median of interleaved rounds)",
                extra,
                15.0,
                "%",
                statistic=np.median,
                over="rounds",
            )
        )
    return found

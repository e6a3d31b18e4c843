"""`gfcg`: CFG, GFCG, CFG+GFCG, Autoguidance, Autoguidance+GFCG and its fused variant, on class-balanced samples.

Accuracy is the evaluator's (never the guiding classifier's); Frechet distance to as many held-out renders
(floor alongside); diversity is the mean pairwise evaluator-feature distance within a class. Goal: CFG+GFCG
more accurate than CFG at the same CFG scale, with <= 15% extra time per step.
"""
from __future__ import annotations

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


PLANS = {
    "quick": Plan(samples=20, steps=15),
    "full": Plan(samples=120, steps=25),
    "quick-sd": Plan(samples=2, steps=4),
    "full-sd": Plan(samples=8, steps=10, batch=4),
}
VARIANTS = {  # label: (method name, settings overrides)
    "cfg": ("cfg", {}),
    "gfcg": ("gfcg", {}),
    "cfg+gfcg": ("cfg+gfcg", {}),
    "atg": ("atg", {}),
    "atg+gfcg": ("atg+gfcg", {}),
    "atg+gfcg fused": ("atg+gfcg", {"gfcg_fused": True}),
}


def run(world: World, opts: Options) -> SuiteOutput:
    plan = opts.plan(PLANS)
    names = world.classifier.class_names
    conditions = balanced(names, plan.samples)
    targets = torch.tensor([names.index(c) for c in conditions])
    rows, notes = Rows("gfcg"), []
    for label, (method, overrides) in VARIANTS.items():
        if "atg" in method and not world.backbone.has_guide_model:
            notes.append(f"{label}: skipped, {world.backbone.name} has no guide model for Autoguidance")
            continue
        settings = preset("classes", cfg_scale=plan.cfg_scale, gfcg_max_scale=plan.gfcg_max_scale, **overrides)
        warm_up(world, method, names[0], settings)
        results = generate(world, method, conditions, steps=plan.steps, settings=settings, batch=plan.batch)
        row = {"task": "class", "method": label, **timing(results)}
        if opts.embedded:
            images = images_of(results)
            row |= class_quality(world, images, targets) | realism(world, images)
            row["diversity"] = diversity(features(world.evaluator, images), targets)
        rows.append(row)
    return SuiteOutput(rows, goals(rows), config=asdict(plan), notes=notes)


def goals(rows: list[dict]) -> list[dict]:
    by = {r["method"]: r for r in rows}
    cfg, both = by["cfg"], by["cfg+gfcg"]
    found = []
    if "accuracy" in cfg:
        better = both["accuracy"] > cfg["accuracy"]
        found.append(goal("CFG+GFCG accuracy above CFG's (same CFG scale)", f"> {cfg['accuracy']:.3f}", both["accuracy"], better))
    extra = both["ms_per_step"] / cfg["ms_per_step"] - 1
    found.append(goal("CFG+GFCG extra time per step over CFG", "<= 15%", 100 * extra, extra <= 0.15, "%"))
    if "atg+gfcg fused" in by:
        fused = by["atg+gfcg fused"]["ms_per_step"] / by["atg"]["ms_per_step"] - 1
        found.append(goal("fused ATG+GFCG extra time per step over ATG", "<= 15%", 100 * fused, fused <= 0.15, "%"))
    return found

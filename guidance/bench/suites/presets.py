"""Preset sweep: the guidance scale k of each energy tab, scored by the world suite's metrics (embedded world).

Each tab's methods run at every k of its grid, from the same references and seeds, with the rest of the tab's
preset fixed; the unguided sample is measured once per tab (style: at every k, its ratio's denominator). The
tab presets in guidance/tasks.py are picked from this sweep: a k at which the tab's metric meets its bar with
guided samples still judged faces; the goals read the bars at the presets. Then FIGD runs at each tab's preset k
with each of its Fisher weight profiles w_t (docs/methods.md, FIGD step 3); every profile costs the same time, so
the tab's metric and its face rate compare them at equal time.
"""
from __future__ import annotations

from dataclasses import asdict

from guidance.errors import MethodConfigError
from guidance.methods.figd import FISHER_WEIGHTS
from guidance.tasks import preset
from guidance.worlds import World

from ..common import Options, Rows, SuiteOutput, goal
from .world import Plan, control_rows, face_rows, style_rows

NEEDS = ()
PLANS = {
    "quick": Plan(per_class=0, face_references=4, face_seeds=2, style_references=3, control_maps=4, id_images=0),
    "full": Plan(per_class=0, face_references=6, face_seeds=2, style_references=4, control_maps=6, id_images=0),
}
SCALES = {"face": (0.025, 0.05, 0.1, 0.2), "style": (0.05, 0.1, 0.2, 0.4), "control": (0.1, 0.2, 0.4)}
ROWS = {"face": face_rows, "style": style_rows, "control": control_rows}
METHODS = {"face": ("freedom", "figd"), "style": ("freedom", "figd"), "control": ("figd",)}


def run(world: World, opts: Options) -> SuiteOutput:
    if not opts.embedded:
        raise MethodConfigError("the presets suite sweeps the embedded world's tabs: use --backbone embedded")
    plan = opts.plan(PLANS)
    rows = Rows("presets")
    for task, rows_of in ROWS.items():
        base = preset(task)
        for i, k in enumerate(SCALES[task]):
            unguided = ("plain",) if i == 0 or task == "style" else ()  # style's ratio needs its own plain run
            for row in rows_of(world, plan, (*unguided, *METHODS[task]), scale=k):
                rows.append({**row, "k": k, "fisher_weight": base.fisher_weight, "sweep": "k"})
        for profile in (p for p in FISHER_WEIGHTS if p != base.fisher_weight):  # the preset's profile ran above
            unguided = ("plain",) if task == "style" else ()
            for row in rows_of(world, plan, (*unguided, "figd"), scale=base.scale, fisher_weight=profile):
                if row["method"] == "figd":
                    rows.append({**row, "k": base.scale, "fisher_weight": profile, "sweep": "fisher_weight"})
    return SuiteOutput(rows, goals(rows), config=asdict(plan) | {"scales": SCALES, "fisher_weights": list(FISHER_WEIGHTS)})


def goals(rows: list[dict]) -> list[dict]:
    """The world suite's tab bars, read at each tab's preset k (guidance.tasks), from this sweep's rows."""
    found = []
    for row in rows:
        task = row["task"]
        if row["method"] == "plain" or row["k"] != preset(task).scale or row.get("sweep") == "fisher_weight":
            continue
        name = f"{task}, {row['method']} (the preset)"
        if task == "face":
            found.append(goal(f"{name}: attribute agreement", ">= 0.8", row["attribute_agreement"], row["attribute_agreement"] >= 0.8))
        elif task == "style":
            found.append(goal(f"{name}: style distance vs unguided", "<= 0.5x", row["style_ratio"], row["style_ratio"] <= 0.5, "x"))
        else:
            found.append(goal(f"{name}: edge F1", ">= 0.75", row["edge_f1"], row["edge_f1"] >= 0.75))
        found.append(goal(f"{name}: samples judged a face", ">= 0.9", row["face_rate"], row["face_rate"] >= 0.9))
    return found

"""Presets: each guided method's own guiding value on each energy tab, chosen on references and seeds held out from the
app's examples.

Every guided method of a tab runs at each value of its guiding setting's grid (the scale, or the dsg_rate of a
"+dsg" method: guidance.playground.tasks.guiding_setting) with the rest of the tab's preset fixed; plain sampling runs once per tab on the same
references and seeds. References: held-out renders (face; control: their Canny maps) and style references 3, 4, ...
(the examples are 0-2). The rule (docs/methods.md, Presets) picks, per (tab, method), the value with the best
condition metric (face: attribute agreement; style: pattern agreement; control: edge F1) among the values whose mean
realism (guidance.worlds.base.realism) is at least REALISM_FLOOR of plain sampling's on the same references and seeds,
and whose samples the world's detector still calls faces (at least FACE_RATE of them); the smallest value wins a tie. guidance/playground/tasks/catalog.py's
`TaskSpec.guiding` hold the picks of the committed run; tests/test_tasks.py checks that they agree. Then FIGD runs at
its own scale on each tab with each of its other Fisher weight profiles w_t (docs/methods.md, FIGD step 3); every
profile costs the same time, so the tab's metric compares them at equal time.
"""

from __future__ import annotations

from dataclasses import asdict

from guidance.bench.common import Options, Rows, SuiteOutput, goal_over, goal_told
from guidance.bench.suites.world import EXAMPLE_METHODS, Plan, control_rows, face_rows, style_rows
from guidance.errors import MethodConfigError
from guidance.methods.figd import FISHER_WEIGHTS
from guidance.playground.tasks import preset, spec, guiding_setting
from guidance.worlds import World

NEEDS = ()
PLANS = {
    "quick": Plan(
        per_class=0,
        face_references=2,
        face_seeds=2,
        style_references=2,
        style_seeds=2,
        style_first=3,
        control_maps=2,
        id_images=0,
    ),
    "full": Plan(
        per_class=0,
        face_references=4,
        face_seeds=3,
        style_references=4,
        style_seeds=3,
        style_first=3,
        control_maps=10,
        id_images=0,
    ),
}
GRIDS = {
    "face": {"scale": (0.05, 0.1, 0.2, 0.4), "dsg_rate": (0.05, 0.1, 0.2, 0.4)},
    "style": {"scale": (0.1, 0.2, 0.4, 0.8), "dsg_rate": (0.1, 0.2, 0.4, 0.8)},
    "control": {"scale": (0.1, 0.2, 0.4, 0.8), "dsg_rate": (0.05, 0.1, 0.2, 0.4)},
}
ROWS = {"face": face_rows, "style": style_rows, "control": control_rows}
CONDITION = {"face": "attribute_agreement", "style": "pattern_agreement", "control": "edge_f1"}
REALISM_FLOOR = 0.8  # a value's mean realism over plain sampling's, at least
FACE_RATE = 0.8  # the share of samples the world's detector must still call faces (it misreads some patterned ones)


def run(world: World, opts: Options) -> SuiteOutput:
    """Per tab: plain sampling, each guided method over its strength grid, FIGD's other Fisher weights at its own
    strength; then the picks (the interface: guidance.bench.suites)."""
    if not opts.embedded:
        raise MethodConfigError("the presets suite sweeps the embedded world's tabs: use --backbone embedded")
    plan = opts.plan(PLANS)
    rows = Rows("presets")
    for task, rows_of in ROWS.items():
        rows.append(rows_of(world, plan, ("plain",))[0] | {"value": None, "setting": None})
        for method in EXAMPLE_METHODS:
            setting = guiding_setting(method)
            for value in GRIDS[task][setting]:
                rows.append(rows_of(world, plan, (method,), **{setting: value})[0] | {"value": value, "setting": setting})
        own = spec(task).guiding["figd"]
        for profile in (p for p in FISHER_WEIGHTS if p != preset(task).fisher_weight):
            row = rows_of(world, plan, ("figd",), scale=own, fisher_weight=profile)[0]
            rows.append(row | {"value": own, "setting": "scale", "fisher_weight": profile})
    picks = choose(rows)
    config = asdict(plan) | {"grids": GRIDS, "realism_floor": REALISM_FLOOR, "face_rate": FACE_RATE, "picks": picks}
    return SuiteOutput(rows, goals(rows, picks), config=config, notes=[pick_note(picks)])


def admissible(row: dict, plain: dict) -> bool:
    """Realism at least REALISM_FLOOR of plain sampling's, and at least FACE_RATE of the samples still judged faces.

    Args:
        row: a guided method's row at one strength.
        plain: the same tab's plain-sampling row.
    """
    return row["realism"] >= REALISM_FLOOR * plain["realism"] and row["face_rate"] >= FACE_RATE


def choose(rows: list[dict]) -> dict[str, dict[str, float | None]]:
    """Per tab and method, the strength with the best condition metric among the admissible ones (the smallest on a
    tie); None where no value is admissible."""
    picks: dict[str, dict[str, float | None]] = {}
    for task in ROWS:
        plain = next(r for r in rows if r["task"] == task and r["method"] == "plain")
        for method in EXAMPLE_METHODS:
            tried = [
                r
                for r in rows
                if r["task"] == task and r["method"] == method and "fisher_weight" not in r and admissible(r, plain)
            ]
            best = max(tried, key=lambda r: (r[CONDITION[task]], -r["value"]), default=None)
            picks.setdefault(task, {})[method] = None if best is None else best["value"]
    return picks


def goals(rows: list[dict], picks: dict) -> list[dict]:
    """At each pick: its condition metric above plain sampling's (bootstrapped over the held-out samples).

    Args:
        rows: the suite's rows.
        picks: from `choose`.
    """
    found = []
    for task, methods in picks.items():
        plain = next(r for r in rows if r["task"] == task and r["method"] == "plain")
        for method, value in methods.items():
            if value is None:
                found.append(goal_told(f"{task}, {method}: an admissible strength", "one of the grid", 0.0, False))
                continue
            row = next(
                r
                for r in rows
                if r["task"] == task and r["method"] == method and r["value"] == value and "fisher_weight" not in r
            )
            name = CONDITION[task]
            pairs = list(zip(row["values"][_values_key(name)], plain["values"][_values_key(name)]))
            found.append(
                goal_over(
                    f"{task}, {method} at {row['setting']} {value:g}: {name} above plain's",
                    pairs,
                    0.0,
                    higher_is_better=True,
                    strict=True,
                    statistic=_mean_gain,
                )
            )
    return found


def _values_key(name: str) -> str:
    """Where a condition metric's per-sample values are kept in a row's "values" (edge F1 is the control tab's metric)."""
    return "metric" if name == "edge_f1" else name


def _mean_gain(pairs) -> float:
    return float((pairs[:, 0] - pairs[:, 1]).mean())


def pick_note(picks: dict) -> str:
    """The picks as one line per tab, for the report."""
    return "Picks (guidance/playground/tasks/catalog.py TaskSpec.guiding): " + "; ".join(
        f"{task}: "
        + ", ".join(f"{method} {value:g}" if value is not None else f"{method} none" for method, value in methods.items())
        for task, methods in picks.items()
    )

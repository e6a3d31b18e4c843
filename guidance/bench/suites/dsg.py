"""`dsg`: energy and realism against guidance strength, the plain gradient step vs DSG's spherical step.

The gradient is FreeDoM's (or FIGD's, a plan option) on the face-ID task; strength is the step scale k
for the plain step and the guidance rate g_r for DSG. Realism: Frechet distance of all samples of a
setting to as many held-out renders (floor alongside) and evaluator confidence. Goal (at the presets,
guidance.tasks.PRESETS["face"]): DSG reaches a lower energy than the plain step at equal steps, with
equal or better FD, at < 5% extra time per step (timed in interleaved rounds of the preset pair).
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, replace

from guidance.tasks import PRESETS, run_task
from guidance.worlds import World

from ..common import Options, Rows, SuiteOutput, goal, images_of, realism, reference_images, task_request, task_row, timing

NEEDS = ("face_embedder",)
TASK = "face"


@dataclass(frozen=True)
class Plan:
    steps: tuple[int, ...]
    scales: tuple[float, ...]  # plain step: k of the normalised step size
    rates: tuple[float, ...]  # DSG: guidance rate
    samples: int
    seeds: int
    base: str = "freedom"
    eta: float = 1.0
    rounds: int = 4  # interleaved timing rounds of the preset pair at each step count


PLANS = {
    "quick": Plan(steps=(20, 50), scales=(PRESETS[TASK].scale,), rates=(PRESETS[TASK].dsg_rate,), samples=4, seeds=2),
    "full": Plan(steps=(20, 50), scales=(0.02, 0.05, 0.1, 0.3), rates=(0.02, 0.05, 0.1, 0.2), samples=8, seeds=2),
    "quick-sd": Plan(steps=(4,), scales=(0.3,), rates=(0.05,), samples=1, seeds=1),
    "full-sd": Plan(steps=(10,), scales=(0.3,), rates=(0.05,), samples=1, seeds=2),
}


def run(world: World, opts: Options) -> SuiteOutput:
    plan = opts.plan(PLANS)
    seeds = opts.seeds or plan.seeds
    references = reference_images(world.backbone.image_size)
    rows = Rows("dsg")
    for steps in plan.steps:
        sweeps = [(plan.base, "scale", s) for s in plan.scales] + [(f"{plan.base}+dsg", "dsg_rate", r) for r in plan.rates]
        for method, knob, strength in sweeps:
            row, results = task_row(
                world, TASK, method, references, seeds, steps=steps, samples=plan.samples, eta=plan.eta, **{knob: strength}
            )  # fmt: skip
            rows.append(row | {"strength": strength} | (realism(world, images_of(results)) if opts.embedded else {}))
        at = {(r["method"], r["strength"]): r for r in rows if r["steps"] == steps}
        if all(key in at for key in preset_pair(plan)):
            for key, ratio in interleaved_ratios(world, plan, references, steps).items():
                at[key]["step_ratio_to_plain"] = ratio
    return SuiteOutput(rows, goals(rows, plan), config={**asdict(plan), "seeds": seeds})


def interleaved_ratios(world: World, plan: Plan, references: dict, steps: int) -> dict[tuple[str, float], float]:
    """At the presets, DSG's time per step over the plain step's (and 1.0 for the plain step): the median over
    `plan.rounds` rounds in which each runs one seed in turn, the first of the pair alternating, so that a shared
    machine's drifting load slows both alike (sequential runs of the rows above moved this ratio by +-15% between
    identical runs)."""
    pair = preset_pair(plan)
    requests = {key: task_request(world, TASK, key[0], references, steps=steps, samples=plan.samples, eta=plan.eta, **knob)
                for key, knob in pair.items()}  # fmt: skip
    plain = next(iter(pair))
    rounds = []
    for seed in range(plan.rounds):
        order = list(requests)[:: 1 if seed % 2 == 0 else -1]
        ms = {key: timing([run_task(world, replace(requests[key], seed=seed)).results[0][1]])["ms_per_step"] for key in order}
        rounds.append({key: value / ms[plain] for key, value in ms.items()})
    return {key: statistics.median(r[key] for r in rounds) for key in pair}


def preset_pair(plan: Plan) -> dict[tuple[str, float], dict]:
    """(method, strength) of the plain step and of DSG at the face preset, with the setting each sets."""
    preset = PRESETS[TASK]
    return {(plan.base, preset.scale): {"scale": preset.scale}, (f"{plan.base}+dsg", preset.dsg_rate): {"dsg_rate": preset.dsg_rate}}


def goals(rows: list[dict], plan: Plan) -> list[dict]:
    """At each step count: DSG at the preset rate vs the plain step at the preset scale."""
    found = []
    for steps in plan.steps:
        at = {(r["method"], r["strength"]): r for r in rows if r["steps"] == steps}
        plain, dsg = (at.get(key) for key in preset_pair(plan))
        if plain is None or dsg is None:
            continue
        lower = dsg["energy"] < plain["energy"]
        found.append(goal(f"{steps} steps: DSG energy below the plain step's", f"< {plain['energy']:.4g}", dsg["energy"], lower))
        if "fd" in dsg:
            found.append(goal(f"{steps} steps: DSG FD no worse", f"<= {plain['fd']:.4g}", dsg["fd"], dsg["fd"] <= plain["fd"]))
        extra = dsg["step_ratio_to_plain"] - 1
        found.append(goal(f"{steps} steps: DSG extra time per step (median of interleaved rounds)", "< 5%", 100 * extra, extra < 0.05, "%"))
    return found

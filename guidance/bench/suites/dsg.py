"""`dsg`: energy and realism against guidance strength, the plain gradient step vs DSG's spherical step.

The gradient is FreeDoM's (or FIGD's, a plan option) on the face-ID task; strength is the step's scale for the plain
step and the guidance rate g_r for DSG. Realism: Frechet distance of all samples of a setting to as many held-out
renders (floor alongside) and evaluator confidence. Goal (at the face preset's DSG rate and the benchmarks' shared
scale, guidance.bench.common.SHARED_SCALE): DSG reaches a lower energy than the plain step at equal steps (image by
image from the same noise, a bootstrap interval over the images), with equal or better FD, at < 5% extra time per step
(timed in interleaved rounds of the preset pair, a bootstrap interval over the rounds). The FD over a few dozen
samples is reported as indicative: below FD_VERDICT_SAMPLES samples it measures noise.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, replace

import numpy as np

from guidance.bench.common import (
    FD_VERDICT_SAMPLES,
    SHARED_SCALE,
    Options,
    Rows,
    SuiteOutput,
    goal_over,
    goal_told,
    images_of,
    realism,
    reference_images,
    task_request,
    task_row,
    timing,
)
from guidance.statistics import mean_difference
from guidance.playground.tasks import PRESETS, run_task
from guidance.worlds import World

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
    "quick": Plan(steps=(20, 50), scales=(SHARED_SCALE[TASK],), rates=(PRESETS[TASK].dsg_rate,), samples=4, seeds=2),
    "full": Plan(steps=(20, 50), scales=(0.02, 0.05, 0.1, 0.3), rates=(0.02, 0.05, 0.1, 0.2), samples=8, seeds=2),
    "quick-sd": Plan(steps=(4,), scales=(0.3,), rates=(0.05,), samples=1, seeds=1),
    "full-sd": Plan(steps=(10,), scales=(0.3,), rates=(0.05,), samples=1, seeds=2),
}


def run(world: World, opts: Options) -> SuiteOutput:
    """The plain step's strengths and DSG's rates at each step count, then the presets' interleaved timing rounds
    (the interface: guidance.bench.suites)."""
    plan = opts.plan(PLANS)
    seeds = opts.seeds or plan.seeds
    references = reference_images(world.backbone.image_size)
    rows, energies, rounds = Rows("dsg"), {}, {}
    for steps in plan.steps:
        sweeps = [(plan.base, "scale", s) for s in plan.scales] + [(f"{plan.base}+dsg", "dsg_rate", r) for r in plan.rates]
        for method, knob, strength in sweeps:
            row, results = task_row(
                world, TASK, method, references, seeds, steps=steps, samples=plan.samples, eta=plan.eta, **{knob: strength}
            )
            rows.append(row | {"strength": strength} | (realism(world, images_of(results)) if opts.embedded else {}))
            energies[steps, method, strength] = [e for r in results for e in r.final_energy]
        at = {(r["method"], r["strength"]): r for r in rows if r["steps"] == steps}
        if all(key in at for key in preset_pair(plan)):
            rounds[steps] = interleaved_rounds(world, plan, references, steps)
            for key in preset_pair(plan):
                at[key]["step_ratio_to_plain"] = statistics.median(r[key] for r in rounds[steps])
    return SuiteOutput(rows, goals(rows, plan, energies, rounds), config={**asdict(plan), "seeds": seeds})


def interleaved_rounds(world: World, plan: Plan, references: dict, steps: int) -> list[dict[tuple[str, float], float]]:
    """At the presets, per round, DSG's time per step over the plain step's (and 1.0 for the plain step), in
    `plan.rounds` rounds in which each runs one seed in turn, the first of the pair alternating, so that a shared
    machine's drifting load slows both alike (sequential runs of the rows above see the load change between them);
    the rows report the median over rounds.

    Args:
        world: where to sample.
        plan: the suite's plan (rounds, samples, eta, the plain step's method).
        references: by task, from `reference_images`.
        steps: the step count of both runs.

    Returns:
        Per round, by (method, strength), the time per step over the plain step's.
    """
    pair = preset_pair(plan)
    requests = {
        key: task_request(world, TASK, key[0], references, steps=steps, samples=plan.samples, eta=plan.eta, **knob)
        for key, knob in pair.items()
    }
    plain = next(iter(pair))
    rounds = []
    for seed in range(plan.rounds):
        order = list(requests)[:: 1 if seed % 2 == 0 else -1]
        ms = {key: timing([run_task(world, replace(requests[key], seed=seed)).results[0][1]])["ms_per_step"] for key in order}
        rounds.append({key: value / ms[plain] for key, value in ms.items()})
    return rounds


def preset_pair(plan: Plan) -> dict[tuple[str, float], dict]:
    """(method, strength) of the plain step and of DSG at the face preset, with the setting each sets."""
    scale, rate = SHARED_SCALE[TASK], PRESETS[TASK].dsg_rate
    return {
        (plan.base, scale): {"scale": scale},
        (f"{plan.base}+dsg", rate): {"dsg_rate": rate},
    }


def goals(rows: list[dict], plan: Plan, energies: dict, rounds: dict[int, list[dict]]) -> list[dict]:
    """At each step count: DSG at the preset rate vs the plain step at the preset scale.

    Args:
        rows: the suite's rows.
        plan: the suite's plan.
        energies: the final energies of every image by (steps, method, strength).
        rounds: the interleaved timing rounds by steps (`interleaved_rounds`).
    """
    found = []
    for steps in plan.steps:
        at = {(r["method"], r["strength"]): r for r in rows if r["steps"] == steps}
        plain_key, dsg_key = preset_pair(plan)
        plain, dsg = at.get(plain_key), at.get(dsg_key)
        if plain is None or dsg is None:
            continue
        pairs = list(zip(energies[(steps, *dsg_key)], energies[(steps, *plain_key)]))
        found.append(
            goal_over(
                f"{steps} steps: DSG energy below the plain step's (DSG minus plain)",
                pairs,
                0.0,
                strict=True,
                statistic=mean_difference,
            )
        )
        if "fd" in dsg:
            n = len(pairs)
            found.append(
                goal_told(
                    f"{steps} steps: DSG FD no worse (indicative below {FD_VERDICT_SAMPLES} samples)",
                    f"<= {plain['fd']:.4g}",
                    dsg["fd"],
                    dsg["fd"] <= plain["fd"],
                    n=n,
                    indicative=n < FD_VERDICT_SAMPLES,
                )
            )
        extra = [100 * (r[dsg_key] - 1) for r in rounds[steps]]
        found.append(
            goal_over(
                f"{steps} steps: DSG extra time per step (median of interleaved rounds)",
                extra,
                5.0,
                "%",
                strict=True,
                statistic=np.median,
                over="rounds",
            )
        )
    return found

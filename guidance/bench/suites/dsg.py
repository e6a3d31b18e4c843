"""`dsg`: energy and realism against guidance strength, the plain gradient step vs DSG's spherical step.

The gradient is FreeDoM's (or FIGD's, a plan option) on the face-ID task; strength is the step scale k
for the plain step and the guidance rate g_r for DSG. Realism: Frechet distance of all samples of a
setting to as many held-out renders (floor alongside) and evaluator confidence. Goal (at the presets,
guidance.tasks.PRESETS["face"]): DSG reaches a lower energy than the plain step at equal steps, with
equal or better FD, at < 5% extra time per step.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from guidance.tasks import PRESETS
from guidance.worlds import World

from ..common import Options, Rows, SuiteOutput, goal, images_of, realism, reference_images, task_row

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
    return SuiteOutput(rows, goals(rows, plan), config={**asdict(plan), "seeds": seeds})


def goals(rows: list[dict], plan: Plan) -> list[dict]:
    """At each step count: DSG at the preset rate vs the plain step at the preset scale."""
    preset = PRESETS[TASK]
    found = []
    for steps in plan.steps:
        at = {(r["method"], r["strength"]): r for r in rows if r["steps"] == steps}
        plain, dsg = at.get((plan.base, preset.scale)), at.get((f"{plan.base}+dsg", preset.dsg_rate))
        if plain is None or dsg is None:
            continue
        lower = dsg["energy"] < plain["energy"]
        found.append(goal(f"{steps} steps: DSG energy below the plain step's", f"< {plain['energy']:.4g}", dsg["energy"], lower))
        if "fd" in dsg:
            found.append(goal(f"{steps} steps: DSG FD no worse", f"<= {plain['fd']:.4g}", dsg["fd"], dsg["fd"] <= plain["fd"]))
        extra = dsg["ms_per_step"] / plain["ms_per_step"] - 1
        found.append(goal(f"{steps} steps: DSG extra time per step", "< 5%", 100 * extra, extra < 0.05, "%"))
    return found

"""`solvers`: DDIM, DPM-Solver++(2M), UniPC and EVODiff at equal NFE, unguided class-conditional sampling.

Each solver's NFE equals its number of steps (one denoiser call per step, no CFG). Quality: Frechet distance
of class-balanced samples to as many held-out renders (floor alongside), and the RMSE of final images
against a 1000-step DDIM (eta = 0) solution from the same initial noise. Goal: EVODiff's FD at NFE 10
<= 0.75x DPM-Solver++'s. Where the backbone's scheduler config clips x0 (`clip_sample`, which only DDIM
and DDPM apply), DDIM also runs without clipping ("ddim, no clip"), to separate the solver from the clipping.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from guidance.worlds import World

from ..common import Options, Rows, SuiteOutput, balanced, generate, goal, images_of, realism, timing, warm_up
from ..metrics import rmse

SOLVERS = ("ddim", "dpmsolver++", "unipc", "evodiff")
REFERENCE_SEED = 500


NEEDS = ()

@dataclass(frozen=True)
class Plan:
    nfes: tuple[int, ...]
    samples: int  # for the Frechet distance
    reference_samples: int  # compared with the 1000-step solution (0: no reference)
    reference_steps: int = 1000
    batch: int = 16


PLANS = {
    "quick": Plan(nfes=(5, 10), samples=40, reference_samples=2),
    "full": Plan(nfes=(5, 6, 8, 10, 12, 15, 20), samples=100, reference_samples=8),
    "quick-sd": Plan(nfes=(5,), samples=1, reference_samples=0),
    "full-sd": Plan(nfes=(5, 10, 20), samples=1, reference_samples=0),
}


def run(world: World, opts: Options) -> SuiteOutput:
    plan = opts.plan(PLANS)
    names = world.backbone.class_names or (None,)
    conditions, reference_conditions = balanced(names, plan.samples), balanced(names, plan.reference_samples)
    reference = None
    if plan.reference_samples:
        reference = images_of(generate(world, "plain", reference_conditions, steps=plan.reference_steps, seed=REFERENCE_SEED))
    rows = Rows("solvers")
    runs = [(solver, solver, False) for solver in SOLVERS]
    if world.backbone.scheduler_config.get("clip_sample"):
        runs.append(("ddim, no clip", "ddim", True))
    for label, solver, unclip in runs:
        with unclipped(world, unclip):
            warm_up(world, "plain", names[0], scheduler=solver)
            for nfe in plan.nfes:
                results = generate(world, "plain", conditions, steps=nfe, scheduler=solver, batch=plan.batch)
                row = {"task": "class", "method": label, **timing(results)}
                if opts.embedded:
                    row |= realism(world, images_of(results))
                if reference is not None:
                    approx = generate(world, "plain", reference_conditions, steps=nfe, scheduler=solver, seed=REFERENCE_SEED)
                    row["rmse_ref"] = rmse(images_of(approx), reference)
                rows.append(row)
    notes = [] if reference is not None else ["no 1000-step reference on this backbone (too slow here)"]
    if len(runs) > len(SOLVERS):
        notes.append("the scheduler config has clip_sample=True: DDIM (and the 1000-step DDIM reference) clip x0 "
                     "to [-1, 1] at every step, the multistep solvers do not")  # fmt: skip
    return SuiteOutput(rows, goals(rows), config=asdict(plan), notes=notes)


@contextmanager
def unclipped(world: World, active: bool) -> Iterator[None]:
    """The backbone's scheduler config with `clip_sample` off (when active), restored afterwards."""
    config = world.backbone.scheduler_config
    saved = config.get("clip_sample")
    if active:
        config["clip_sample"] = False
    try:
        yield
    finally:
        if active:
            config["clip_sample"] = saved


def goals(rows: list[dict]) -> list[dict]:
    at10 = {r["method"]: r for r in rows if r["nfe"] == 10 and "fd" in r}
    if not {"evodiff", "dpmsolver++"} <= set(at10):
        return []
    ratio = at10["evodiff"]["fd"] / at10["dpmsolver++"]["fd"]
    return [goal("EVODiff FD at NFE 10 relative to DPM-Solver++", "<= 0.75x", ratio, ratio <= 0.75, "x")]

"""`solvers`: DDIM, DPM-Solver++(2M), UniPC and EVODiff at equal NFE, unguided class-conditional sampling.

Each solver's NFE equals its number of steps (one denoiser call per step, no CFG). Quality: Frechet distance
of class-balanced samples to as many held-out renders (floor alongside), and the RMSE of final images
against a 1000-step (quick: 200-step) DDIM (eta = 0) solution from the same initial noise. Goal: EVODiff's FD at NFE 10
<= 0.75x DPM-Solver++'s.

Every solver clips x0 as the backbone's scheduler config says (guidance.scheduler_steps.make_scheduler); where
the config clips (`clip_sample`, the embedded world), the whole sweep and its reference also run without
clipping (rows with x0_clip False): that is the probability-flow ODE the solvers' papers are about. The
full plan adds EVODiff at `ode_nfe` steps, a near-exact ODE solution, so that the FD of the ODE itself
is known. With --grid, a labelled sample grid: the same noise through every solver at NFE 10 (and the
near-exact ODE solution), under each clipping mode, above held-out renders.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from torch import Tensor

from guidance.worlds import World

from ..common import Options, Rows, SuiteOutput, balanced, generate, goal, images_of, realism, renders, timing, warm_up
from ..metrics import rmse
from ..plots import labelled_rows

SOLVERS = ("ddim", "dpmsolver++", "unipc", "evodiff")
REFERENCE_SEED = 500
GRID_NFE, GRID_COLUMNS = 10, 10
NEEDS = ()


@dataclass(frozen=True)
class Plan:
    nfes: tuple[int, ...]
    samples: int  # for the Frechet distance
    reference_samples: int  # compared with the 1000-step solution (0: no reference)
    reference_steps: int = 1000
    ode_nfe: int | None = None  # EVODiff at this NFE as the ODE's own solution (None: not run)
    batch: int = 16


PLANS = {
    "quick": Plan(nfes=(5, 10), samples=16, reference_samples=1, reference_steps=200),
    "full": Plan(nfes=(5, 6, 8, 10, 12, 15, 20), samples=48, reference_samples=4, ode_nfe=50),
    "quick-sd": Plan(nfes=(5,), samples=1, reference_samples=0),
    "full-sd": Plan(nfes=(5, 10, 20), samples=1, reference_samples=0),
}


def run(world: World, opts: Options) -> SuiteOutput:
    plan = opts.plan(PLANS)
    clip_modes = (True, False) if world.backbone.scheduler_config.get("clip_sample") else (False,)
    rows, grid = Rows("solvers"), []
    for clip in clip_modes:
        with x0_clipping(world, clip):
            grid += sweep(world, opts, plan, clip, rows)
    images = []
    if grid:
        grid.append(("held-out renders", renders(GRID_COLUMNS, REFERENCE_SEED)[0]))
        images.append(str(labelled_rows(grid, opts.grid, "the same noise and class (one per column) in every sample row")))
    notes = [] if plan.reference_samples else ["no 1000-step reference on this backbone (too slow here)"]
    if len(clip_modes) > 1:
        notes.append("the scheduler config has clip_sample=True: rows with x0_clip true clip every solver's x0 "
                     "to [-1, 1], rows with x0_clip false solve the unclipped ODE. When clipping, DDIM keeps the "
                     "model's eps (diffusers' default) while the multistep solvers clamp their data prediction, so "
                     "only the unclipped rmse_ref measures convergence to one solution")  # fmt: skip
    return SuiteOutput(rows, goals(rows), config=asdict(plan), notes=notes, images=images)


def sweep(world: World, opts: Options, plan: Plan, clip: bool, rows: Rows) -> list[tuple[str, Tensor]]:
    """Every solver at every NFE (and EVODiff at ode_nfe) under one clipping mode; appends to `rows` and
    returns the grid rows (first samples at GRID_NFE and ode_nfe) when a grid was asked for."""
    names = world.backbone.class_names or (None,)
    conditions, reference_conditions = balanced(names, plan.samples), balanced(names, plan.reference_samples)
    reference = None
    if plan.reference_samples:
        reference = images_of(generate(world, "plain", reference_conditions, steps=plan.reference_steps, seed=REFERENCE_SEED))
    runs = [(solver, nfe) for solver in SOLVERS for nfe in plan.nfes] + ([("evodiff", plan.ode_nfe)] if plan.ode_nfe else [])
    grid = []
    for solver, nfe in runs:
        if nfe in (plan.nfes[0], plan.ode_nfe):
            warm_up(world, "plain", names[0], scheduler=solver)
        results = generate(world, "plain", conditions, steps=nfe, scheduler=solver, batch=plan.batch)
        row = {"task": "class", "method": solver, "x0_clip": clip, **timing(results)}
        if opts.embedded:
            row |= realism(world, images_of(results))
        if reference is not None:
            approx = generate(world, "plain", reference_conditions, steps=nfe, scheduler=solver, seed=REFERENCE_SEED)
            row["rmse_ref"] = rmse(images_of(approx), reference)
        rows.append(row)
        if opts.grid is not None and nfe in (GRID_NFE, plan.ode_nfe):
            grid.append((f"{solver}, NFE {nfe}\nx0 {'clipped' if clip else 'not clipped'}", images_of(results)[:GRID_COLUMNS]))
    return grid


@contextmanager
def x0_clipping(world: World, clip: bool) -> Iterator[None]:
    """The backbone's scheduler config with `clip_sample` set to `clip`, restored afterwards."""
    config = world.backbone.scheduler_config
    saved = config.get("clip_sample")
    config["clip_sample"] = clip
    try:
        yield
    finally:
        config["clip_sample"] = saved


def goals(rows: list[dict]) -> list[dict]:
    """EVODiff / DPM-Solver++ FD at NFE 10, for each clipping mode that was run."""
    found = []
    for clip in dict.fromkeys(r["x0_clip"] for r in rows):
        at10 = {r["method"]: r for r in rows if r["nfe"] == 10 and r["x0_clip"] == clip and "fd" in r}
        if {"evodiff", "dpmsolver++"} <= set(at10):
            ratio = at10["evodiff"]["fd"] / at10["dpmsolver++"]["fd"]
            name = f"EVODiff FD at NFE 10 relative to DPM-Solver++ (x0 {'clipped' if clip else 'not clipped'})"
            found.append(goal(name, "<= 0.75x", ratio, ratio <= 0.75, "x"))
    return found

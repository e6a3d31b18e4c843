"""`solvers`: DDIM, DPM-Solver++(2M), UniPC and EVODiff at equal NFE, unguided class-conditional sampling.

Each solver's NFE equals its number of steps (one denoiser call per step, no CFG). Every solver integrates the
probability-flow ODE from the same initial noise at the same start, t = T-1 (timestep_spacing "linspace", EVODiff's
own start; the configs' "leading" spacing would start DPM-Solver++ at 10 steps from t = 901 and at 200 steps from
t = 801). They do not all end at one level: DPM-Solver++ and UniPC end at the clean level (sigma = 0), while DDIM
(with set_alpha_to_one false, the configs we ship) and EVODiff (without its final denoising call) end at label 0,
sigma_0 = sqrt(1 - a_0), 0.029 here; decoded, the two ends differ by about as much as the solvers' errors at
NFE 10, so each solver is measured against the reference's solution at its own end.

Reconstruction error (EVODiff's claim): each sample's RMSE, over the final image's pixels, to a near-exact ODE
solution from the same noise and class: DPM-Solver++ at `reference_steps` steps ending at label 0
(final_sigmas_type "sigma_min"), and for the solvers that end clean, that solution's denoised estimate at label 0
(one more model call). Rows give the mean over `reference_samples` samples with a bootstrap 95% interval
(`rmse_ref`, `rmse_ref_ci`, `rmse_ref_n`) and the end they were measured at. The reference's own error is read
from the same solution at half the steps on one batch (`reference_check_rmse`, and a note). Goal: EVODiff's
reconstruction error at NFE 10 below DPM-Solver++'s (the ratio of the mean errors, sample by sample from the same
noise; a three-way verdict from its bootstrap interval). Quality: the Frechet distance of class-balanced samples
to as many held-out renders (floor alongside), with the goal EVODiff's FD at NFE 10 <= 0.75x DPM-Solver++'s: a
verdict from FD_VERDICT_SAMPLES samples on (the full plan), indicative below (the quick plan's FD measures
sampling noise). Where `samples` equals `reference_samples` the same images serve both.

Every solver clips x0 as the backbone's scheduler config says (guidance.schedulers.adapters.make_scheduler); where
the config clips (`clip_sample`), the whole sweep and its reference also run without clipping (rows with x0_clip
False): that is the probability-flow ODE the solvers' papers are about. The full plan adds EVODiff at `ode_nfe`
steps, so that the FD of the ODE itself is known. With --grid, a labelled sample grid: the same noise through
every solver at NFE 10 (and at ode_nfe), under each clipping mode, above held-out renders.

One grid for every solver (--grids NAME,... or all; --data mixture): every solver, and EVODiff in each of the
official sampler's options, runs on the same time grid (uniform in time, in log-SNR, quadratic in time, EDM's
rho = 7, or "own": each solver's own, as above) from the same noise, and every run but "own" ends at label 0. The
error is each sample's L2 distance (the latents' on the embedded world, the points' on the mixture) to the exact
ODE solution at the run's end: DDIM through every label (every `reference_stride`-th on the quick world plan), on
the mixture also `refine` steps per label interval, where its denoiser is exact (guidance/worlds/mixture.py).
Rows give the mean over samples with its bootstrap 95% interval per grid, method and NFE; goals test EVODiff's
claim (-45% error against DPM-Solver++ at NFE 10) per grid, for the playground's EVODiff and its best option there
(guidance/bench/solver_grids.py; docs/methods.md, EVODiff).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from guidance import distributed
from guidance.bench.common import (
    FD_VERDICT_SAMPLES,
    Options,
    Rows,
    SuiteOutput,
    balanced,
    generate,
    goal_over,
    goal_told,
    images_of,
    realism,
    renders,
    timing,
    warm_up,
)
from guidance.bench.metrics import per_sample_rmse
from guidance.bench.solver_grids import GridPlan, best_evodiff, claim_goals, compare
from guidance.bench.plots import labelled_rows
from guidance.statistics import bootstrap_interval, ratio_of_means
from guidance.recording import decode_estimate
from guidance.vp_arithmetic import to_eps_and_x0
from guidance.schedulers.grids import GRIDS, SOLVERS
from guidance.worlds import World
from guidance.worlds.mixture import solver_paths

REFERENCE_SOLVER = "dpmsolver++"  # second order; at hundreds of steps to label 0 (its half-step check in the notes)
SPACING = "linspace"  # every solver starts at t = T-1
REFERENCE_SEED = 500
GOAL_NFE, GRID_NFE, GRID_COLUMNS = 10, 10, 10
NEEDS = ()
GRIDS_AND_DATA = True  # takes --grids and --data mixture
PATH_GRID, PATH_NFE, PATH_SAMPLES = "logsnr", 10, 8  # the mixture's teaching view: a few paths per solver


@dataclass(frozen=True)
class Plan:
    nfes: tuple[int, ...]
    samples: int  # for the Frechet distance (a verdict from FD_VERDICT_SAMPLES on, indicative below)
    reference_samples: int  # compared with the near-exact ODE solution (0: no reference)
    reference_steps: int = 500
    ode_nfe: int | None = None  # EVODiff at this NFE as the ODE's own solution (None: not run)
    batch: int = 16


PLANS = {
    "quick": Plan(nfes=(5, 10), samples=64, reference_samples=64, reference_steps=200),
    "full": Plan(nfes=(5, 6, 8, 10, 12, 15, 20), samples=1000, reference_samples=256, ode_nfe=50),
    "quick-sd": Plan(nfes=(5,), samples=1, reference_samples=0),
    "full-sd": Plan(nfes=(5, 10, 20), samples=1, reference_samples=0),
}


GRID_PLANS = {
    "mixture-quick": GridPlan(nfes=(5, 6, 8, 10, 12, 15, 20), samples=64, refine=4),
    "mixture-full": GridPlan(nfes=(5, 6, 8, 10, 12, 15, 20), samples=256, refine=8),
    "embedded-quick": GridPlan(nfes=(6, 10), samples=32, reference_stride=2, batch=16),
    "embedded-full": GridPlan(nfes=(5, 6, 8, 10, 12, 15, 20), samples=64, batch=16),
}


def run(world: World, opts: Options) -> SuiteOutput:
    """Every solver at every NFE against a near-exact reference, under each clipping mode the config allows; with
    --grids or --data mixture, every solver on each shared grid against the exact ODE solution (`grid_run`) (the
    interface: guidance.bench.suites)."""
    if opts.time_grids or opts.data == "mixture":
        return grid_run(world, opts)
    plan = opts.plan(PLANS)
    clip_modes = (True, False) if world.backbone.scheduler_config.get("clip_sample") else (False,)
    rows, grid, errors, checks = Rows("solvers"), [], {}, {}
    for clip in clip_modes:
        with scheduler_config(world, clip_sample=clip, timestep_spacing=SPACING):
            found, check = sweep(world, opts, plan, clip, rows, errors)
        grid += found
        if check is not None:
            checks[clip] = check
    images = []
    if grid:
        grid.append(("held-out renders", renders(GRID_COLUMNS, REFERENCE_SEED)[0]))
        images.append(str(labelled_rows(grid, opts.grid, "the same noise and class (one per column) in every sample row")))
    notes = [reference_note(plan, clip, check) for clip, check in checks.items()] or [
        "no near-exact ODE reference on this backbone (too slow here)"
    ]
    if len(clip_modes) > 1:
        notes.append(
            "the scheduler config has clip_sample=True: rows with x0_clip true clip every solver's x0 "
            "to [-1, 1], rows with x0_clip false solve the unclipped ODE. When clipping, DDIM keeps the "
            "model's eps (diffusers' default) while the multistep solvers clamp their data prediction, so "
            "only the unclipped rmse_ref measures convergence to one solution"
        )
    config = asdict(plan) | {
        "reference_solver": REFERENCE_SOLVER,
        "timestep_spacing": SPACING,
        "reference_check_rmse": {str(clip).lower(): check for clip, check in checks.items()},
    }
    return SuiteOutput(rows, goals(rows, errors, plan), config=config, notes=notes, images=images)


def solve(world: World, conditions: list, nfe: int, solver: str, plan: Plan) -> Tensor:
    """Final images of `conditions` from the suite's noise (seed REFERENCE_SEED, batches of `plan.batch`).

    Args:
        world: where to sample.
        conditions: one class per sample.
        nfe: the solver's steps.
        solver: a SCHEDULERS name.
        plan: the batch size.
    """
    return images_of(generate(world, "plain", conditions, steps=nfe, scheduler=solver, seed=REFERENCE_SEED, batch=plan.batch))


def end_level(solver: str, config: dict) -> str:
    """Where a solver's last step lands: "clean" (sigma = 0) or "label 0" (sigma_0 = sqrt(1 - a_0)).

    Args:
        solver: a SCHEDULERS name.
        config: the backbone's scheduler config (DDIM's end depends on `set_alpha_to_one`).
    """
    if solver == "ddim":
        return "clean" if config.get("set_alpha_to_one") else "label 0"
    return "label 0" if solver == "evodiff" else "clean"


@contextmanager
def decoded_latents(world: World) -> Iterator[list[Tensor]]:
    """Records the latents the backbone's `decode` receives (an unguided run decodes only its final latents)."""
    backbone, seen = world.backbone, []
    decode, patched = backbone.decode, "decode" in vars(backbone)

    def recording(x0: Tensor) -> Tensor:
        seen.append(x0.detach())
        return decode(x0)

    backbone.decode = recording
    try:
        yield seen
    finally:
        if patched:
            backbone.decode = decode
        else:
            del backbone.decode


def reference(world: World, conditions: list, steps: int, plan: Plan) -> dict[str, Tensor]:
    """The near-exact ODE solution's images at both ends: DPM-Solver++ at `steps` steps to label 0, and that
    solution's denoised estimate at label 0 (x0 clipped where the config clips); batches as `solve` makes them,
    shared across launched processes.

    Args:
        world: where to sample.
        conditions: one class per sample.
        steps: DPM-Solver++'s steps.
        plan: the batch size.

    Returns:
        Images by end: "label 0" and "clean".
    """

    def run(batch_start: tuple[int, int]) -> tuple[Tensor, Tensor]:
        k, start = batch_start
        chunk = conditions[start : start + plan.batch]
        with scheduler_config(world, final_sigmas_type="sigma_min"), decoded_latents(world) as seen:
            at_label_0 = generate(
                world,
                "plain",
                chunk,
                steps=steps,
                scheduler=REFERENCE_SOLVER,
                seed=REFERENCE_SEED + k,
                batch=plan.batch,
                shard=False,
            )[0].images
        return at_label_0, denoised_at_label_0(world, seen[-1], chunk)

    ends = distributed.shard_map(run, list(enumerate(range(0, len(conditions), plan.batch))))
    return {"label 0": torch.cat([a for a, _ in ends]), "clean": torch.cat([c for _, c in ends])}


@torch.no_grad()
def denoised_at_label_0(world: World, latents: Tensor, conditions: list) -> Tensor:
    """Pixels of the denoiser's clean estimate at label 0 (clipped where the config clips).

    Args:
        world: its backbone denoises and decodes.
        latents: (B, *sample_shape) at label 0.
        conditions: one class per sample.
    """
    backbone, config = world.backbone, world.backbone.scheduler_config
    out = backbone.predict(latents, torch.tensor(0), backbone.embed(conditions))
    x0 = to_eps_and_x0(latents.float(), out, backbone.alpha(0), backbone.prediction_type)[1]
    if config.get("clip_sample"):
        limit = config.get("clip_sample_range", 1.0)
        x0 = x0.clamp(-limit, limit)
    return decode_estimate(backbone, x0)


def sweep(
    world: World, opts: Options, plan: Plan, clip: bool, rows: Rows, errors: dict
) -> tuple[list[tuple[str, Tensor]], dict[str, float] | None]:
    """Every solver at every NFE (and EVODiff at ode_nfe) under one clipping mode; appends to `rows`, puts each
    run's per-sample reconstruction errors in `errors[clip, solver, nfe]`, and returns the grid rows (first samples
    at GRID_NFE and ode_nfe) when a grid was asked for, and the reference's half-step check (None: no reference).

    Args:
        world: where to sample.
        opts: the suite's options (embedded: realism rows; grid: whether to keep grid rows).
        plan: NFEs, samples and the reference's size.
        clip: the clipping mode the scheduler config is set to.
        rows: the suite's rows, appended to.
        errors: filled by (clip, solver, nfe).
    """
    names = world.backbone.class_names or (None,)
    conditions, reference_conditions = balanced(names, plan.samples), balanced(names, plan.reference_samples)
    references, check = None, None
    if plan.reference_samples:
        references = reference(world, reference_conditions, plan.reference_steps, plan)
        check = reference_check(world, plan, references)
    runs = [(solver, nfe) for solver in SOLVERS for nfe in plan.nfes] + ([("evodiff", plan.ode_nfe)] if plan.ode_nfe else [])
    grid = []
    for solver, nfe in runs:
        if nfe in (plan.nfes[0], plan.ode_nfe):
            warm_up(world, "plain", names[0], scheduler=solver)
        results = generate(world, "plain", conditions, steps=nfe, scheduler=solver, seed=REFERENCE_SEED, batch=plan.batch)
        row = {"task": "class", "method": solver, "x0_clip": clip, **timing(results)}
        if opts.embedded:
            row |= realism(world, images_of(results))
        if references is not None:
            same = plan.reference_samples == plan.samples
            approx = images_of(results) if same else solve(world, reference_conditions, nfe, solver, plan)
            end = end_level(solver, world.backbone.scheduler_config)
            errors[clip, solver, nfe] = per_sample_rmse(approx, references[end])
            row |= error_row(errors[clip, solver, nfe]) | {"end": end}
        rows.append(row)
        if opts.grid is not None and nfe in (GRID_NFE, plan.ode_nfe):
            grid.append((f"{solver}, NFE {nfe}\nx0 {'clipped' if clip else 'not clipped'}", images_of(results)[:GRID_COLUMNS]))
    return grid, check


def error_row(errors: list[float]) -> dict:
    """The mean reconstruction error over samples, its bootstrap 95% interval and the number of samples."""
    interval = bootstrap_interval(errors)
    return {
        "rmse_ref": sum(errors) / len(errors),
        "rmse_ref_ci": None if interval is None else list(interval),
        "rmse_ref_n": len(errors),
    }


def reference_check(world: World, plan: Plan, references: dict[str, Tensor]) -> dict[str, float]:
    """At each end, the mean per-sample RMSE between the reference at half its steps and at its steps, on its
    first batch (the same conditions and noise as the reference's first batch).

    Args:
        world: where to sample.
        plan: the reference's steps and samples, and the batch.
        references: the reference's images by end (`reference`).
    """
    first = min(plan.batch, plan.reference_samples)
    half = reference(world, balanced(world.backbone.class_names or (None,), first), plan.reference_steps // 2, plan)
    return {end: statistics.fmean(per_sample_rmse(half[end], images[:first])) for end, images in references.items()}


def reference_note(plan: Plan, clip: bool, check: dict[str, float]) -> str:
    """How near the reference is to the exact solution, from its half-step check.

    Args:
        plan: the reference's steps and samples.
        clip: the clipping mode.
        check: from `reference_check`.
    """
    differences = ", ".join(f"{value:.2g} at {end}" for end, value in check.items())
    return (
        f"x0 {'clipped' if clip else 'not clipped'}: the reference is DPM-Solver++(2M) at {plan.reference_steps} steps "
        f"to label 0; at {plan.reference_steps // 2} steps it differs from it by a mean RMSE of {differences} over "
        f"{min(plan.batch, plan.reference_samples)} samples: about the reference's own error at first-order "
        f"convergence, a third of it at second order. By the triangle inequality every rmse_ref lies within the "
        f"reference's error of the distance to the exact solution"
    )


@contextmanager
def scheduler_config(world: World, **options) -> Iterator[None]:
    """The backbone's scheduler config with `options` set, restored afterwards (keys it lacked removed again)."""
    config = world.backbone.scheduler_config
    saved = {key: config[key] for key in options if key in config}
    config.update(options)
    try:
        yield
    finally:
        for key in options:
            config.pop(key)
        config.update(saved)


def goals(rows: list[dict], errors: dict, plan: Plan) -> list[dict]:
    """At NFE 10, for each clipping mode that was run: EVODiff's reconstruction error over DPM-Solver++'s (< 1, per
    sample from the same noise), and EVODiff's FD over DPM-Solver++'s (<= 0.75; indicative below
    FD_VERDICT_SAMPLES samples).

    Args:
        rows: the suite's rows.
        errors: per-sample reconstruction errors by (clip, solver, nfe).
        plan: the number of samples.
    """
    found = []
    for clip in dict.fromkeys(r["x0_clip"] for r in rows):
        mode = f"x0 {'clipped' if clip else 'not clipped'}"
        if (clip, "evodiff", GOAL_NFE) in errors and (clip, "dpmsolver++", GOAL_NFE) in errors:
            pairs = list(zip(errors[clip, "evodiff", GOAL_NFE], errors[clip, "dpmsolver++", GOAL_NFE]))
            found.append(
                goal_over(
                    f"EVODiff reconstruction error (RMSE to the near-exact ODE solution) at NFE {GOAL_NFE} over DPM-Solver++'s ({mode})",
                    pairs,
                    1.0,
                    "x",
                    strict=True,
                    statistic=ratio_of_means,
                )
            )
        at = {r["method"]: r for r in rows if r["nfe"] == GOAL_NFE and r["x0_clip"] == clip and "fd" in r}
        if {"evodiff", "dpmsolver++"} <= set(at):
            ratio = at["evodiff"]["fd"] / at["dpmsolver++"]["fd"]
            name = (
                f"EVODiff FD at NFE {GOAL_NFE} relative to DPM-Solver++ ({mode}; indicative below {FD_VERDICT_SAMPLES} samples)"
            )
            found.append(
                goal_told(
                    name, "<= 0.75x", ratio, ratio <= 0.75, "x", n=plan.samples, indicative=plan.samples < FD_VERDICT_SAMPLES
                )
            )
    return found


def grid_run(world: World, opts: Options) -> SuiteOutput:
    """Every solver and EVODiff option on each grid at every NFE against the exact ODE solution (module docstring).

    Args:
        world: the embedded world, or the mixture's (guidance.worlds.mixture.mixture_world).
        opts: the grids (all where none are named), the data and the mode.
    """
    data = "mixture" if opts.data == "mixture" else "embedded"
    plan = GRID_PLANS[f"{data}-{'quick' if opts.quick else 'full'}"]
    grids = opts.time_grids or GRIDS
    rows = Rows("solvers")
    conditions = balanced(world.backbone.class_names or (None,), plan.samples)
    _, errors, check = compare(world.backbone, conditions, grids, plan, rows.append)
    best = best_evodiff(errors, grids, plan.nfes)
    where = "mixture" if data == "mixture" else "embedded world"
    notes = [grid_reference_note(plan, check)] + [
        f"grid {grid}: EVODiff's best option here is '{best[grid]}' "
        f"(lowest geometric mean error over NFE {', '.join(map(str, plan.nfes))})"
        for grid in grids
    ]
    config = asdict(plan) | {
        "grids": list(grids),
        "data": data,
        "best_evodiff": best,
        "exact_check": check,
        "error": "per-sample L2 distance to the exact ODE solution",
    }
    if data == "mixture":
        teaching = solver_paths(SOLVERS, PATH_GRID, PATH_NFE, PATH_SAMPLES, backbone=world.backbone)
        config["paths"] = {
            "grid": PATH_GRID,
            "nfe": PATH_NFE,
            "points": {k: v.tolist() for k, v in teaching.items()},
            "means": world.backbone.mixture.means.tolist(),
        }
    return SuiteOutput(rows, claim_goals(errors, grids, plan.nfes, where), config=config, notes=notes)


def grid_reference_note(plan: GridPlan, check: dict[str, float]) -> str:
    """How near the exact solution is, from its half-step check.

    Args:
        plan: its resolution.
        check: from guidance.bench.solver_grids.exact_check.
    """
    resolution = f"every {plan.reference_stride}-th label" if plan.reference_stride > 1 else "every label"
    refine = f", {plan.refine} steps per label interval uniform in log-SNR" if plan.refine > 1 else ""
    differences = ", ".join(f"{value:.2g} at {end}" for end, value in check.items())
    return (
        f"the exact ODE solution is DDIM (float64 updates) through {resolution}{refine}; at half its steps it "
        f"differs from it by a mean L2 distance of {differences} over {min(plan.batch, plan.samples)} samples: "
        f"about its own error (first order)"
    )

"""`preview`: what live previews cost. The app's face run, preview off (run_task) against preview on (stream_task
with x0_hat kept at `snapshots` steps, each frame drawn as the app draws it: gallery images decoded, the energy plot
as PNG, and the trajectory strip after the run), in pairs of adjacent runs, alternating which goes first. Goal: the
median of the pairs' time ratios (robust to a shared machine's changing load) at most 1.10.
"""

from __future__ import annotations

import io
import statistics
import time
from dataclasses import asdict, dataclass, replace

from guidance.bench.common import Options, Rows, SuiteOutput, goal_told, progress, reference_images, task_request
from guidance.playground.preview import Frame, stream_task
from guidance.playground.tasks import TaskOutcome, run_task
from guidance.playground.views import trajectory_strip
from guidance.worlds import World

NEEDS = ("face_embedder",)


@dataclass(frozen=True)
class Plan:
    methods: tuple[str, ...] = ("freedom", "figd", "figd+dsg")
    steps: int = 20
    snapshots: int = 8
    repeats: int = 5
    eta: float = 0.5


PLANS = {
    "quick": Plan(repeats=2),
    "full": Plan(),
    "quick-sd": Plan(steps=4, snapshots=4, repeats=1),
    "full-sd": Plan(steps=10, repeats=2),
}


def watched(world: World, request) -> float:
    """Wall seconds of a run with its preview drawn frame by frame, as the app draws it.

    Args:
        world: where to sample.
        request: the run (its `snapshots` set the frames).
    """
    start = time.perf_counter()
    for item in stream_task(world, request):
        if isinstance(item, Frame):
            item.gallery(request.steps)
            item.energy_figure().savefig(io.BytesIO(), format="png")
        elif isinstance(item, TaskOutcome):
            trajectory_strip(item.results).save(io.BytesIO(), format="png")
    return time.perf_counter() - start


def unwatched(world: World, request) -> float:
    """Wall seconds of the same run without a preview."""
    start = time.perf_counter()
    run_task(world, request)
    return time.perf_counter() - start


def run(world: World, opts: Options) -> SuiteOutput:
    """The face tab's run with the preview off and on, in alternating pairs (the interface: guidance.bench.suites)."""
    plan = opts.plan(PLANS)
    base = task_request(
        world, "face", plan.methods[0], reference_images(world.backbone.image_size), steps=plan.steps, samples=1, eta=plan.eta
    )
    base = replace(base, methods=list(plan.methods))
    unwatched(world, replace(base, steps=2))  # warm-up, untimed
    seconds: dict[str, list[float]] = {"off": [], "on": []}
    for repeat in range(opts.seeds or plan.repeats):
        for mode in ("off", "on") if repeat % 2 == 0 else ("on", "off"):
            request = replace(base, seed=repeat, snapshots=plan.snapshots if mode == "on" else 0)
            seconds[mode].append((watched if mode == "on" else unwatched)(world, request))
            progress(f"preview {mode}, repeat {repeat + 1}: {seconds[mode][-1]:.2f} s")
    rows = Rows("preview")
    for mode, times in seconds.items():
        rows.append(
            {"task": "face", "method": f"preview {mode}", "steps": plan.steps, "seconds": statistics.median(times), "runs": times}
        )
    ratios = [on / off for on, off in zip(seconds["on"], seconds["off"])]
    ratio = statistics.median(ratios)
    rows[1]["pair_ratios"] = [round(r, 3) for r in ratios]
    goals = [goal_told("total time, preview on / off (median of pairs)", "<= 1.10x", ratio, ratio <= 1.10, "x")]
    return SuiteOutput(
        rows, goals, config=asdict(plan), notes=[f"{len(plan.methods)} methods x {plan.steps} steps per run, timed as whole runs"]
    )

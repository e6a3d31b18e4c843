"""`figd`: FreeDoM vs FIGD, each alone and with DSG, on the face-ID, style and control-map tasks.

All four methods run the task's preset (guidance.playground.tasks.PRESETS) with the same DDIM eta (DSG needs eta > 0),
the same steps and the same seeds, taking turns within each seed. Goal: FIGD >= 2x faster per image than FreeDoM, final energy no worse
(FIGD's mean minus FreeDoM's, image by image from the same noise, <= FreeDoM's spread over seeds). The speed-up is
given by wall time and by the process's CPU time, which on a CPU shared with other jobs leaves out the waiting; its
interval is a bootstrap over the seeds (each a round in which the methods take turns), the energy's over the images.
Where the world has a tiny decoder, the methods of
`tiny` run again with it on the guidance path ("... tiny-decoder" rows; final images and energies from the full
VAE), with the same goals for FIGD with it against FreeDoM without it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from guidance.bench.common import Options, Rows, SuiteOutput, energies, goal_over, reference_images, task_request, timing
from guidance.statistics import mean_difference, ratio_of_means
from guidance.playground.tasks import run_task
from guidance.sampling import SamplingResult
from guidance.worlds import World

NEEDS = ("face_embedder", "style_features")

TASKS = ("face", "style", "control")
METHODS = ("freedom", "figd", "freedom+dsg", "figd+dsg")


@dataclass(frozen=True)
class Plan:
    steps: int
    samples: int  # images per run
    seeds: int
    eta: float = 1.0
    tasks: tuple[str, ...] = TASKS
    methods: tuple[str, ...] = METHODS
    tiny: tuple[str, ...] = ("freedom", "figd")  # also run with the tiny decoder on the guidance path


PLANS = {
    "quick": Plan(steps=20, samples=2, seeds=2),
    "full": Plan(steps=50, samples=4, seeds=3),
    "quick-sd": Plan(steps=3, samples=1, seeds=1, tasks=("face",), methods=("freedom", "figd")),
    "full-sd": Plan(steps=5, samples=1, seeds=1),
}


def run(world: World, opts: Options) -> SuiteOutput:
    """Per task, every method (and FIGD with the tiny decoder, where the world has one) over seeds, interleaved
    (the interface: guidance.bench.suites)."""
    plan = opts.plan(PLANS)
    seeds = opts.seeds or plan.seeds
    references = reference_images(world.backbone.image_size)
    rows = Rows("figd")
    tiny = plan.tiny if world.backbone.tiny_decoder is not None else ()
    variants = {m: (m, {}) for m in plan.methods} | {f"{m} tiny-decoder": (m, {"tiny_decoder": True}) for m in tiny}
    runs = {}
    for task in plan.tasks:
        for label, results in interleaved(world, task, variants, references, seeds, plan).items():
            rows.append(
                {"task": task, "method": label, **timing(results), **energies(results), "samples": plan.samples, "seeds": seeds}
            )
            runs[task, label] = results
    return SuiteOutput(
        rows, goals(rows, runs, plan.tasks, bool(tiny)), config={**asdict(plan), "tiny": list(tiny), "seeds": seeds}
    )


def interleaved(world: World, task: str, variants: dict, references: dict, seeds: int, plan: Plan) -> dict[str, list]:
    """Each variant's result per seed, the variants taking turns within each seed (a drifting load on a shared
    machine then slows them alike), after an untimed 2-step warm-up of each.

    Args:
        world: where to sample.
        task: "face", "style" or "control".
        variants: by label, (method, settings overrides).
        references: by task, from `reference_images`.
        seeds: seeds 0 to seeds - 1.
        plan: steps, samples and eta.

    Returns:
        By label, one result per seed.
    """
    requests = {
        label: task_request(world, task, method, references, steps=plan.steps, samples=plan.samples, eta=plan.eta, **options)
        for label, (method, options) in variants.items()
    }
    for request in requests.values():
        run_task(world, replace(request, steps=2, samples=1))
    results = {label: [] for label in requests}
    for seed in range(seeds):
        for label, request in requests.items():
            results[label].append(run_task(world, replace(request, seed=seed)).results[0][1])
    return results


def per_image(results: list[SamplingResult], key: str) -> list[float]:
    """Each run's seconds per image, in seed order.

    Args:
        results: one run per seed.
        key: "seconds" (wall) or "cpu_seconds" (the process's CPU time) of its steps.
    """
    return [sum(getattr(step, key) for step in r.steps) / len(r.images) for r in results]


def goals(
    rows: list[dict], runs: dict[tuple[str, str], list[SamplingResult]], tasks: tuple[str, ...], tiny: bool = False
) -> list[dict]:
    """Per task: FreeDoM / FIGD seconds per image (>= 2, over seeds), and FIGD's final energy against FreeDoM's (image
    by image); the same for FIGD with the tiny decoder against FreeDoM with the full one, where the tiny decoder ran.

    Args:
        rows: the suite's rows.
        runs: by (task, label), one result per seed.
        tasks: the tasks run.
        tiny: whether the tiny-decoder variant ran.
    """
    found = []
    for task in tasks:
        by = {r["method"]: r for r in rows if r["task"] == task}
        for figd, name in [("figd", "FIGD")] + [("figd tiny-decoder", "FIGD with the tiny decoder")] * tiny:
            freedom, row = runs[task, "freedom"], runs[task, figd]
            for key, kind in (("seconds", ""), ("cpu_seconds", " (process CPU time)")):
                pairs = list(zip(per_image(freedom, key), per_image(row, key)))
                found.append(
                    goal_over(
                        f"{task}: {name} speed-up over FreeDoM{kind}",
                        pairs,
                        2.0,
                        "x",
                        higher_is_better=True,
                        statistic=ratio_of_means,
                        over="seeds",
                    )
                )
            pairs = list(zip(*(flatten(r.final_energy for r in results) for results in (row, freedom))))
            margin = by["freedom"]["energy_std"]
            found.append(
                goal_over(
                    f"{task}: {name} final energy no worse (minus FreeDoM's)",
                    pairs,
                    margin,
                    statistic=mean_difference,
                    context="FreeDoM's spread over seeds",
                )
            )
    return found


def flatten(lists) -> list[float]:
    """The values of every list, in order."""
    return [value for values in lists for value in values]

"""`figd`: FreeDoM vs FIGD, each alone and with DSG, on the face-ID, style and control-map tasks.

All four methods run the task's preset (guidance.tasks.PRESETS) with the same DDIM eta (DSG needs eta > 0),
the same steps and the same seeds. Goal: FIGD >= 2x faster per image than FreeDoM, final energy no worse
(FIGD's mean <= FreeDoM's mean + FreeDoM's spread over seeds). Where the world has a tiny decoder, the methods of
`tiny` run again with it on the guidance path ("... tiny-decoder" rows; final images and energies from the full
VAE), with the same goals for FIGD with it against FreeDoM without it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from guidance.worlds import World

from ..common import Options, Rows, SuiteOutput, goal, reference_images, task_row


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
    plan = opts.plan(PLANS)
    seeds = opts.seeds or plan.seeds
    references = reference_images(world.backbone.image_size)
    rows = Rows("figd")
    tiny = plan.tiny if world.backbone.tiny_decoder is not None else ()
    for task in plan.tasks:
        for method, options in [(m, {}) for m in plan.methods] + [(m, {"tiny_decoder": True}) for m in tiny]:
            row, _ = task_row(world, task, method, references, seeds, steps=plan.steps, samples=plan.samples, eta=plan.eta, **options)
            label = f"{method} tiny-decoder" if options else method
            rows.append(row | {"method": label, "samples": plan.samples, "seeds": seeds})
    return SuiteOutput(rows, goals(rows, plan.tasks, bool(tiny)), config={**asdict(plan), "tiny": list(tiny), "seeds": seeds})


def goals(rows: list[dict], tasks: tuple[str, ...], tiny: bool = False) -> list[dict]:
    """Per task: FreeDoM / FIGD seconds per image (>= 2), and FIGD's energy against FreeDoM's; the same for FIGD with
    the tiny decoder against FreeDoM with the full one, where the tiny decoder ran."""
    found = []
    for task in tasks:
        by = {r["method"]: r for r in rows if r["task"] == task}
        for figd, name in [("figd", "FIGD")] + [("figd tiny-decoder", "FIGD with the tiny decoder")] * tiny:
            freedom, row = by["freedom"], by[figd]
            speedup = freedom["seconds_per_image"] / row["seconds_per_image"]
            found.append(goal(f"{task}: {name} speed-up over FreeDoM", ">= 2x", speedup, speedup >= 2, "x"))
            bound = freedom["energy"] + freedom["energy_std"]
            target = f"<= {bound:.4g} (FreeDoM mean + spread)"
            found.append(goal(f"{task}: {name} final energy no worse", target, row["energy"], row["energy"] <= bound))
    return found

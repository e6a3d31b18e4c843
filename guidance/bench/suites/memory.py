"""`memory`: peak memory and step time of each gradient method against an unguided step, with and without the
denoiser's gradient checkpointing.

    python -m guidance.bench memory --quick --backbone sd15-random --size 512 --json docs/figures/json/memory-sd15-random-quick.json
    python -m guidance.bench memory --plan no-cfg --backbone sdxl-random --size 256 --json docs/figures/json/memory-sdxl-random-no-cfg.json

FreeDoM and DPS keep every activation of the denoiser's forward for their backward pass; with gradient checkpointing
(diffusers' `enable_gradient_checkpointing`, Settings.checkpointing) the backward recomputes them block by block
instead. FIGD's denoiser runs under inference_mode and keeps none: its peak is the unguided step's plus the
decoder's backward. Each run samples one prompt, every step guided, with CFG 7.5 (the gpu suite's settings) or,
in the `no-cfg` plan, without CFG (one denoiser branch; CFG doubles the batch). The energy is the face-ID energy
where the world has a face embedder, else `MeanColour` on the decoded image. `peak_mem_mb` is the peak above the
start of the run, that is above the loaded weights (freed memory is handed back to the system before each run):
the CUDA allocator's peak, or on a CPU the process's peak resident set (guidance.recording.PeakMemory);
`peak_total_mb` adds every weight loaded; `peak_ratio` and `time_ratio` are each run's over the unguided step's.
It runs on any device, in the backbone's dtype: fp16 on CUDA, fp32 on a CPU, where activations take twice the bytes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import statistics
from dataclasses import asdict, dataclass, replace

import torch
from torch import Tensor

from guidance.bench.common import Options, Rows, SuiteOutput, generate, goal_told
from guidance.bench.suites.gpu import SETTINGS, face_energy, weights_mb
from guidance.energy import Energy
from guidance.playground.tasks.run import family_scheduler
from guidance.worlds import World

NEEDS = ("face_embedder", "classifier")
PROMPT = "a photo of a cat"  # where the world has no class names
NAMES = {"freedom": "FreeDoM", "dps": "DPS"}  # the methods that checkpointing is for
GUIDED = {  # label: (method, checkpointing)
    "freedom": ("freedom", False),
    "freedom checkpointed": ("freedom", True),
    "dps": ("dps", False),
    "dps checkpointed": ("dps", True),
    "figd": ("figd", False),
}


@dataclass(frozen=True)
class Plan:
    steps: int
    batch: int = 1
    cfg_scale: float = SETTINGS.cfg_scale


PLANS = {"quick": Plan(steps=2), "full": Plan(steps=4), "no-cfg": Plan(steps=2, cfg_scale=1.0)}


class MeanColour(Energy):
    """Distance of each image's mean colour to a target colour: a small energy on the decoded image, for worlds
    without face networks."""

    name = "mean colour"

    def __init__(self, target: tuple[float, float, float] = (0.8, -0.6, 0.2)):
        super().__init__()
        self.register_buffer("target", torch.tensor(target).view(1, 3))

    def forward(self, images: Tensor) -> Tensor:
        return (images.mean((2, 3)) - self.target.to(images.device)).norm(dim=1)


def run(world: World, opts: Options) -> SuiteOutput:
    """The unguided step, then each run in GUIDED, with its peak memory above the weights (the interface:
    guidance.bench.suites)."""
    plan = opts.plan(PLANS)
    settings = replace(SETTINGS, cfg_scale=plan.cfg_scale)
    unguided = "cfg" if plan.cfg_scale != 1 else "plain"
    task, energy = ("face", face_energy(world)) if world.face_embedder is not None else ("mean colour", MeanColour())
    condition = world.class_names[0] if world.class_names else PROMPT
    scheduler, weights = family_scheduler(world.backbone, "ddim", 1.0), weights_mb(world)

    def measure(label: str, method: str, checkpointing: bool, guided: bool) -> dict:
        release_memory()
        result = generate(
            world,
            method,
            [condition] * plan.batch,
            steps=plan.steps,
            settings=replace(settings, checkpointing=checkpointing),
            scheduler=scheduler,
            eta=1.0,
            energy=energy if guided else None,
        )[0]
        return {
            "task": task if guided else "unguided",
            "method": label,
            "steps": plan.steps,
            "peak_mem_mb": result.peak_mem_mb,
            "peak_total_mb": result.peak_mem_mb + weights,
            "ms_per_step": 1000 * statistics.median(s.seconds for s in result.steps),
        }

    generate(world, unguided, [condition], steps=1, settings=settings, scheduler=scheduler, eta=1.0)  # lazy set-up, unmeasured
    rows = Rows("memory")
    rows.append(measure(f"unguided ({unguided})", unguided, False, False))
    for label, (method, checkpointing) in GUIDED.items():
        rows.append(measure(label, method, checkpointing, True))
    for row in rows:
        row["peak_ratio"] = ratio(row["peak_mem_mb"], rows[0]["peak_mem_mb"])
        row["time_ratio"] = ratio(row["ms_per_step"], rows[0]["ms_per_step"])
    config = {
        **asdict(plan),
        "weights_mb": weights,
        "scheduler": scheduler,
        "energy": task,
        "dtype": str(world.backbone.dtype).removeprefix("torch."),
    }
    return SuiteOutput(
        rows, goals({row["method"]: row for row in rows}), config=config, notes=notes({row["method"]: row for row in rows})
    )


def goals(by: dict[str, dict]) -> list[dict]:
    """Checkpointing lowers FreeDoM's and DPS's peaks; FIGD's peak is below FreeDoM's.

    Args:
        by: the rows by method label.
    """
    found = []
    for method, name in NAMES.items():
        saved = ratio(by[f"{method} checkpointed"]["peak_mem_mb"], by[method]["peak_mem_mb"])
        found.append(goal_told(f"{name}'s peak with checkpointing vs without", "lower", saved, saved < 1, "x"))
    figd = ratio(by["figd"]["peak_mem_mb"], by["freedom"]["peak_mem_mb"])
    found.append(goal_told("FIGD's peak vs FreeDoM's (no backward through the denoiser)", "lower", figd, figd < 1, "x"))
    return found


def notes(by: dict[str, dict]) -> list[str]:
    """Each run's peak and step time as ratios to the unguided step's, and what checkpointing and FIGD save.

    Args:
        by: the rows by method label, the unguided step's first.
    """
    ratios = ", ".join(f"{label} {row['peak_ratio']:.2f}x" for label, row in by.items())
    lines = [f"peak memory above the weights over the unguided step's: {ratios}"]
    for method, name in NAMES.items():
        plain, checkpointed = by[method], by[f"{method} checkpointed"]
        lines.append(
            f"{name} checkpointed: {ratio(checkpointed['peak_mem_mb'], plain['peak_mem_mb']):.2f}x {name}'s peak "
            f"for {ratio(checkpointed['ms_per_step'], plain['ms_per_step']):.2f}x its step time"
        )
    saved = by["freedom"]["peak_mem_mb"] - by["figd"]["peak_mem_mb"]
    lines.append(
        f"FIGD: {ratio(by['figd']['peak_mem_mb'], by['freedom']['peak_mem_mb']):.2f}x FreeDoM's peak ({saved:.0f} MB less) "
        f"for {ratio(by['figd']['ms_per_step'], by['freedom']['ms_per_step']):.2f}x its step time"
    )
    return lines


def release_memory() -> None:
    """Collect garbage and hand freed heap memory back to the system (glibc's malloc_trim), so that a CPU run's
    peak resident set above its start counts the memory it needs, not only what earlier runs did not leave behind."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    library = ctypes.util.find_library("c")
    libc = ctypes.CDLL(library) if library else None
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def ratio(value: float, reference: float) -> float:
    """value / reference; NaN when the reference is 0 (a tiny world may allocate nothing new).

    Args:
        value: the figure compared.
        reference: what it is compared with.
    """
    return value / reference if reference > 0 else float("nan")

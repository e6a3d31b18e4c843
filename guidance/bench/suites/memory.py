"""`memory`: peak memory and step time of FreeDoM with and without the UNet's gradient checkpointing, and of FIGD.

    python -m guidance.bench memory --backbone sd15-random --size 512 --json docs/figures/json/memory-sd15-random-512-cpu.json

FreeDoM keeps every activation of the UNet's forward for its backward pass; with gradient checkpointing
(diffusers' `enable_gradient_checkpointing`, Settings.checkpointing) the backward recomputes them block by block
instead. FIGD's UNet runs under inference_mode and keeps none, so its peak is the floor the other two approach.
Each run samples one prompt with CFG 7.5 and the face-ID energy, every step guided (the gpu suite's settings).
`peak_mem_mb` is the peak above the loaded weights: the CUDA allocator's peak, or on a CPU the process's peak
resident set (guidance.recording.PeakMemory); `peak_total_mb` adds every weight loaded. It runs on any device, in the
backbone's dtype: fp16 on CUDA, fp32 on a CPU, where activations take twice the bytes. The gpu suite reports the same
three rows among its others; this suite is the one that also runs without a GPU.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, replace

from guidance.bench.common import Options, Rows, SuiteOutput, generate, goal_told
from guidance.bench.suites.gpu import SETTINGS, face_energy, weights_mb
from guidance.worlds import World

NEEDS = ("face_embedder", "classifier")
RUNS = {  # label: (method, settings)
    "freedom": ("freedom", SETTINGS),
    "freedom checkpointed": ("freedom", replace(SETTINGS, checkpointing=True)),
    "figd": ("figd", SETTINGS),
}


@dataclass(frozen=True)
class Plan:
    steps: int
    batch: int = 1


PLANS = {"quick": Plan(steps=2), "full": Plan(steps=4)}


def run(world: World, opts: Options) -> SuiteOutput:
    """Each run in RUNS once, with its peak memory above the weights (the interface: guidance.bench.suites)."""
    plan = opts.plan(PLANS)
    energy, weights, condition = face_energy(world), weights_mb(world), world.classifier.class_names[0]
    rows = Rows("memory")
    for label, (method, settings) in RUNS.items():
        result = generate(world, method, [condition] * plan.batch, steps=plan.steps, settings=settings, eta=1.0, energy=energy)[0]
        rows.append({
            "task": "face", "method": label, "steps": plan.steps, "ms_per_step": 1000 * statistics.median(s.seconds for s in result.steps),
            "peak_mem_mb": result.peak_mem_mb, "peak_total_mb": result.peak_mem_mb + weights,
        })  # fmt: skip
    by = {row["method"]: row for row in rows}
    saved, floor = (ratio(by[label]["peak_mem_mb"], by["freedom"]["peak_mem_mb"]) for label in ("freedom checkpointed", "figd"))
    cost = ratio(by["freedom checkpointed"]["ms_per_step"], by["freedom"]["ms_per_step"])
    goals = [goal_told("FreeDoM's peak with checkpointing vs without", "lower", saved, saved < 1, "x")]
    notes = [f"checkpointing: {saved:.2f}x FreeDoM's peak memory above the weights, for {cost:.2f}x its step time "
             f"(FIGD: {floor:.2f}x the memory)"]  # fmt: skip
    return SuiteOutput(rows, goals, config={**asdict(plan), "weights_mb": weights}, notes=notes)


def ratio(value: float, reference: float) -> float:
    """value / reference; NaN when the reference is 0 (a tiny world may allocate nothing new).

    Args:
        value: the figure compared.
        reference: what it is compared with.
    """
    return value / reference if reference > 0 else float("nan")

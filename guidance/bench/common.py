"""What the suites share: options, outputs, held-out renders, sampling helpers and rows from SamplingResults.

Timing conventions (every suite): `seconds_per_image` is the summed wall time of the timed sampling steps
divided by the number of images; `ms_per_step` is the wall time of one sampling step of a whole batch
(batch sizes are in each suite's config). Each method runs once untimed (2 steps) before it is measured.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from conditions.images import pixels_from_uint8, to_pil
from guidance import distributed
from guidance.bench.metrics import accuracy, confidence, features, frechet_distance, probabilities
from guidance.energy import Energy
from guidance.methods import Settings, build_method
from guidance.statistics import bootstrap_interval, verdict
from guidance.playground.tasks import TaskRequest, make_request, preset, run_task
from guidance.sampling import SamplingResult, sample
from guidance.worlds import World

ROW_KEYS = (
    "task",
    "method",
    "steps",
    "nfe",
    "seconds_per_image",
    "ms_per_step",
    "peak_mem_mb",
    "energy",
    "energy_std",
    "fd",
    "fd_floor",
    "accuracy",
    "id_distance",
    "edge_f1",
    "roc_auc",
)
REFERENCE_SEED, FD_SEEDS, CONTROL_SEED, ID_SEED = 7, (11, 12), 13, 14  # make_dataset seeds of held-out renders
WORLD_SPEED_BAR_S = 1.5  # the embedded world's speed: a batch of 4 unguided 25-step samples, decode included, on a 2-core CPU
# the one scale FreeDoM and FIGD share where a suite compares them at a shared step (strength None), by energy tab
SHARED_SCALE = {"face": 0.1, "style": 0.1, "control": 0.2}
FD_VERDICT_SAMPLES = 1000  # fewer samples: a Frechet distance goal is indicative (its sampling noise decides it)


class BenchUnavailable(Exception):
    """A suite cannot run here (e.g. `gpu` without CUDA); the CLI prints the message and exits non-zero."""


@dataclass
class Options:
    """How a suite runs (the command line's options).

    Args:
        backbone: "embedded", "sd15-random" or "sd15" (guidance.bench.loading.BACKBONES).
        device: "cpu" or "cuda".
        quick: the reduced plan.
        seeds: seeds per setting; None: the plan's default.
        image_size: pixels, for sd15-random; None: the backbone's default.
        world: the embedded world's folder; None: assets/world.
        grid: where the world and solvers suites write a sample grid, or None.
        plan_name: one of the suite's named plans instead of the mode's.
        time_grids: the solvers suite's shared time grids (guidance.schedulers.grids.GRIDS), or None: each
            solver's own, as the suite ran before grids.
        data: "embedded" (the backbone's world) or "mixture" (the solvers suite's Gaussian mixture with an exact
            denoiser, guidance/worlds/mixture.py).
    """

    backbone: str = "embedded"
    device: str = "cpu"
    quick: bool = False
    seeds: int | None = None
    image_size: int | None = None
    world: Path | None = None
    grid: Path | None = None
    plan_name: str | None = None
    time_grids: tuple[str, ...] | None = None
    data: str = "embedded"

    @property
    def embedded(self) -> bool:
        return self.backbone == "embedded"

    def plan(self, plans: dict):
        """The suite's plan: `plan_name` where given, else the mode's ("quick"/"full", with an "-sd" variant for
        Stable Diffusion backbones)."""
        if self.plan_name is not None:
            if self.plan_name not in plans:
                raise BenchUnavailable(f"no plan {self.plan_name!r} in this suite; its plans: {', '.join(plans)}")
            return plans[self.plan_name]
        mode = "quick" if self.quick else "full"
        return plans[mode if self.embedded or f"{mode}-sd" not in plans else f"{mode}-sd"]


@dataclass
class SuiteOutput:
    """Rows (keys from ROW_KEYS plus suite-specific ones), goal verdicts, the configuration used, notes, pictures
    written along the way (paths), and the backbone it ran on where that is not --backbone's (None: --backbone's)."""

    rows: list[dict]
    goals: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    backbone: str | None = None


def progress(message: str) -> None:
    """A progress line on stderr (stdout carries the results table), from the main process."""
    if distributed.is_main():
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Rows(list):
    """The rows of a suite; each appended row is also reported on stderr as it comes.

    Args:
        suite: the suite's name, which starts each progress line.
    """

    SHOWN = ("steps", "seconds_per_image", "ms_per_step", "energy", "fd", "accuracy", "edge_f1", "roc_auc", "error")

    def __init__(self, suite: str):
        super().__init__()
        self.suite = suite

    def append(self, row: dict) -> None:
        super().append(row)
        shown = ", ".join(f"{k} {row[k]:.4g}" for k in self.SHOWN if isinstance(row.get(k), (int, float)))
        progress(f"{self.suite}: {row.get('task')} / {row.get('method')}: {shown}")


VERDICTS = ("met", "not met", "undecided", "indicative")


def goal_told(
    name: str, target: str, measured: float, met: bool, unit: str = "", *, n: int | None = None, indicative: bool = False
) -> dict:
    """A goal whose verdict the suite decides itself: "met" or "not met" as told.

    Args:
        name: what is measured, as the report's table shows it.
        target: the goal as text ("<= 1.3x").
        measured: the figure.
        met: the verdict.
        unit: appended to the measured figure ("x", "%", " s").
        n: the sample size, where there is one.
        indicative: report without deciding (verdict "indicative").

    Returns:
        The goal as the JSON's `goals` hold it: goal, target, measured, met, verdict, n, over, interval, unit.
    """
    found = "indicative" if indicative else "met" if met else "not met"
    return _goal(name, target, measured, found, unit, n, None, "samples")


def goal_over(
    name: str,
    samples: Sequence,
    bar: float,
    unit: str = "",
    *,
    higher_is_better: bool = False,
    strict: bool = False,
    statistic: Callable[[np.ndarray], float] = np.mean,
    over: str = "samples",
    indicative: bool = False,
    context: str = "",
) -> dict:
    """A goal decided over samples: the figure is `statistic(samples)`, its interval the percentile bootstrap of
    `statistic` over the samples (or over timing rounds: `over` names them); the verdict is "met" when the interval
    lies wholly on the good side of `bar` (above it when `higher_is_better`; beyond it when `strict`), "not met" when
    wholly on the other side, "undecided" when it spans the bar or fewer than 2 samples give no interval. The target
    is the bar as text (">= 2x").

    Args:
        name: what is measured, as the report's table shows it.
        samples: values, or rows such as pairs, that the interval is bootstrapped over.
        bar: the threshold the interval is read against.
        unit: appended to the bar and the measured figure ("x", "%", " s").
        higher_is_better, strict: the good side of `bar`, and whether touching it counts.
        statistic: from the samples to the figure.
        over: what the samples are ("samples", "rounds").
        indicative: report the figure and interval without deciding.
        context: shown after the target, in brackets (a baseline's figure).

    Returns:
        The goal as `goal_told` returns it, with its interval.

    Example:

        goal_over("EVODiff RMSE over DPM-Solver++'s", list(zip(evodiff, dpm)), 1.0, "x", strict=True,
                  statistic=ratio_of_means)  # per-sample pairs from the same noise: target "< 1x"
    """
    data = np.asarray(samples, dtype=np.float64)
    interval = bootstrap_interval(data, statistic)
    found = "indicative" if indicative else verdict(interval, bar, higher_is_better, strict)
    target = f"{'>' if higher_is_better else '<'}{'' if strict else '='} {bar:.4g}{unit}" + (f" ({context})" if context else "")
    return _goal(name, target, statistic(data), found, unit, len(data), interval, over)


def _goal(name: str, target: str, measured: float, found: str, unit: str, n: int | None, interval, over: str) -> dict:
    """The goal's JSON entry."""
    return {
        "goal": name,
        "target": target,
        "measured": f"{measured:.4g}{unit}",
        "met": found == "met",
        "verdict": found,
        "n": n,
        "over": over if n is not None else None,
        "interval": None if interval is None else list(interval),
        "unit": unit,
    }


@lru_cache(maxsize=16)
def renders(n: int, seed: int, identities_per_class: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Held-out renders of the embedded world's renderer, class-balanced (cached).

    Args:
        n: how many.
        seed: make_dataset's seed (REFERENCE_SEED, FD_SEEDS, ...: a different seed gives a disjoint set).
        identities_per_class: how many face identities each class draws from; None: the renderer's default.

    Returns:
        (pixels (n, 3, 64, 64) in [-1, 1], class labels (n,), identity ids (n,)).
    """
    from guidance.worlds.embedded.renderer.dataset import make_dataset

    images, labels, ids, _ = make_dataset(n, seed=seed, split="heldout", identities_per_class=identities_per_class)
    pixels = pixels_from_uint8(images)
    return pixels, torch.from_numpy(labels), torch.from_numpy(ids)


def reference_images(size: int) -> dict[str, Image.Image]:
    """Held-out renders used as the face reference, the style image and the source of the control map.

    They are never made smaller than the renders' 64 px (Canny's annotator needs that much).
    """
    images, size = to_pil(renders(3, REFERENCE_SEED)[0]), max(size, 64)
    return {task: image.resize((size, size), Image.BICUBIC) for task, image in zip(("face", "style", "control"), images)}


def realism(world: World, images: Tensor) -> dict:
    """Frechet distance to as many held-out renders, its floor (two disjoint render sets), evaluator confidence.

    Args:
        world: the embedded world (its evaluator's features).
        images: (N, 3, H, W) samples in [-1, 1].

    Returns:
        {"fd", "fd_floor", "confidence"}.
    """
    n = len(images)
    real_a, real_b = (features(world.evaluator, renders(n, seed)[0]) for seed in FD_SEEDS)
    fd = frechet_distance(features(world.evaluator, images), real_a)
    floor = frechet_distance(real_a, real_b)
    return {"fd": fd, "fd_floor": floor, "confidence": confidence(probabilities(world.evaluator, images))}


def class_quality(world: World, images: Tensor, targets: Tensor) -> dict:
    """Evaluator accuracy of the requested classes and mean evaluator probability of them.

    Args:
        world: the world whose evaluator reads the images.
        images: (N, 3, H, W) in [-1, 1].
        targets: (N,) class indices.

    Returns:
        {"accuracy", "class_probability"}.
    """
    probs = probabilities(world.evaluator, images)
    return {"accuracy": accuracy(probs, targets), "class_probability": float(probs.gather(1, targets[:, None]).mean())}


# ----------------------------------------------------------------------------- sampling


def balanced(class_names: Sequence[str], n: int) -> list[str]:
    """n conditions cycling through the classes."""
    return [class_names[i % len(class_names)] for i in range(n)]


def generate(
    world: World,
    method: str,
    conditions: Sequence[str | None],
    *,
    steps: int,
    settings: Settings | None = None,
    scheduler: str = "ddim",
    eta: float = 0.0,
    seed: int = 0,
    batch: int = 16,
    control: Tensor | None = None,
    energy: Energy | None = None,
    shard: bool = True,
) -> list[SamplingResult]:
    """Samples for many conditions in batches (batch k uses seed + k); `control`: (N, 3, H, W) maps in [0, 1].

    Under `accelerate launch` (or torchrun) the batches are shared across the processes (`shard`; every process must
    call it alike) and every process gets every batch's result, the same as one process computes.

    Args:
        world: where to sample.
        method: a METHODS name ("cfg", "figd+dsg", ...).
        conditions: one class or prompt per sample (None: unconditional).
        steps, scheduler, eta: the sampler's.
        settings: the method's options (default Settings()).
        seed: the first batch's seed.
        batch: samples per call of `sample`.
        control: (N, 3, H, W) ControlNet maps in [0, 1], one per condition, or None.
        energy: the guidance energy of gradient methods, or None.
        shard: share the batches across launched processes.

    Returns:
        One result per batch, in order.
    """
    guidance = build_method(method, settings, world.classifier)

    def run(batch_start: tuple[int, int]) -> SamplingResult:
        k, start = batch_start
        maps = None if control is None else world.backbone.prepare_control(control[start : start + batch])
        chunk = list(conditions[start : start + batch])
        return sample(
            world.backbone, guidance, chunk, steps=steps, scheduler=scheduler, eta=eta, seed=seed + k, control=maps, energy=energy
        )

    batches = list(enumerate(range(0, len(conditions), batch)))
    return distributed.shard_map(run, batches) if shard else [run(b) for b in batches]


def warm_up(world: World, method: str, condition: str | None, settings: Settings | None = None, scheduler: str = "ddim") -> None:
    """An untimed 2-step run on every process, so that lazy initialisation is not measured.

    Args:
        world, method, settings, scheduler: as `generate` will be called with.
        condition: one class or prompt.
    """
    generate(world, method, [condition], steps=2, settings=settings, scheduler=scheduler, shard=False)


def images_of(results: Sequence[SamplingResult]) -> Tensor:
    """Every result's images, concatenated."""
    return torch.cat([r.images for r in results])


def timing(results: Sequence[SamplingResult]) -> dict:
    """steps, NFE per sample, seconds per image (wall, and the process's CPU seconds), ms per (batch) step, peak
    memory, over runs."""
    images = sum(len(r.images) for r in results)
    seconds, steps = sum(r.seconds for r in results), sum(len(r.steps) for r in results)
    cpu = sum(s.cpu_seconds for r in results for s in r.steps)
    return {
        "steps": len(results[0].steps),
        "nfe": results[0].nfe,
        "seconds_per_image": seconds / images,
        "cpu_seconds_per_image": cpu / images,
        "ms_per_step": 1000 * seconds / steps,
        "peak_mem_mb": max(r.peak_mem_mb for r in results),
    }


def energies(results: Sequence[SamplingResult]) -> dict:
    """Final energy: mean over runs (seeds) of each run's mean, its spread (stdev over runs), and the metric."""
    per_run = [statistics.fmean(r.final_energy) for r in results]
    row = {"energy": statistics.fmean(per_run), "energy_std": statistics.stdev(per_run) if len(per_run) > 1 else 0.0}
    name = results[0].metric_name
    if name in ROW_KEYS:
        row[name] = statistics.fmean(v for r in results for v in r.metric)
    return row


def request_inputs(task: str, image: Image.Image | None, use_controlnet: bool = True) -> dict:
    """The request fields that an energy tab's image fills: the control tab's source (annotated by Canny, fed to the
    ControlNet where `use_controlnet`), else the face or style reference."""
    if task == "control":
        return {"control_image": image, "annotator": "canny", "use_controlnet": use_controlnet}
    return {"reference": image}


def task_request(
    world: World, task: str, method: str, references: dict[str, Image.Image], *, steps: int, samples: int, eta: float, **settings
) -> TaskRequest:
    """A single-method, unconditional request of the app's face, style or control tab, with the task's preset
    settings at SHARED_SCALE (overridden by `settings`); the control map is Canny of the reference render, with the
    ControlNet.

    Args:
        world: the world (whether it has a ControlNet).
        task: "face", "style" or "control".
        method: one method of the task.
        references: by task, from `reference_images`.
        steps, samples, eta: the request's.
        settings: overrides of the task's preset.
    """
    return make_request(
        task=task,
        methods=[method],
        samples=samples,
        steps=steps,
        eta=eta,
        settings=preset(task, **({"scale": SHARED_SCALE[task]} | settings)),
        **request_inputs(task, references[task], world.backbone.has_controlnet),
    )


def run_seeds(world: World, request: TaskRequest, seeds: int) -> list[SamplingResult]:
    """One result per seed of a single-method request, after an untimed 2-step warm-up; the seeds are shared
    across the launched processes.

    Args:
        world: where to sample.
        request: a request with one method.
        seeds: seeds 0 to seeds - 1.
    """
    run_task(world, replace(request, steps=2, samples=1))
    return distributed.shard_map(lambda seed: run_task(world, replace(request, seed=seed)).results[0][1], range(seeds))


def task_row(
    world: World,
    task: str,
    method: str,
    references: dict[str, Image.Image],
    seeds: int,
    *,
    steps: int,
    samples: int,
    eta: float,
    **settings,
) -> tuple[dict, list[SamplingResult]]:
    """A task tab's method over seeds: the row (task, method, timing, final energy) and the results.

    Args:
        world, task, method, references, steps, samples, eta, settings: as `task_request` takes them.
        seeds: seeds 0 to seeds - 1 (`run_seeds`).
    """
    request = task_request(world, task, method, references, steps=steps, samples=samples, eta=eta, **settings)
    results = run_seeds(world, request, seeds)
    return {"task": task, "method": method, **timing(results), **energies(results)}, results

"""What a sampling run measures, apart from its math: per-step records, the run's result, peak memory, and the
`Recorder` that guidance.sampling.sample reports to (wall and CPU time between CUDA-synchronised clocks, denoiser
evaluations, the energy of each step's clean estimate, snapshots of it, the final decode and figures).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import psutil
import torch
from torch import Tensor

from guidance.backbone import Backbone
from guidance.energy import Energy
from guidance.errors import DeviceOutOfMemoryError
from guidance.methods import Prediction, StepContext

STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")  # Linux: peak RSS, and its reset


@dataclass
class StepRecord:
    """One sampling step, with its time-travel repeats.

    Attributes:
        index: the step's index, 0 the first.
        timestep: its integer timestep.
        seconds: wall seconds.
        nfe: denoiser evaluations per sample.
        energy: energy of x0_hat per sample (None: no energy).
        cpu_seconds: the process's CPU seconds (on a CPU that other jobs share, the work done, which the wall time
            overstates by the waiting).
    """

    index: int
    timestep: int
    seconds: float
    nfe: float
    energy: list[float] | None = None
    cpu_seconds: float = 0.0


@dataclass
class SamplingResult:
    """A run's outputs.

    Attributes:
        images: (B, 3, H, W) in [-1, 1], float32, on the CPU.
        method: the method's name.
        scheduler: the scheduler's name.
        steps: one record per step run.
        seconds: the sampling steps' wall time.
        decode_seconds: the final decode to pixels.
        nfe: denoiser evaluations per sample.
        peak_mem_mb: the peak memory above the run's start (`PeakMemory`).
        final_energy: E(c, x) of the final images.
        metric: the energy's user-facing metric of the final images.
        metric_name: its name.
        extra_metrics: further figures of the final images, by name.
        cancelled: whether the run stopped early.
        options: the method's options and the noise rule, for reports.
        trajectory: (step index, x0_hat decoded) at snapshot steps.
    """

    images: Tensor
    method: str
    scheduler: str
    steps: list[StepRecord] = field(default_factory=list)
    seconds: float = 0.0
    decode_seconds: float = 0.0
    nfe: float = 0.0
    peak_mem_mb: float = 0.0
    final_energy: list[float] | None = None
    metric: list[float] | None = None
    metric_name: str | None = None
    extra_metrics: dict[str, list[float]] = field(default_factory=dict)
    cancelled: bool = False
    options: dict = field(default_factory=dict)
    trajectory: list[tuple[int, Tensor]] = field(default_factory=list)

    @property
    def ms_per_step(self) -> list[float]:
        """Each step's wall time in milliseconds."""
        return [1000 * s.seconds for s in self.steps]

    @property
    def energy_per_step(self) -> list[float | None]:
        """Each step's energy of x0_hat, averaged over the samples (None where none was measured)."""
        return [None if s.energy is None else sum(s.energy) / len(s.energy) for s in self.steps]

    def to_dict(self) -> dict:
        """Time, NFE, per-step timings and energies, final metric and options: JSON-ready, without the images."""
        return {
            "seconds": self.seconds,
            "nfe": self.nfe,
            "steps": len(self.steps),
            "ms_per_step": self.ms_per_step,
            "nfe_per_step": [step.nfe for step in self.steps],
            "energy_per_step": self.energy_per_step,
            "metric_name": self.metric_name,
            "metric": self.metric,
            "extra_metrics": self.extra_metrics,
            "final_energy": self.final_energy,
            "peak_mem_mb": self.peak_mem_mb,
            "cancelled": self.cancelled,
            "options": self.options,
        }


def combine(results: Sequence[SamplingResult]) -> SamplingResult:
    """One method's runs from several seeds as one result: images and per-sample figures in run order, every step's
    record, times summed, NFE per sample averaged over the images, the highest peak; cancelled if any run was.

    Args:
        results: runs of one method and scheduler, with the same options.

    Returns:
        The combined result (the first run's options and trajectory).
    """
    first, images = results[0], sum(r.images.shape[0] for r in results)

    def joined(name: str) -> list | None:
        return None if any(getattr(r, name) is None for r in results) else [v for r in results for v in getattr(r, name)]

    extra = {name: [v for r in results for v in r.extra_metrics.get(name, [])] for name in first.extra_metrics}
    return SamplingResult(
        images=torch.cat([r.images for r in results]),
        method=first.method,
        scheduler=first.scheduler,
        steps=[step for r in results for step in r.steps],
        seconds=sum(r.seconds for r in results),
        decode_seconds=sum(r.decode_seconds for r in results),
        nfe=sum(r.nfe * r.images.shape[0] for r in results) / images,
        peak_mem_mb=max(r.peak_mem_mb for r in results),
        final_energy=joined("final_energy"),
        metric=joined("metric"),
        metric_name=first.metric_name,
        extra_metrics=extra,
        cancelled=any(r.cancelled for r in results),
        options=first.options,
        trajectory=first.trajectory,
    )


class PeakMemory:
    """Peak memory above the start of a block, in MB: CUDA's allocator peak; on Linux, the kernel's own peak RSS
    (VmHWM, reset on entry through /proc/self/clear_refs), so no thread competes with the sampler for the CPU;
    elsewhere, RSS sampled every `interval` seconds by a thread.

    Args:
        device: the device whose memory counts.
        interval: the sampling thread's period in seconds, where it runs.

    Attributes:
        peak_mb: the peak above the start, set when the block ends.
    """

    def __init__(self, device: torch.device, interval: float = 0.002):
        self.device, self.interval, self.peak_mb = device, interval, 0.0

    def __enter__(self) -> "PeakMemory":
        self._thread = None
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            return self
        self._process = psutil.Process()
        self._start = self._peak = self._process.memory_info().rss
        if not _reset_peak_rss():
            self._done = threading.Event()
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._done.wait(self.interval):
            self._peak = max(self._peak, self._process.memory_info().rss)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self._thread is not None:
            self._done.set()
            self._thread.join()
            peak = self._peak
        else:
            peak = _peak_rss()
        self.peak_mb = (peak - self._start) / 2**20


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak resident set size of this process to its current one (Linux >= 4.0); False where
    the platform does not allow it."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _peak_rss() -> int:
    """The peak resident set size of this process since the last reset, in bytes (VmHWM)."""
    line = next(line for line in STATUS.read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def synchronize(device: torch.device) -> None:
    """Waits for the device's queued work (CUDA only), so that a clock read next counts it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def track_energy(energy: Energy | None, backbone: Backbone, x0: Tensor) -> list[float] | None:
    """The energy of a clean estimate, for the record (not part of the timed step).

    Args:
        energy: the run's energy, or None.
        backbone: decodes `x0`.
        x0: (B, C, H, W) the clean estimate.

    Returns:
        One energy per sample, or None without an energy.
    """
    return None if energy is None else energy(backbone.decode(x0)).float().cpu().tolist()


StepHook = Callable[[StepRecord, Tensor | None], None]  # a step's record, and its x0_hat latent at snapshot steps


def snapshot_indices(steps: int, count: int) -> set[int]:
    """Evenly spaced step indices ending at the last step.

    Args:
        steps: the run's step count.
        count: how many indices (every step when count >= steps; none when count <= 0).

    Returns:
        The indices.
    """
    if count <= 0:
        return set()
    if count >= steps:
        return set(range(steps))
    if count == 1:
        return {steps - 1}
    return {round(i * (steps - 1) / (count - 1)) for i in range(count)}


@torch.no_grad()
def decode_estimate(backbone: Backbone, x0: Tensor) -> Tensor:
    """x0_hat as pixels, with the backbone's full decoder.

    Args:
        backbone: decodes `x0`.
        x0: (B, C, H, W) clean estimates.

    Returns:
        (B, 3, H, W) in [-1, 1], float32 on the CPU.
    """
    return backbone.decode(x0.to(backbone.dtype)).float().clamp(-1, 1).cpu()


class StepObserver(Protocol):
    """Told when each timed step of a run starts and ends (`observing`): a profiler times the parts of a step in
    between (guidance.bench.suites.profile)."""

    def step_started(self, ctx: StepContext) -> None:
        """The step's clock is about to start."""

    def step_ended(self, record: StepRecord) -> None:
        """The step's clock has stopped; `record` holds its seconds, CPU seconds and NFE."""


_OBSERVERS: ContextVar[tuple[StepObserver, ...]] = ContextVar("step_observers", default=())


@contextmanager
def observing(observer: StepObserver) -> Iterator[None]:
    """Inside the block, every Recorder tells `observer` when each of its timed steps starts and ends.

    Args:
        observer: a StepObserver.
    """
    token = _OBSERVERS.set((*_OBSERVERS.get(), observer))
    try:
        yield
    finally:
        _OBSERVERS.reset(token)


class Recorder:
    """What a run measures, kept out of the loop's math.

    Per step: its wall and CPU seconds between CUDA-synchronised clocks, its denoiser evaluations per sample and the
    energy of its x0_hat (`timed`, `record`); x0_hat at snapshot steps; over the loop, the peak memory (`run`); after
    it, the decoded images and the final energy and metric (`result`).

    Args:
        backbone: the world's backbone; its `evaluations` counter gives the NFE.
        energy: the energy each step's x0_hat and the final images are measured with (None: none).
        steps: the run's step count.
        snapshots: how many evenly spaced steps keep x0_hat (`snapshot_indices`).
        on_step: called with each step's record and its x0_hat at snapshot steps (None elsewhere).
        progress: called with (steps done, steps) after each step.
    """

    def __init__(
        self,
        backbone: Backbone,
        energy: Energy | None,
        steps: int,
        snapshots: int = 0,
        on_step: StepHook | None = None,
        progress: Callable[[int, int], None] | None = None,
    ):
        self.backbone, self.energy, self.steps, self.on_step, self.progress = backbone, energy, steps, on_step, progress
        self.snapshot_at = snapshot_indices(steps, snapshots)
        self.records: list[StepRecord] = []
        self.trajectory: list[tuple[int, Tensor]] = []  # (step index, x0_hat latent) until `result` decodes them
        self.peak_mb = 0.0

    @contextmanager
    def run(self) -> Iterator[None]:
        """The sampling loop: counts its denoiser evaluations from 0 and its peak memory.

        Raises:
            DeviceOutOfMemoryError: an allocator failure inside the block.
        """
        self.backbone.evaluations = 0
        try:
            with PeakMemory(self.backbone.device) as memory:
                yield
        except (torch.OutOfMemoryError, MemoryError, RuntimeError) as error:
            if not _out_of_memory(error):
                raise
            raise DeviceOutOfMemoryError(
                f"out of memory on {self.backbone.device} after {len(self.records)} steps; try fewer samples or a smaller size"
            ) from error
        self.peak_mb = memory.peak_mb

    @contextmanager
    def timed(self, ctx: StepContext) -> Iterator[StepRecord]:
        """Times the block, one step with its time-travel repeats, telling the observers of `observing` when it starts and
        ends.

        Args:
            ctx: the step's context (its index, timestep and batch).

        Returns:
            The step's record: seconds, CPU seconds and NFE filled in when the block ends.
        """
        record = StepRecord(ctx.index, int(ctx.t), 0.0, 0.0)
        before, device, observers = self.backbone.evaluations, self.backbone.device, _OBSERVERS.get()
        for observer in observers:
            observer.step_started(ctx)
        synchronize(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        yield record
        synchronize(device)
        record.seconds, record.cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        record.nfe = (self.backbone.evaluations - before) / ctx.x.shape[0]
        for observer in observers:
            observer.step_ended(record)

    def record(self, record: StepRecord, pred: Prediction) -> None:
        """Keeps a timed step's record with the energy of its x0_hat (the method's where it computed it, else measured
        here), and x0_hat at snapshot steps; then calls on_step and progress.

        Args:
            record: the step's record from `timed`.
            pred: the step's (last) prediction.
        """
        energy = None if pred.energy is None else pred.energy.float().cpu().tolist()
        record.energy = energy or track_energy(self.energy, self.backbone, pred.x0)
        self.records.append(record)
        snapshot = pred.x0.detach() if record.index in self.snapshot_at else None
        if snapshot is not None:
            self.trajectory.append((record.index, snapshot))
        if self.on_step is not None:
            self.on_step(record, snapshot)
        if self.progress is not None:
            self.progress(record.index + 1, self.steps)

    def result(self, final: Tensor, method: str, scheduler: str, options: dict, cancelled: bool) -> SamplingResult:
        """The run's result: totals, the decoded images and snapshots, and the final energy and metric, measured on
        those images alone (the energy is reset first, so a face energy detects the face in them).

        Args:
            final: the latents to decode (x_0, or the last x0_hat of a cancelled run).
            method: the method's name.
            scheduler: the scheduler's name.
            options: the method's options, for reports.
            cancelled: whether the run stopped early.

        Returns:
            The SamplingResult.
        """
        backbone, energy = self.backbone, self.energy
        result = SamplingResult(
            images=torch.empty(0),
            method=method,
            scheduler=scheduler,
            steps=self.records,
            seconds=sum(s.seconds for s in self.records),
            nfe=backbone.evaluations / final.shape[0],
            peak_mem_mb=self.peak_mb,
            cancelled=cancelled,
            options=options,
        )
        with torch.no_grad():
            synchronize(backbone.device)
            start = time.perf_counter()
            result.images = decode_estimate(backbone, final)
            result.decode_seconds = time.perf_counter() - start
            if self.trajectory:  # one decode for every snapshot
                pixels = decode_estimate(backbone, torch.cat([x0 for _, x0 in self.trajectory])).split(final.shape[0])
                result.trajectory = [(index, images) for (index, _), images in zip(self.trajectory, pixels)]
            if energy is not None:
                images = result.images.to(backbone.device)
                energy.reset()
                result.final_energy = energy(images).float().cpu().tolist()
                result.metric = energy.metric(images).float().cpu().tolist()
                result.metric_name = energy.metric_name
                result.extra_metrics = {
                    name: values.float().cpu().tolist() for name, values in energy.extra_metrics(images).items()
                }
        return result


def _out_of_memory(error: BaseException) -> bool:
    """torch's OutOfMemoryError, Python's MemoryError, or the CPU allocator's RuntimeError "can't allocate memory" (no type of its own)."""
    return isinstance(error, (torch.OutOfMemoryError, MemoryError)) or "can't allocate" in str(error).lower()

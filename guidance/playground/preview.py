"""Live previews: run_task in a worker thread, its steps streamed as frames (each method's latest x0_hat, energies).

The app's generator handlers and the `preview` benchmark consume `stream_task`. x0_hat is kept at the request's
`snapshots` steps (guidance.recording.snapshot_indices) and decoded only when a frame is shown, by its consumer.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image
from torch import Tensor

from conditions.images import to_pil
from guidance.playground.tasks import TaskOutcome, TaskRequest, run_task, runs_of
from guidance.recording import decode_estimate
from guidance.sampling import StepRecord
from guidance.worlds import World


@dataclass
class Frame:
    """The run so far: each method's latest x0_hat (step index, latents) and its mean energy per step."""

    total: int  # steps over all methods
    decode: Callable[[Tensor], Tensor]  # latents to pixels in [-1, 1]
    pictures: dict[str, tuple[int, Tensor]] = field(default_factory=dict)
    energies: dict[str, list[float | None]] = field(default_factory=dict)
    done: int = 0
    label: str = ""

    def add(self, label: str, record: StepRecord, picture: Tensor | None) -> None:
        """Record one finished step.

        Args:
            label: the run's label (its method, or its solver on the solvers task).
            record: the step's record; its mean energy over the samples is kept.
            picture: the step's x0_hat latents where it is a snapshot step, else None.
        """
        energy = None if record.energy is None else sum(record.energy) / len(record.energy)
        self.energies.setdefault(label, []).append(energy)
        if picture is not None:
            self.pictures[label] = (record.index, picture)
        self.done, self.label = self.done + 1, label

    def gallery(self, steps: int) -> list[tuple[Image.Image, str]]:
        """Every sample's latest x0_hat, decoded, captioned with its method and step of `steps` (the run's length)."""
        return [
            (image, f"{label} · x0_hat at step {index + 1} of {steps}")
            for label, (index, latents) in self.pictures.items()
            for image in to_pil(self.decode(latents))
        ]

    def energy_figure(self) -> Figure:
        """The energy of x0_hat per step so far, one line per method."""
        figure = Figure(figsize=(5, 3.2))  # no constrained layout: a frame is drawn while the run goes
        figure.subplots_adjust(left=0.16, bottom=0.15, right=0.97, top=0.95)
        axes = figure.subplots()
        for label, values in self.energies.items():
            axes.plot(range(1, len(values) + 1), [float("nan") if v is None else v for v in values], marker=".", label=label)
        axes.set(xlabel="step", ylabel="energy of the x0 estimate")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        if self.energies:
            axes.legend(fontsize="small")
        return figure


def stream_task(
    world: World,
    request: TaskRequest,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[Frame], None] | None = None,
    interval: float = 0.5,
    share: float = 0.05,
) -> Iterator[Frame | TaskOutcome]:
    """run_task in a worker thread: yields Frames, then the TaskOutcome; errors are raised here, and closing the
    iterator stops the run before its next step. `progress(frame)` runs in the caller's thread after new steps.

    The first frame comes with the first snapshot. After that a frame comes when `interval` s have passed and the
    consumer's time on the last frame (drawing, sending) is at most `share` of the time since: a slow consumer sees
    fewer frames instead of slowing the run.

    Args:
        world: the world to sample in.
        request: what to run (`snapshots` sets which steps bring a picture).
        should_stop: polled between steps; True stops the run.
        progress: called with the frame after new steps, in the caller's thread.
        interval: the shortest time in seconds between two frames.
        share: the largest share of the time the consumer may spend on frames.

    Yields:
        `Frame`s, then the `TaskOutcome`.
    """
    events: queue.Queue = queue.Queue()
    closed = threading.Event()

    def stop() -> bool:
        return closed.is_set() or (should_stop is not None and should_stop())

    def work() -> None:
        try:
            events.put(run_task(world, request, should_stop=stop, on_step=lambda *event: events.put(event)))
        except BaseException as error:  # handed to the consumer, which raises it
            events.put(error)

    worker = threading.Thread(target=work, daemon=True, name="stream_task")
    worker.start()
    frame = Frame(len(runs_of(request)) * request.steps, lambda latents: decode_estimate(world.backbone, latents))
    shown, wait = time.monotonic(), None
    try:
        while True:
            batch = [events.get()]
            while not events.empty():
                batch.append(events.get())
            steps = [event for event in batch if isinstance(event, tuple)]
            for event in steps:
                frame.add(*event)
            if steps and progress is not None:
                progress(frame)
            first = wait is None and any(picture is not None for *_, picture in steps)
            if first or (wait is not None and steps and time.monotonic() - shown >= wait):
                start = time.monotonic()
                yield frame
                shown = time.monotonic()
                wait = max(interval, (shown - start) / share)
            if isinstance(batch[-1], BaseException):
                raise batch[-1]
            if isinstance(batch[-1], TaskOutcome):
                yield batch[-1]
                return
    finally:
        closed.set()
        worker.join()

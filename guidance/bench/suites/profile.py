"""`profile`: where one sampling step's time goes, part by part, for each method.

Synchronised timers inside real sampling runs (guidance.sampling.sample), through the library's own seams: the loop
tells a StepObserver where each timed step starts and ends (guidance.recording.observing); the denoiser calls
(UNet with its ControlNet, or the guide UNet) and the decoder are timed by the backbone the run samples with
(`TimedBackbone`, the world's backbone behind it), the energies and GFCG's classifier by torch's forward hooks; hooks
on the tensors passed between them time the backward pass segment by segment (energy, decoder, denoiser); the
scheduler's arithmetic (the step's mean and sigma, with the noise draw handed to the update, and the method's update)
is timed by the method the run samples with (`TimedMethod`, between its prediction and the end of its update);
host-device copies (the loop's two noise draws sent to the device and per-sample values read back) are timed alone.
`other` is the rest of the step: Python, step sizes, the x0 arithmetic, small tensors. The clock
is synchronised wall time on CUDA and the process's CPU time on a CPU (run it with --threads 1 there: a machine
shared with other jobs adds waiting to wall times, which the CPU time leaves out), so the parts add up to
`ms_per_step` on CUDA and to `cpu_ms_per_step` on a CPU.
A part nested in another (the face detector inside the face energy) counts in the outer one. Every step of a
profiled run is guided (window [0, 1), no time travel); the first step is left out, and each method runs once
untimed (2 steps) before its first round. Runs go in `rounds`, every method once per round, so that a machine
whose load drifts slows all of them alike; columns are the mean ms per step over all rounds, with the median and
interquartile range (`*_median`, `*_iqr`) over the `timed_steps` steps; `cpu_ms_per_step` is the process's CPU
time of the step (the work, without the waiting on a shared CPU).

The plan `figd-sd` (`--plan figd-sd`, for sd15-random) times FreeDoM against FIGD on the face task with the full
VAE and with the tiny decoder (TAESD's AutoencoderTiny) on the guidance path; its goals are FreeDoM's step over
FIGD's, the median over rounds of each round's ratio of median steps, with a bootstrap interval over the rounds.

On the embedded world the suite also times the world's own speed, end to end with `time.perf_counter`: a batch
of 4 unguided class-conditional 25-step DDIM samples with the final decode (goal <= 1.5 s on a 2-core CPU), and
the app's default tab run, the Face tab's three methods (FreeDoM, FIGD, FIGD+DSG) at 20 steps, 1 sample, eta 0.5,
on its first example, energy built and images decoded and scored (goal <= 5 s), with and without the tiny decoder.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import Tensor

from guidance.bench.common import (
    Options,
    Rows,
    SHARED_SCALE,
    SuiteOutput,
    generate,
    WORLD_SPEED_BAR_S,
    goal_over,
    reference_images,
    request_inputs,
    warm_up,
)
from guidance.methods import Settings, Terms, build_method
from guidance.statistics import median_iqr
from guidance.playground.tasks import PRESETS, TaskRequest, build_energy, make_request, preset, run_task, spec
from guidance.recording import observing, synchronize
from guidance.sampling import sample
from guidance.worlds import World

NEEDS = ("face_embedder", "style_features", "classifier")
PARTS = (
    "denoiser_fwd",
    "denoiser_bwd",
    "decode_fwd",
    "decode_bwd",
    "energy_fwd",
    "energy_bwd",
    "classifier_fwd",
    "scheduler",
    "copies",
    "other",
)
BACKWARD = {"decode_out": "energy_bwd", "decode_in": "decode_bwd", "denoiser_out": "other", "denoiser_in": "denoiser_bwd"}
# label: (task, method, scheduler, settings overrides); class-task rows sample the classifier's first class, the others
# are unconditional
RUNS = {
    "plain": ("class", "plain", "ddim", {}),
    "cfg": ("class", "cfg", "ddim", {}),
    "cfg+gfcg": ("class", "cfg+gfcg", "ddim", {}),
    "atg+gfcg": ("class", "atg+gfcg", "ddim", {}),
    "evodiff": ("class", "plain", "evodiff", {}),
    "dpm-solver++": ("class", "plain", "dpmsolver++", {}),
    "face freedom": ("face", "freedom", "ddim", {}),
    "face freedom checkpointed": ("face", "freedom", "ddim", {"checkpointing": True}),
    "face freedom tiny decoder": ("face", "freedom", "ddim", {"tiny_decoder": True}),
    "face figd": ("face", "figd", "ddim", {}),
    "face figd tiny decoder": ("face", "figd", "ddim", {"tiny_decoder": True}),
    "face freedom+dsg": ("face", "freedom+dsg", "ddim", {}),
    "face figd+dsg": ("face", "figd+dsg", "ddim", {}),
    "style freedom": ("style", "freedom", "ddim", {}),
    "style figd": ("style", "figd", "ddim", {}),
    "control freedom": ("control", "freedom", "ddim", {}),
    "control figd": ("control", "figd", "ddim", {}),
}


@dataclass(frozen=True)
class Plan:
    steps: int
    rounds: int = 2
    speed_repeats: int = 3  # runs of each end-to-end speed figure (the median is kept)
    batch: int = 1
    eta: float = 1.0
    runs: tuple[str, ...] = tuple(RUNS)
    step_ratio_goals: bool = False  # goals on FreeDoM's step over FIGD's (full VAE, tiny decoder), over the rounds


FACE_PAIRS = {  # FreeDoM's run and FIGD's, with the full VAE and with the tiny decoder on the guidance path
    "full VAE": ("face freedom", "face figd"),
    "tiny decoder": ("face freedom tiny decoder", "face figd tiny decoder"),
}
PLANS = {
    "quick": Plan(steps=5),
    "full": Plan(steps=10, rounds=4),
    "quick-sd": Plan(steps=4),
    "full-sd": Plan(steps=8),
    # --plan figd-sd: FIGD against FreeDoM per step on sd15-random (on a CPU, --size 256 keeps it short)
    "figd-sd": Plan(
        steps=4, rounds=3, runs=tuple(label for pair in FACE_PAIRS.values() for label in pair), step_ratio_goals=True
    ),
}


class StepTimer:
    """Accumulates part times of the current step: a StepObserver (guidance.recording.observing), active only between
    the start and the end of each timed step of the sampling loop.

    Args:
        device: the device whose clock `now` reads (synchronised on CUDA, CPU time elsewhere).

    Attributes:
        steps: each timed step's record: seconds, CPU seconds and every part's seconds.
    """

    def __init__(self, device: torch.device):
        self.device, self.active = device, False
        self.parts: dict[str, float] = defaultdict(float)
        self.marks: list[tuple[str, float]] = []
        self.open: list[float | None] = []  # per running part, its start where it is timed (the outermost), else None
        self.predicted: float | None = None  # when the method's prediction of this step returned
        self.steps: list[dict] = []

    def now(self) -> float:
        """Synchronised wall time on CUDA; on a CPU the process's CPU time (a shared CPU's waiting left out)."""
        if self.device.type != "cuda":
            return time.process_time()
        synchronize(self.device)
        return time.perf_counter()

    def step_started(self, ctx) -> None:
        """Forget the previous step's parts and marks, and time this step's."""
        self.parts.clear()
        self.marks.clear()
        self.predicted, self.active = None, True

    def step_ended(self, record) -> None:
        """Keep the step's seconds with its parts, forward and backward."""
        self.active = False
        self.steps.append({"seconds": record.seconds, "cpu_seconds": record.cpu_seconds, **self.parts, **self.backward_parts()})

    def begin(self) -> None:
        """A part starts; it is timed unless another one is running (a part nested in another counts in the outer one)."""
        self.open.append(self.now() if self.active and not any(start is not None for start in self.open) else None)

    def end(self, name: str) -> bool:
        """The part begun last ends; where it was timed, its time goes to `name`.

        Returns:
            Whether it was timed.
        """
        start = self.open.pop()
        if start is None:
            return False
        end = self.now()
        self.parts[name] += end - start
        self.marks.append(("forward", end))
        return True

    def call(self, name: str, function: Callable, *args, hooks: tuple[str, str] | None = None, **kwargs):
        """`function(*args, **kwargs)`, timed as the part `name`.

        Args:
            name: the part's name (one of PARTS).
            function: what is timed.
            *args, **kwargs: its arguments.
            hooks: (input mark, output mark): its first argument and its output then mark the backward pass.

        Returns:
            What `function` returns.
        """
        self.begin()
        try:
            out = function(*args, **kwargs)
        finally:
            outermost = self.end(name)
        if outermost and hooks is not None:
            self.on_gradient(args[0], hooks[0])
            self.on_gradient(out, hooks[1])
        return out

    def time_module(self, module: torch.nn.Module, name: str) -> list:
        """Times each call of `module` as the part `name`, through torch's forward hooks.

        Returns:
            The hooks' handles (`remove()` each when done).
        """

        def ended(*_) -> None:  # a forward hook that returns something replaces the module's output
            self.end(name)

        return [module.register_forward_pre_hook(lambda *_: self.begin()), module.register_forward_hook(ended)]

    def on_gradient(self, tensor: Tensor, mark: str) -> None:
        """Marks the time the backward pass reaches `tensor` (a point of the energy -> decoder -> denoiser chain).

        Args:
            tensor: a tensor of the guidance graph; nothing is marked if it needs no gradient.
            mark: the name of that point (a key of BACKWARD).
        """
        if tensor.requires_grad:
            tensor.register_hook(lambda grad: self.marks.append((mark, self.now())))

    def backward_parts(self) -> dict[str, float]:
        """Each backward segment, from the mark before it, credited to the part that ran in it."""
        found, previous = defaultdict(float), None
        for mark, moment in sorted(self.marks, key=lambda m: m[1]):
            if mark in BACKWARD and previous is not None:
                found[BACKWARD[mark]] += moment - previous
            previous = moment
        return found


class TimedBackbone:
    """A world's backbone whose denoiser calls (`predict`) and decodes are timed; every other attribute is the
    backbone's own, and its evaluation counter is the backbone's (which the loop's Recorder resets and reads).

    Args:
        backbone: the world's backbone.
        timer: the step's timer.
    """

    def __init__(self, backbone, timer: StepTimer):
        self.backbone, self.timer = backbone, timer

    def __getattr__(self, name: str):
        return getattr(self.backbone, name)

    @property
    def evaluations(self) -> int:
        """The backbone's count of denoiser evaluations."""
        return self.backbone.evaluations

    @evaluations.setter
    def evaluations(self, value: int) -> None:
        self.backbone.evaluations = value

    def predict(self, *args, **kwargs) -> Tensor:
        """The backbone's, timed as the denoiser's forward."""
        return self.timer.call("denoiser_fwd", self.backbone.predict, *args, hooks=("denoiser_in", "denoiser_out"), **kwargs)

    def decode(self, *args, **kwargs) -> Tensor:
        """The backbone's, timed as the decoder's forward."""
        return self.timer.call("decode_fwd", self.backbone.decode, *args, hooks=("decode_in", "decode_out"), **kwargs)

    def guidance_decode(self, *args, **kwargs) -> Tensor:
        """The backbone's, timed as the decoder's forward."""
        return self.timer.call("decode_fwd", self.backbone.guidance_decode, *args, hooks=("decode_in", "decode_out"), **kwargs)


class TimedMethod:
    """A guidance method whose scheduler arithmetic is timed: the loop's mean and sigma, which it computes between the
    method's `predict` and `update` (with the noise draw it hands to `update`), and the update itself. Every other
    attribute is the method's own.

    Args:
        method: the guidance method.
        timer: the step's timer.
    """

    def __init__(self, method, timer: StepTimer):
        self.method, self.timer = method, timer

    def __getattr__(self, name: str):
        return getattr(self.method, name)

    def predict(self, ctx):
        """The method's prediction; the scheduler's part starts when it returns."""
        pred = self.method.predict(ctx)
        self.timer.predicted = self.timer.now() if self.timer.active and not self.timer.open else None
        return pred

    def update(self, *args):
        """The method's update, timed with the mean and sigma before it as the scheduler's part."""
        if self.timer.predicted is not None:
            self.timer.parts["scheduler"] += self.timer.now() - self.timer.predicted
            self.timer.predicted = None
        return self.timer.call("scheduler", self.method.update, *args)


@contextmanager
def instrumented(world: World, energy, method) -> Iterator[tuple[TimedBackbone, TimedMethod, StepTimer]]:
    """The backbone and the method timed, the energy's terms and the classifier timed through forward hooks, and the
    sampling loop's timed steps observed (guidance.recording.observing), for the block.

    Args:
        world: its backbone's denoiser and decoders, and its classifier, are timed.
        energy: the guidance energy (its terms are timed), or None.
        method: the guidance method (its update is timed as the scheduler's).

    Yields:
        (the backbone and the method to sample with, the timer whose `steps` fill as the loop runs).
    """
    timer = StepTimer(world.backbone.device)
    leaves = [] if energy is None else [term.energy for term in energy.terms] if isinstance(energy, Terms) else [energy]
    handles = [handle for leaf in leaves for handle in timer.time_module(leaf, "energy_fwd")]
    if isinstance(world.classifier, torch.nn.Module):
        handles += timer.time_module(world.classifier, "classifier_fwd")
    try:
        with observing(timer):
            yield TimedBackbone(world.backbone, timer), TimedMethod(method, timer), timer
    finally:
        for handle in handles:
            handle.remove()


def copies_seconds(backbone, batch: int, repeats: int = 20) -> float:
    """The loop's per-step transfers alone: two noise draws sent to the device, a (B,) vector read back.

    Args:
        backbone: its device and sample shape.
        batch: the batch size.
        repeats: how many times it is timed.

    Returns:
        The median seconds.
    """
    generator, shape = torch.Generator().manual_seed(0), (batch, *backbone.sample_shape)
    values = torch.zeros(batch, device=backbone.device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(2):
            torch.randn(shape, generator=generator).to(backbone.device)
        values.float().cpu().tolist()
        synchronize(backbone.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def request_for(world: World, task: str, references: dict) -> TaskRequest:
    """A request whose energy `build_energy` makes for `task`, on the held-out references."""
    return make_request(task=task, methods=[], **request_inputs(task, references.get(task), world.backbone.has_controlnet))


def settings_for(task: str, overrides: dict) -> Settings:
    """The task's preset at the benchmarks' shared scale with every step guided (window [0, 1), no time travel); class rows: the classes preset with
    GFCG in its own order (the classifier at every step, the reference branch a call of its own), so that every
    step shows each part.

    Args:
        task: "face", "style", "control" or "class".
        overrides: the run's own settings (RUNS).
    """
    if task == "class":
        return replace(PRESETS["classes"], gfcg_one_call=False, gfcg_interval=1, **overrides)
    return replace(PRESETS[task], scale=SHARED_SCALE[task], window=(0.0, 1.0), repeats=1, dsg_interval=1, **overrides)


def profile_steps(world: World, label: str, plan: Plan, references: dict, warm_up: bool = True) -> tuple[list[dict], float]:
    """One run of `label` with every step instrumented (after an untimed 2-step run when `warm_up`): the part
    seconds of its steps 2..n, and its NFE per sample.

    Args:
        world: where to sample.
        label: a key of RUNS.
        plan: steps, batch and eta.
        references: by task, from `reference_images`.
        warm_up: run 2 untimed steps first.
    """
    task, name, scheduler, overrides = RUNS[label]
    energy, control = build_energy(world, request_for(world, task, references))[:2] if task != "class" else (None, None)
    method = build_method(name, settings_for(task, overrides), world.classifier)
    energy = energy if method.uses_energy else None
    condition = world.classifier.class_names[0] if task == "class" else None  # GFCG needs one of its classes
    kwargs = dict(
        scheduler=scheduler,
        eta=plan.eta if scheduler == "ddim" else 0.0,
        noise_rule=method_noise_rule(task),
        energy=energy,
        control=control,
    )
    if warm_up:
        sample(world.backbone, method, [condition] * plan.batch, steps=2, **kwargs)
    with instrumented(world, energy, method) as (backbone, timed_method, timer):
        result = sample(backbone, timed_method, [condition] * plan.batch, steps=plan.steps, **kwargs)
    return timer.steps[1:] or timer.steps, result.nfe


def profile_row(label: str, plan: Plan, steps: list[dict], nfe: float, copies: float, device: torch.device) -> dict:
    """The mean ms of each part over `steps`; `other` is the step's time that no part accounts for; the median
    and interquartile range of the step's wall and CPU ms, over the `timed_steps` steps.

    Args:
        label: a key of RUNS.
        plan: the suite's plan.
        steps: the per-step records of every round.
        nfe: NFE per sample.
        copies: seconds of the per-step transfers (`copies_seconds`).
        device: which clock the parts add up to (`clock_key`).
    """
    mean = {key: 1000 * statistics.fmean(s.get(key, 0.0) for s in steps) for key in ("seconds", "cpu_seconds", *PARTS)}
    mean["copies"] = 1000 * copies
    mean["other"] = mean[clock_key(device)] - sum(mean[p] for p in PARTS if p != "other")
    spread = {}
    for key, name in (("seconds", "ms_per_step"), ("cpu_seconds", "cpu_ms_per_step")):
        median, q1, q3 = median_iqr([1000 * s[key] for s in steps])
        spread |= {f"{name}_median": median, f"{name}_iqr": [q1, q3]}
    return {
        "task": RUNS[label][0],
        "method": label,
        "steps": plan.steps,
        "nfe": nfe,
        "ms_per_step": mean.pop("seconds"),
        "cpu_ms_per_step": mean.pop("cpu_seconds"),
        **mean,
        **spread,
        "timed_steps": len(steps),
    }


def clock_key(device: torch.device) -> str:
    """What the parts add up to: the step's CPU time on a CPU, its wall time on CUDA (StepTimer.now)."""
    return "seconds" if device.type == "cuda" else "cpu_seconds"


def method_noise_rule(task: str) -> str:
    """The noise rule of the task's preset ("class": the classes preset's)."""
    return PRESETS["classes" if task == "class" else task].noise_rule


def usable(world: World, label: str) -> bool:
    """Whether the world has what a run needs (a guide model for ATG, a tiny decoder, a ControlNet).

    Args:
        world: the loaded world.
        label: a key of RUNS.
    """
    task, name, _, overrides = RUNS[label]
    backbone = world.backbone
    return not (
        ("atg" in name and not backbone.has_guide_model)
        or (overrides.get("tiny_decoder") and backbone.tiny_decoder is None)
        or (task == "control" and not backbone.has_controlnet)
    )


def run(world: World, opts: Options) -> SuiteOutput:
    """Every run of the plan the world can make, instrumented step by step in rounds; on the embedded world also its
    end-to-end speed (the interface: guidance.bench.suites)."""
    plan = opts.plan(PLANS)
    references = reference_images(world.backbone.image_size)
    copies = copies_seconds(world.backbone, plan.batch)
    labels = [label for label in plan.runs if usable(world, label)]
    rounds, nfe = {label: [] for label in labels}, {}
    for index in range(plan.rounds):
        for label in labels:
            found, nfe[label] = profile_steps(world, label, plan, references, warm_up=index == 0)
            rounds[label].append(found)
    rows = Rows("profile")
    for label in labels:
        rows.append(
            profile_row(label, plan, [s for found in rounds[label] for s in found], nfe[label], copies, world.backbone.device)
        )
    step_goals = step_ratio_goals(rounds) if plan.step_ratio_goals else []
    skipped = [label for label in plan.runs if label not in labels]
    notes = [f"not run (the world lacks what they need): {', '.join(skipped)}"] if skipped else []
    speed, repeats = world_speed(world, plan.speed_repeats) if opts.embedded else ([], {})
    for row in speed:
        rows.append(row)
    total = "ms_per_step" if world.backbone.device.type == "cuda" else "cpu_ms_per_step"
    return SuiteOutput(
        rows,
        step_goals + speed_goals(repeats),
        config={**asdict(plan), "parts_add_up_to": total},
        notes=notes + explain(rows, total),
    )


def step_ratio_goals(rounds: dict[str, list[list[dict]]]) -> list[dict]:
    """FreeDoM's step over FIGD's (>= 2x), with the full VAE and with the tiny decoder, by wall and by CPU time:
    per round the ratio of the two runs' median steps; the median over rounds with a bootstrap interval over them."""
    found = []
    for decoder, (freedom, figd) in FACE_PAIRS.items():
        if freedom not in rounds or figd not in rounds:
            continue
        for key, clock in (("seconds", "wall"), ("cpu_seconds", "process CPU")):
            ratios = [
                statistics.median(s[key] for s in a) / statistics.median(s[key] for s in b)
                for a, b in zip(rounds[freedom], rounds[figd])
            ]
            found.append(
                goal_over(
                    f"face, {decoder}: FreeDoM's step over FIGD's ({clock} time, median of interleaved rounds)",
                    ratios,
                    2.0,
                    "x",
                    higher_is_better=True,
                    statistic=np.median,
                    over="rounds",
                )
            )
    return found


APP_TAB_BAR_S = 5.0  # the app's default tab run (the Face tab's default methods on its first example)
UNGUIDED = "4 x 25 steps unguided"  # the world's speed row of unguided sampling


def world_speed(world: World, repeats: int) -> tuple[list[dict], dict[str, list[float]]]:
    """End-to-end seconds (rows: the median of `repeats`; and every repeat's seconds by row): 4 unguided 25-step
    samples with their decode; the app's default tab run, with the full decoder and, where the world has one, with
    the tiny decoder on the guidance path.

    Args:
        world: the embedded world.
        repeats: timed repeats of each.
    """
    from PIL import Image

    conditions = list(world.backbone.class_names[:4])
    warm_up(world, "plain", conditions[0])
    unguided = [generate(world, "plain", conditions, steps=25, seed=r)[0] for r in range(repeats)]
    runs = {UNGUIDED: [r.seconds + r.decode_seconds for r in unguided]}
    rows = [{"task": "speed", "method": UNGUIDED, "steps": 25, "batch": 4, "seconds": statistics.median(runs[UNGUIDED])}]
    face = spec("face")
    reference = Image.open(face.examples[0][0]).convert("RGB")  # the Face tab's first example, with its default methods and eta
    for tiny in (False, True)[: 2 if world.backbone.tiny_decoder is not None else 1]:
        request = make_request(
            task="face",
            methods=list(face.selected),
            samples=1,
            steps=20,
            eta=face.eta,
            reference=reference,
            settings=preset("face", tiny_decoder=tiny),
            strength=1.0,  # the app's slider: each method at its own guiding value
        )
        run_task(world, replace(request, steps=2))
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            run_task(world, request)
            seconds.append(time.perf_counter() - start)
        label = "app face tab, 3 methods x 20 steps" + (", tiny decoder" if tiny else "")
        runs[label] = seconds
        rows.append({"task": "speed", "method": label, "steps": 20, "batch": 1, "seconds": statistics.median(seconds)})
    return rows, runs


def speed_goals(runs: dict[str, list[float]]) -> list[dict]:
    """The world's end-to-end speed bars: the median of the repeats, with a bootstrap interval over them."""
    found = []
    for label, seconds in runs.items():
        name, bar = (
            ("4 unguided 25-step samples, decode included", WORLD_SPEED_BAR_S) if label == UNGUIDED else (label, APP_TAB_BAR_S)
        )
        found.append(goal_over(name, seconds, bar, " s", statistic=np.median, over="repeats"))
    return found


def ceiling(freedom: dict, figd: dict) -> float:
    """FreeDoM's step over FIGD's if everything but the denoiser took no time: (forward + graph + backward) / forward.

    Args:
        freedom, figd: the two methods' rows of one task.
    """
    return (freedom["denoiser_fwd"] + freedom["denoiser_bwd"]) / figd["denoiser_fwd"]


def explain(rows: list[dict], total: str) -> list[str]:
    """Per task, FreeDoM's step over FIGD's, what FIGD leaves out, and the part that bounds the ratio.

    Args:
        rows: the suite's rows.
        total: the clock the parts add up to ("cpu_ms_per_step" on a CPU, "ms_per_step" on CUDA).
    """
    by, lines = {r["method"]: r for r in rows}, []
    for task in ("face", "style", "control"):
        freedom, figd = by.get(f"{task} freedom"), by.get(f"{task} figd")
        if freedom is None or figd is None:
            continue
        graph = freedom["denoiser_fwd"] - figd["denoiser_fwd"]
        largest = max((p for p in PARTS if p != "other"), key=lambda p: figd[p])
        lines.append(
            f"{task}: FreeDoM's step / FIGD's = {freedom[total] / figd[total]:.2f}x by {total} "
            f"({freedom['ms_per_step'] / figd['ms_per_step']:.2f}x by wall time). FIGD leaves out the denoiser's backward "
            f"({freedom['denoiser_bwd']:.0f} ms) and the graph kept by its forward ({graph:.0f} ms); 2x needs FIGD's "
            f"step <= {freedom[total] / 2:.0f} ms, it is {figd[total]:.0f} ms, of which the largest part is {largest} "
            f"({figd[largest]:.0f} ms, {100 * figd[largest] / figd[total]:.0f}%) and the decoder's forward and backward "
            f"take {figd['decode_fwd'] + figd['decode_bwd']:.0f} ms. With a free decoder and energy the ratio would be "
            f"{ceiling(freedom, figd):.2f}x at most: with frozen weights the denoiser's backward computes only the "
            f"input's gradient, about one forward's work, so the ratio stays under 2x while any other part costs time."
        )
    return lines

"""The playground's tasks as library calls: build the energy, run each method, collect the results.

The app wires widgets to `run_task`; the benchmarks call it too. Presets are [ours]: step sizes use
FreeDoM's normalised rule (rho_t = k RMS(w_cfg (eps_c - eps_u)) / RMS(g), or RMS(eps) without CFG),
which makes k comparable across worlds; windows and DSG rates follow the papers' defaults.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from PIL import Image

from guidance.energy import Energy
from conditions.classes import ClassEnergy
from conditions.control import EdgeEnergy, annotate, map_tensor
from conditions.face import FaceIDEnergy, crop
from conditions.images import to_pil, to_tensor
from conditions.style import StyleEnergy

from .backbone import Control
from .errors import MethodConfigError
from .methods import Settings, Term, Terms, Window, build_method
from .sampling import SamplingResult, sample
from .worlds import World

TASKS = ("face", "style", "control", "classes", "solvers")
PRESETS = {
    # face: k and the DSG rate from the `dsg` benchmark's sweep (docs/benchmarks.md) on the embedded world
    "face": Settings(scale=0.05, step_rule="normalized", window=(0.0, 0.9), dsg_rate=0.1, noise_rule="freedom"),
    "style": Settings(scale=0.2, step_rule="normalized", window=(0.3, 0.7), repeats=3, travel_window=(0.3, 0.6), dsg_rate=0.1),
    "control": Settings(scale=0.2, step_rule="normalized", window=(0.0, 0.8), dsg_rate=0.1),
    "classes": Settings(cfg_scale=2.5, gfcg_max_scale=2.0),
    "solvers": Settings(cfg_scale=2.5),
}
# A condition on top of a control map guides in its own window with its own k (docs/methods.md, FreeDoM step 7):
# FreeDoM's ControlNet face-ID run guides index 39..0 of 100 with k = 0.08 and no time travel [code]
EXTRA_TERMS = {"face": {"window": Window(0.6, 1.0), "scale": 0.08}}


@dataclass
class TaskRequest:
    """One tab's inputs. `condition` is a prompt or class name (None: unconditional)."""

    task: str
    methods: list[str]
    condition: str | None = None
    samples: int = 1
    steps: int = 25
    scheduler: str = "ddim"
    eta: float = 0.0
    seed: int = 0
    settings: Settings = field(default_factory=Settings)
    reference: Image.Image | None = None  # the face or style image
    control_image: Image.Image | None = None  # an image to annotate, or a ready map
    annotator: str = "canny"  # "none": control_image is already a map
    use_controlnet: bool = True
    edge_energy: bool = True
    extra: str | None = None  # "face" or "style" on top of a control map, with `reference`
    schedulers: list[str] = field(default_factory=lambda: ["ddim", "dpmsolver++", "unipc", "evodiff"])


@dataclass
class TaskOutcome:
    """Results in method order, and what was used: the face crop, the control map."""

    results: list[tuple[str, SamplingResult]]
    artefacts: dict[str, Image.Image] = field(default_factory=dict)


def preset(task: str, **overrides) -> Settings:
    if task not in PRESETS:
        raise MethodConfigError(f"unknown task {task!r}; known: {TASKS}")
    return replace(PRESETS[task], **overrides)


def build_energy(world: World, request: TaskRequest) -> tuple[Energy | None, Control | None, dict[str, Image.Image]]:
    """The task's energy, the ControlNet input, and pictures of what was used."""
    task, artefacts, control = request.task, {}, None
    if task in ("face", "style"):
        energy = _reference_energy(world, task, _need(request.reference, f"the {task} tab needs a reference image"), artefacts)
    elif task == "control":
        image = _need(request.control_image, "the control-map tab needs an image or a map")
        control_map = image if request.annotator == "none" else annotate(image, request.annotator)
        artefacts["control map"] = control_map.resize((world.backbone.image_size,) * 2, Image.NEAREST)
        tensor = map_tensor(control_map, world.backbone.image_size)
        if request.use_controlnet:
            control = world.backbone.prepare_control(tensor)
        terms = [Term(EdgeEnergy(tensor).to(world.backbone.device))] if request.edge_energy else []
        if request.extra:
            extra = _reference_energy(world, request.extra, _need(request.reference, f"{request.extra} needs a reference"), artefacts)
            terms.append(Term(extra, **EXTRA_TERMS.get(request.extra, {})))
        energy = Terms(terms) if terms else _edge_metric(tensor, world)
    elif task in ("classes", "solvers"):
        energy = ClassEnergy(world.evaluator, [_need(request.condition, "pick a class")] * request.samples)
    else:
        raise MethodConfigError(f"unknown task {task!r}; known: {TASKS}")
    return energy, control, artefacts


def _need(value, message: str):
    if value is None:
        raise MethodConfigError(message)
    return value


def _edge_metric(tensor: torch.Tensor, world: World) -> Energy:
    """ControlNet alone: the edge energy is only measured, never used for guidance."""
    return EdgeEnergy(tensor).to(world.backbone.device)


def _reference_energy(world: World, kind: str, reference: Image.Image, artefacts: dict) -> Energy:
    if kind == "face":
        energy = FaceIDEnergy(reference, world.face_embedder, world.face_detector)
        artefacts["face crop"] = to_pil(crop(to_tensor(reference), energy.box, 160))[0]
        return energy.to(world.backbone.device)
    if kind == "style":
        artefacts["style"] = reference.resize((160, 160))
        return StyleEnergy(reference, world.style_features).to(world.backbone.device)
    raise MethodConfigError(f"unknown extra condition {kind!r}: use 'face' or 'style'")


def run_task(
    world: World,
    request: TaskRequest,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TaskOutcome:
    """Runs every requested method (or, on the solvers tab, every scheduler) from the same seed."""
    energy, control, artefacts = build_energy(world, request)
    conditions = [request.condition] * request.samples
    settings = request.settings if request.condition is not None else replace(request.settings, cfg_scale=1.0)
    runs = [(m, m, request.scheduler) for m in request.methods]
    if request.task == "solvers":
        runs = [(s, request.methods[0], s) for s in request.schedulers]
    total, results = len(runs) * request.steps, []
    for number, (label, method_name, scheduler) in enumerate(runs):
        method = build_method(method_name, settings, world.classifier)
        tick = None if progress is None else (lambda i, n, k=number: progress(k * request.steps + i, total))
        result = sample(
            world.backbone, method, conditions, steps=request.steps, scheduler=scheduler,
            eta=request.eta if scheduler in ("ddim", "ddpm") else 0.0, noise_rule=settings.noise_rule, seed=request.seed,
            energy=energy, control=control, progress=tick, should_stop=should_stop,
        )  # fmt: skip
        results.append((label, result))
        if result.cancelled:
            break
    return TaskOutcome(results, artefacts)

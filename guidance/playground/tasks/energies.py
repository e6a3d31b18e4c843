"""The tasks' energies: each builds, from a world and a request, the energy that guides (and measures) a run, the
ControlNet input, and pictures of what was used."""
from __future__ import annotations

from PIL import Image

from conditions.classes import ClassEnergy
from conditions.control import EdgeEnergy, annotate, map_tensor
from conditions.face import FaceIDEnergy, crop
from conditions.images import to_pil, to_tensor
from conditions.style import StyleEnergy
from guidance.backbone import Control
from guidance.energy import Energy
from guidance.errors import MethodConfigError
from guidance.methods import Term, Terms, Window
from guidance.playground.tasks.inputs import EXTRAS
from guidance.playground.tasks.spec import EnergyBuilder, TaskRequest
from guidance.worlds import World

# A condition on top of a control map guides in its own window with its own k (docs/methods.md, FreeDoM step 7):
# FreeDoM's ControlNet face-ID run guides index 39..0 of 100 with k = 0.08 and no time travel [code]
EXTRA_TERMS = {"face": {"window": Window(0.6, 1.0), "scale": 0.08}}


def need(value, message: str):
    """The value; MethodConfigError with `message` where it is None."""
    if value is None:
        raise MethodConfigError(message)
    return value


def reference_energy(world: World, kind: str, reference: Image.Image, artefacts: dict) -> Energy:
    """The face-identity or style energy of a reference image; its crop or thumbnail goes to `artefacts`."""
    if kind == "face":
        energy = FaceIDEnergy(reference, world.face_embedder, world.face_detector)
        artefacts["face crop"] = to_pil(crop(to_tensor(reference), energy.box, 160))[0]
        return energy.to(world.backbone.device)
    if kind == "style":
        artefacts["style"] = reference.resize((160, 160))
        return StyleEnergy(reference, world.style_features, world.pattern_judge).to(world.backbone.device)
    raise MethodConfigError(f"unknown extra condition {kind!r}: use one of {EXTRAS}")


def reference_task(kind: str) -> EnergyBuilder:
    """The energy of a task guided by a reference image of `kind` ("face" or "style")."""

    def build(world: World, request: TaskRequest, artefacts: dict) -> tuple[Energy, None]:
        reference = need(request.reference, f"the {kind} task needs a reference image")
        return reference_energy(world, kind, reference, artefacts), None

    return build


def control_energy(world: World, request: TaskRequest, artefacts: dict) -> tuple[Energy, Control | None]:
    """The edge energy of the map (only measured when it is off), the ControlNet input, and an extra condition."""
    image = need(request.control_image, "the control-map task needs an image or a map")
    control_map = image if request.annotator == "none" else annotate(image, request.annotator)
    artefacts["control map"] = control_map.resize((world.backbone.image_size,) * 2, Image.NEAREST)
    tensor = map_tensor(control_map, world.backbone.image_size)
    control = world.backbone.prepare_control(tensor) if request.use_controlnet else None
    edges = EdgeEnergy(tensor).to(world.backbone.device)
    terms = [Term(edges)] if request.edge_energy else []
    if request.extra:
        reference = need(request.reference, f"{request.extra} needs a reference")
        terms.append(Term(reference_energy(world, request.extra, reference, artefacts), **EXTRA_TERMS.get(request.extra, {})))
    return (Terms(terms) if terms else edges), control


def class_energy(world: World, request: TaskRequest, artefacts: dict) -> tuple[Energy, None]:
    """-log p(class) under the world's evaluator, which only measures (GFCG guides with `world.classifier`)."""
    return ClassEnergy(world.evaluator, [need(request.condition, "pick a class")] * request.samples), None

"""The tasks' energy builders: each builds, from a world and a request, the energy (from conditions/) that guides
(and measures) a run, the ControlNet input, and pictures of what was used (conditions/__init__.py: adding a condition).

`control_energy`, `class_energy` and what `reference_task` returns are EnergyBuilders (TaskSpec.energy; their
arguments: guidance.playground.tasks.spec.EnergyBuilder). A request that lacks what its energy needs raises
MethodConfigError.
"""

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
from guidance.playground.tasks.spec import ControlRequest, EnergyBuilder, ReferenceRequest, TaskRequest
from guidance.worlds import World

# A condition on top of a control map guides in its own window with its own scale (docs/methods.md, FreeDoM step 7):
# FreeDoM's ControlNet face-ID run guides index 39..0 of 100 with k = 0.08 and no time travel [code]
EXTRA_TERMS = {"face": {"window": Window(0.6, 1.0), "scale": 0.08}}


def need(value, message: str):
    """A value that must be given.

    Args:
        value: the value.
        message: what to say where it is None.

    Returns:
        The value.

    Raises:
        MethodConfigError: the value is None.
    """
    if value is None:
        raise MethodConfigError(message)
    return value


def reference_energy(world: World, kind: str, reference: Image.Image, artefacts: dict) -> Energy:
    """The face-identity or style energy of a reference image.

    Args:
        world: the World whose networks the energy uses.
        kind: "face" or "style".
        reference: the reference image.
        artefacts: receives the face crop ("face crop") or a thumbnail ("style").

    Returns:
        The energy, on the backbone's device.

    Raises:
        MethodConfigError: an unknown kind.
        NoFaceFoundError: "face", where the world's detector finds no face in the reference.
    """
    if kind == "face":
        energy = FaceIDEnergy(reference, world.face_embedder, world.face_detector)
        artefacts["face crop"] = to_pil(crop(to_tensor(reference), energy.box, 160))[0]
        return energy.to(world.backbone.device)
    if kind == "style":
        artefacts["style"] = reference.resize((160, 160))
        return StyleEnergy(reference, world.style_features, world.pattern_judge).to(world.backbone.device)
    raise MethodConfigError(f"unknown extra condition {kind!r}: use one of {EXTRAS}")


def reference_task(kind: str) -> EnergyBuilder:
    """The energy of a task guided by a reference image (ReferenceRequest.reference).

    Args:
        kind: "face" or "style".

    Returns:
        The task's EnergyBuilder; it gives no ControlNet input.
    """

    def build(world: World, request: ReferenceRequest, artefacts: dict) -> tuple[Energy, None]:
        reference = need(request.reference, f"the {kind} task needs a reference image")
        return reference_energy(world, kind, reference, artefacts), None

    return build


def control_energy(world: World, request: ControlRequest, artefacts: dict) -> tuple[Energy, Control | None]:
    """The control-map task's energy: the map's edge energy (only measured when it is off), plus a face or style on
    top (EXTRA_TERMS); the ControlNet input where the request uses it. The map used goes to `artefacts`."""
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
    """-log p(class) under the world's evaluator, which only measures (GFCG guides with `world.classifier`); no
    ControlNet input."""
    return ClassEnergy(world.evaluator, [need(request.condition, "pick a class")] * request.samples), None

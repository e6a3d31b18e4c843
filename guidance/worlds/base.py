"""A model world: a backbone plus the networks its energies and metrics use, behind one dataclass.

The networks satisfy the protocols of conditions/: FaceDetector and FaceEmbedder (conditions/face.py),
StyleFeatures (conditions/style.py), and the Classifier of guidance/methods/gfcg.py (class_names, probabilities).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..backbone import Backbone
from ..errors import WeightsUnavailableError


@dataclass
class World:
    """What the tasks need from a world. `classifier` guides GFCG; `evaluator` only ever measures."""

    backbone: Backbone
    face_detector: Any  # conditions.face.FaceDetector
    face_embedder: Any  # conditions.face.FaceEmbedder
    style_features: Any  # conditions.style.StyleFeatures
    classifier: Any  # guidance.methods.gfcg.Classifier
    evaluator: Any  # a Classifier with a different architecture or weights

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes its classifier and evaluator tell apart (the class tasks offer these)."""
        return tuple(self.backbone.class_names or ())


class Unavailable:
    """Stands in for a network whose weights could not be had: using it raises the loading error."""

    def __init__(self, error: WeightsUnavailableError):
        self.error = error

    def __getattr__(self, name: str):
        raise self.error

    def __call__(self, *args, **kwargs):
        raise self.error


def optional(factory, *args, **kwargs):
    """The network, or an `Unavailable` that raises its WeightsUnavailableError when a task uses it."""
    try:
        return factory(*args, **kwargs)
    except WeightsUnavailableError as error:
        return Unavailable(error)


def load_sd15_world(
    model: str | None = None,
    controlnet: str | None = None,
    device: str | torch.device | None = None,
    class_names: tuple[str, ...] | None = None,
    tiny_vae: str | None = None,
) -> World:
    """Stable Diffusion 1.5 with facenet-pytorch faces and OpenCLIP style features and classifiers.

    The GFCG classifier is OpenCLIP ViT-B-16 zero-shot; the evaluator is ViT-B-32, a different model.
    The UNet, VAE and text encoder must load; face and CLIP networks whose weights are missing make
    only the tasks that use them fail, with their WeightsUnavailableError. `tiny_vae` (e.g. guidance.worlds.sd15.TAESD)
    adds a tiny decoder for the guidance path (Settings.tiny_decoder).
    """
    from conditions.classes import CLIPZeroShot
    from conditions.face import FacenetEmbedder, MTCNNDetector
    from conditions.style import CLIPPatchTokens

    from .sd15 import SD15, SD_CLASSES, load_sd15

    class_names = class_names or SD_CLASSES

    backbone = load_sd15(model or SD15, controlnet=controlnet, device=device, tiny_vae=tiny_vae)
    backbone.class_names = class_names
    return World(
        backbone=backbone,
        face_detector=MTCNNDetector(device=backbone.device),
        face_embedder=optional(lambda: FacenetEmbedder().to(backbone.device)),
        style_features=optional(CLIPPatchTokens, device=backbone.device),
        classifier=optional(CLIPZeroShot, class_names, device=backbone.device),
        evaluator=optional(CLIPZeroShot, class_names, model="ViT-B-32", device=backbone.device),
    )

"""A model world: a backbone plus the networks its energies and metrics use, behind one dataclass."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .backbone import Backbone


@dataclass
class World:
    """What the tasks need from a world. `classifier` guides GFCG; `evaluator` only ever measures."""

    backbone: Backbone
    face_detector: Any  # conditions.face.FaceDetector
    face_embedder: Any  # conditions.face.FaceEmbedder
    style_features: Any  # conditions.style.StyleFeatures
    classifier: Any  # guidance.methods.gfcg.Classifier
    evaluator: Any  # a Classifier with a different architecture or weights


def load_sd15_world(
    model: str | None = None,
    controlnet: str | None = None,
    device: str | torch.device | None = None,
    class_names: tuple[str, ...] = ("cat", "dog", "fox", "wolf", "lion", "tiger", "owl", "eagle"),
) -> World:
    """Stable Diffusion 1.5 with facenet-pytorch faces and OpenCLIP style features and classifiers.

    The GFCG classifier is OpenCLIP ViT-B-16 zero-shot; the evaluator is ViT-B-32, a different model.
    """
    from conditions.classes import CLIPZeroShot
    from conditions.face import FacenetEmbedder, MTCNNDetector
    from conditions.style import CLIPPatchTokens

    from .sd15 import SD15, load_sd15

    backbone = load_sd15(model or SD15, controlnet=controlnet, device=device)
    backbone.class_names = class_names
    return World(
        backbone=backbone,
        face_detector=MTCNNDetector(device=backbone.device),
        face_embedder=FacenetEmbedder().to(backbone.device),
        style_features=CLIPPatchTokens(device=backbone.device),
        classifier=CLIPZeroShot(class_names, device=backbone.device),
        evaluator=CLIPZeroShot(class_names, model="ViT-B-32", device=backbone.device),
    )

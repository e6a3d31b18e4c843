"""The embedded world: small models trained on the procedural face renderer, shipped under assets/world.

`load_world()` returns a guidance.worlds.World whose backbone is an EmbeddedBackbone, so that every guidance
method runs on a laptop CPU in seconds. Rebuild the assets with `python -m guidance.world.train all`.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from torch import nn

from guidance.errors import WeightsUnavailableError
from guidance.worlds import World

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "world"
LABEL_EMBEDDING = "label_embedding.safetensors"
NET_FILES = {
    "classifier": "classifier.safetensors",
    "evaluator": "evaluator.safetensors",
    "face_embedder": "face_embedder.safetensors",
    "face_detector": "face_detector.safetensors",
}
NET_CLASSES = {"classifier": "Classifier", "evaluator": "Evaluator", "face_embedder": "FaceEmbedder", "face_detector": "FaceDetectorNet"}
REQUIRED = ("unet/config.json", f"unet/{LABEL_EMBEDDING}", "scheduler/scheduler_config.json", *NET_FILES.values())


def load_label_embedding(folder: Path, device: str | torch.device) -> nn.Embedding:
    """The (classes + 1, D) label table saved next to a UNet; its last row is the null label."""
    from safetensors.torch import load_file

    weight = load_file(str(folder / LABEL_EMBEDDING))["weight"]
    return nn.Embedding.from_pretrained(weight, freeze=True).to(device)


def _optional(path: Path, loader, device):
    return loader(path).to(device).eval().requires_grad_(False) if (path / "config.json").exists() else None


def load_world(path: str | Path = ASSETS, device: str | torch.device = "cpu") -> World:
    """The embedded world from `path`; the guide UNet and the ControlNet are loaded when present.

    Raises WeightsUnavailableError (with the rebuild command) when a required file is missing, or when
    the files do not fit this version of the nets (stale or damaged weights).
    """
    path = Path(path)
    rebuild = f"Rebuild them with: python -m guidance.world.train all --out {path}"
    missing = [name for name in REQUIRED if not (path / name).exists()]
    if missing:
        raise WeightsUnavailableError(f"embedded-world weights ({', '.join(missing)})", str(path), rebuild)
    try:
        return _load(path, device)
    except (RuntimeError, ValueError, TypeError, KeyError, OSError, SafetensorError) as error:  # wrong net, shapes, bad file
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsUnavailableError(
            "embedded-world weights that fit this version of the nets", str(path),
            f"The files there do not load ({first_line}). {rebuild}",
        ) from error  # fmt: skip


def _load(path: Path, device: str | torch.device) -> World:
    from diffusers import ControlNetModel, DDPMScheduler, UNet2DConditionModel

    from .backbone import EmbeddedBackbone
    from .nets import FaceDetector, StyleFeatures, load_net

    unet = UNet2DConditionModel.from_pretrained(path / "unet").to(device).eval().requires_grad_(False)
    guide = _optional(path / "guide_unet", UNet2DConditionModel.from_pretrained, device)
    backbone = EmbeddedBackbone(
        unet, load_label_embedding(path / "unet", device), dict(DDPMScheduler.load_config(path / "scheduler")),
        controlnet=_optional(path / "controlnet", ControlNetModel.from_pretrained, device),
        guide_unet=guide, guide_label_embedding=load_label_embedding(path / "guide_unet", device) if guide is not None else None,
    )  # fmt: skip
    nets = {name: load_net(path / file, device, NET_CLASSES[name]) for name, file in NET_FILES.items()}
    return World(
        backbone=backbone,
        face_detector=FaceDetector(nets["face_detector"]),
        face_embedder=nets["face_embedder"],
        style_features=StyleFeatures(nets["classifier"]).eval(),
        classifier=nets["classifier"],
        evaluator=nets["evaluator"],
    )

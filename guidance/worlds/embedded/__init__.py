"""The embedded world: small models trained on the procedural face renderer, shipped under assets/world.

`load_world()` returns a guidance.worlds.World whose backbone is an EmbeddedBackbone, so that every guidance
method runs on a laptop CPU in seconds. Rebuild the assets with `python -m guidance.worlds.embedded.build.train all`.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors import SafetensorError
from torch import nn

from guidance.errors import WeightsUnavailableError
from ..base import World, for_inference

ASSETS = Path(__file__).resolve().parents[3] / "assets" / "world"
LABEL_EMBEDDING = "label_embedding.safetensors"
STYLE_STAGES = 2  # the style features: the style net's stem and both its stages
STYLE_ANGLES = tuple(k * math.pi / 4 for k in range(4))  # read at the renderer's four pattern orientations
FILES = {  # every asset's name under ASSETS, for the loader and the trainer
    "vae": "vae", "unet": "unet", "guide_unet": "guide_unet", "controlnet": "controlnet", "scheduler": "scheduler",
    "classifier": "classifier.safetensors", "evaluator": "evaluator.safetensors",
    "face_embedder": "face_embedder.safetensors", "face_detector": "face_detector.safetensors",
    "style_net": "style_net.safetensors", "tiny_decoder": "tiny_decoder", "realism": "realism_reference.safetensors",
}  # fmt: skip
NET_CLASSES = {
    "classifier": "Classifier", "evaluator": "AttributeEvaluator", "face_embedder": "FaceEmbedder", "face_detector": "FaceDetectorNet",
    "style_net": "StyleNet",
}  # fmt: skip
REQUIRED = (
    f"{FILES['vae']}/config.json", f"{FILES['unet']}/config.json", f"{FILES['unet']}/{LABEL_EMBEDDING}",
    f"{FILES['scheduler']}/scheduler_config.json",
    *(FILES[name] for name in NET_CLASSES), FILES["realism"],
)  # fmt: skip


def load_label_embedding(folder: Path, device: str | torch.device) -> nn.Embedding:
    """The label table saved next to a UNet.

    Args:
        folder: the UNet's folder.
        device: where the table goes.

    Returns:
        A frozen (classes + 1, D) embedding; its last row is the null label.
    """
    from safetensors.torch import load_file

    weight = load_file(str(folder / LABEL_EMBEDDING))["weight"]
    return nn.Embedding.from_pretrained(weight, freeze=True).to(device)


def _optional(path: Path, loader, device):
    return for_inference(loader(path, torch_dtype=torch.float32), device) if (path / "config.json").exists() else None


def load_world(path: str | Path = ASSETS, device: str | torch.device = "cpu") -> World:
    """The embedded world from `path`; the guide UNet, the ControlNet and the tiny decoder are loaded when present.

    Args:
        path: the world's folder (the shipped assets/world by default).
        device: where its models go.

    Returns:
        The World: the EmbeddedBackbone, its networks and its realism score.

    Raises:
        WeightsUnavailableError: with the command that writes them, when a required file is missing, or when the
            files do not fit this version of the nets (stale or damaged weights).
    """
    path = Path(path)
    rebuild = f"Rebuild them with: python -m guidance.worlds.embedded.build.train all --out {path}"
    missing = [name for name in REQUIRED if not (path / name).exists()]
    if missing == [FILES["realism"]]:  # written from the evaluator alone
        rebuild = f"Write it with: python -m guidance.worlds.embedded.build.realism --world {path}"
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


def load_backbone(path: str | Path = ASSETS, device: str | torch.device = "cpu"):
    """The embedded world's EmbeddedBackbone alone (VAE, UNet, guide, ControlNet, tiny guidance decoder), as the
    trainer needs it; the optional parts are loaded when present.

    Args:
        path: the world's folder, as load_world takes it.
        device: where its models go.

    Returns:
        The EmbeddedBackbone.
    """
    from diffusers import AutoencoderKL, AutoencoderTiny, ControlNetModel, DDPMScheduler, UNet2DConditionModel

    from .backbone import EmbeddedBackbone

    path = Path(path)
    unet = for_inference(UNet2DConditionModel.from_pretrained(path / FILES["unet"], torch_dtype=torch.float32), device)
    guide = _optional(path / FILES["guide_unet"], UNet2DConditionModel.from_pretrained, device)
    backbone = EmbeddedBackbone(
        unet, load_label_embedding(path / FILES["unet"], device), dict(DDPMScheduler.load_config(path / FILES["scheduler"])),
        vae=for_inference(AutoencoderKL.from_pretrained(path / FILES["vae"]), device),
        controlnet=_optional(path / FILES["controlnet"], ControlNetModel.from_pretrained, device),
        guide_unet=guide, guide_label_embedding=load_label_embedding(path / FILES["guide_unet"], device) if guide is not None else None,
    )  # fmt: skip
    backbone.tiny_decoder = _optional(path / FILES["tiny_decoder"], AutoencoderTiny.from_pretrained, device)
    return backbone


def _load(path: Path, device: str | torch.device) -> World:
    from .nets import FaceDetector, RealismScore, StyleFeatures, load_net

    backbone = load_backbone(path, device)
    nets = {name: load_net(path / FILES[name], device, NET_CLASSES[name]) for name in NET_CLASSES}
    return World(
        backbone=backbone,
        face_detector=FaceDetector(nets["face_detector"]),
        face_embedder=nets["face_embedder"],
        style_features=StyleFeatures(nets["style_net"].trunk, STYLE_STAGES, STYLE_ANGLES).eval(),
        classifier=nets["classifier"],
        evaluator=nets["evaluator"],
        pattern_judge=nets["evaluator"].background,
        realism_score=RealismScore.load(nets["evaluator"], path / FILES["realism"]),
    )

"""The embedded world: small models trained on the procedural face renderer, shipped under assets/world.

`load_world()` returns a guidance.worlds.World whose backbone is an EmbeddedBackbone, so that every guidance
method runs on a laptop CPU in seconds. Rebuild the assets with `python -m guidance.worlds.embedded.build.train all`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors import SafetensorError
from torch import nn

from guidance.errors import WeightsDamagedError, WeightsUnavailableError
from ..base import World, for_inference

ASSETS = Path(__file__).resolve().parents[3] / "assets" / "world"
LABEL_EMBEDDING = "label_embedding.safetensors"
STYLE_STAGES = 2  # the style features: the style net's stem and both its stages
STYLE_ANGLES = tuple(k * math.pi / 4 for k in range(4))  # read at the renderer's four pattern orientations
FILES = {  # every asset's name under ASSETS, for the loader and the trainer
    "vae": "vae",
    "unet": "unet",
    "guide_unet": "guide_unet",
    "controlnet": "controlnet",
    "scheduler": "scheduler",
    "classifier": "classifier.safetensors",
    "evaluator": "evaluator.safetensors",
    "face_embedder": "face_embedder.safetensors",
    "face_detector": "face_detector.safetensors",
    "style_net": "style_net.safetensors",
    "tiny_decoder": "tiny_decoder",
    "realism": "realism_reference.safetensors",
}
NET_CLASSES = {
    "classifier": "Classifier",
    "evaluator": "AttributeEvaluator",
    "face_embedder": "FaceEmbedder",
    "face_detector": "FaceDetectorNet",
    "style_net": "StyleNet",
}
MODEL_WEIGHTS = "diffusion_pytorch_model.safetensors"  # a diffusers model folder's weights
MODEL_FOLDERS = ("vae", "unet", "guide_unet", "controlnet", "tiny_decoder")
REQUIRED = (
    f"{FILES['vae']}/config.json",
    f"{FILES['vae']}/{MODEL_WEIGHTS}",
    f"{FILES['unet']}/config.json",
    f"{FILES['unet']}/{MODEL_WEIGHTS}",
    f"{FILES['unet']}/{LABEL_EMBEDDING}",
    f"{FILES['scheduler']}/scheduler_config.json",
    *(FILES[name] for name in NET_CLASSES),
    FILES["realism"],
)


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
            files do not fit this version of the nets (stale weights).
        WeightsDamagedError: naming the file and the command, when a weight file is cut short or corrupted
            (`weight_file_problem`).
    """
    path = Path(path)
    rebuild = f"Rebuild them with: python -m guidance.worlds.embedded.build.train all --out {path}"
    missing = [name for name in REQUIRED if not (path / name).exists()]
    if missing == [FILES["realism"]]:  # written from the evaluator alone
        rebuild = f"Write it with: python -m guidance.worlds.embedded.build.realism --world {path}"
    if missing:
        raise WeightsUnavailableError(f"embedded-world weights ({', '.join(missing)})", str(path), rebuild)
    for name in weight_files(path):
        if problem := weight_file_problem(path / name):
            raise WeightsDamagedError(f"embedded-world weights ({name})", str(path / name), f"The file {problem}. {rebuild}")
    try:
        return _load(path, device)
    except (RuntimeError, ValueError, TypeError, KeyError, OSError, SafetensorError) as error:  # wrong net, shapes, bad file
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsUnavailableError(
            "embedded-world weights that fit this version of the nets",
            str(path),
            f"The files there do not load ({first_line}). {rebuild}",
        ) from error


def weight_files(path: Path) -> list[str]:
    """The safetensors files of a world folder that load_world reads: the required ones and those of every model
    folder present (one with a config.json).

    Args:
        path: the world's folder.

    Returns:
        Their names relative to `path`.
    """
    names = [name for name in REQUIRED if name.endswith(".safetensors")]
    for folder in (FILES[key] for key in MODEL_FOLDERS):
        if (path / folder / "config.json").exists():
            names += [f"{folder}/{MODEL_WEIGHTS}"] + (
                [f"{folder}/{LABEL_EMBEDDING}"] if (path / folder / LABEL_EMBEDDING).exists() else []
            )
    return list(dict.fromkeys(names))


def weight_file_problem(file: Path) -> str | None:
    """What is wrong with a safetensors file, read from its header alone (8 bytes of length, a JSON table of tensors
    with their byte ranges, then the bytes): missing, cut short, or not such a file. A flipped bit inside the
    tensors' bytes is not seen.

    Args:
        file: the file.

    Returns:
        The problem, to follow "The file ", or None.
    """
    if not file.is_file():
        return "is missing"
    size = file.stat().st_size
    with file.open("rb") as stream:
        head = stream.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else None
        if length is None or length > size - 8:
            return f"is cut short or corrupted: {size} bytes, less than its header needs"
        try:
            table = json.loads(stream.read(length))
            end = max((entry["data_offsets"][1] for key, entry in table.items() if key != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, IndexError):
            return "is corrupted: its header is not a safetensors table of tensors"
    expected = 8 + length + end
    if size < expected:
        return f"is cut short: {size} of its {expected} bytes"
    return f"is corrupted: {size} bytes where its header says {expected}" if size > expected else None


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
        unet,
        load_label_embedding(path / FILES["unet"], device),
        dict(DDPMScheduler.load_config(path / FILES["scheduler"])),
        vae=for_inference(AutoencoderKL.from_pretrained(path / FILES["vae"]), device),
        controlnet=_optional(path / FILES["controlnet"], ControlNetModel.from_pretrained, device),
        guide_unet=guide,
        guide_label_embedding=load_label_embedding(path / FILES["guide_unet"], device) if guide is not None else None,
    )
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

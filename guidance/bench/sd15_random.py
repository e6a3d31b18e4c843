"""Stable Diffusion 1.5 at its real sizes with random weights: right for timing, not for quality.

Every network is built from its published configuration: the SD 1.5 UNet, VAE and ControlNet, the CLIP
ViT-L/14 text encoder (with a character-level tokenizer, since the real one needs vocabulary files),
facenet's InceptionResnetV1 for faces and OpenCLIP ViT-B-16 / ViT-B-32 for style, GFCG and evaluation.
"""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL, AutoencoderTiny, ControlNetModel, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from guidance.schedulers import SD_SCHEDULE
from guidance.worlds import World
from guidance.worlds.base import for_inference
from guidance.worlds.sd15 import SD_CLASSES as CLASS_NAMES
from guidance.worlds.sd15 import StableDiffusionBackbone

UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
}
VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "sample_size": 512,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "scaling_factor": 0.18215,
}
TEXT = {  # CLIP ViT-L/14's text tower
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}


def char_tokenizer(max_length: int = 77) -> CLIPTokenizer:
    """A character-level CLIP BPE vocabulary (no merges) with CLIP's special tokens, padded to `max_length`."""
    symbols = list(string.ascii_lowercase + string.digits + "'.,-!?")
    tokens = ["<|startoftext|>", "<|endoftext|>"] + symbols + [s + "</w>" for s in symbols]
    with tempfile.TemporaryDirectory() as folder:
        vocab, merges = Path(folder) / "vocab.json", Path(folder) / "merges.txt"
        vocab.write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
        merges.write_text("#version: 0.2\n")
        return CLIPTokenizer(str(vocab), str(merges), model_max_length=max_length)


class FullFrameDetector:
    """conditions.face.FaceDetector that returns a fixed central box: random networks detect nothing."""

    no_face_hint = ""
    fallback_box = (0.1, 0.1, 0.9, 0.9)

    def box(self, image) -> tuple[float, float, float, float]:
        """The central box, whatever the image."""
        return (0.1, 0.1, 0.9, 0.9)


def build_backbone(
    image_size: int, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> StableDiffusionBackbone:
    """The SD 1.5 UNet, VAE, ViT-L/14 text encoder and ControlNet, and TAESD's AutoencoderTiny (its default
    configuration) as the tiny guidance decoder, randomly initialised. The UNet doubles as Autoguidance's guide
    model (timing only).

    Args:
        image_size: the pixel size it samples at.
        device, dtype: where and in what the weights live.
        seed: torch's seed for the random weights.
    """
    torch.manual_seed(seed)
    tokenizer = char_tokenizer()
    unet = UNet2DConditionModel(**UNET)
    vae = AutoencoderKL(**VAE)
    text = CLIPTextModel(CLIPTextConfig(**TEXT, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    control = ControlNetModel.from_unet(unet)
    tiny = AutoencoderTiny()
    for module in (unet, vae, text, control, tiny):
        for_inference(module, device, dtype)
    backbone = StableDiffusionBackbone(unet, vae, text, tokenizer, SD_SCHEDULE, control, image_size, name="sd15-random")
    backbone.guide_unet, backbone.has_guide_model, backbone.tiny_decoder = unet, True, tiny
    return backbone


NETWORKS = ("face_embedder", "style_features", "classifier", "evaluator")


def build_world(
    image_size: int, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, needs: tuple[str, ...] = NETWORKS
) -> World:
    """A World around `build_backbone` with real-size, random-weight networks (timing only).

    Args:
        image_size, device, dtype: as `build_backbone` takes them.
        needs: the networks to build among NETWORKS; the others are None.
    """
    from conditions.classes import CLIPZeroShot
    from conditions.face import FacenetEmbedder
    from conditions.style import CLIPPatchTokens

    builders = {
        "face_embedder": lambda: FacenetEmbedder(pretrained=None).to(device),
        "style_features": lambda: CLIPPatchTokens(pretrained=None, device=device),
        "classifier": lambda: CLIPZeroShot(CLASS_NAMES, pretrained=None, device=device),
        "evaluator": lambda: CLIPZeroShot(CLASS_NAMES, model="ViT-B-32", pretrained=None, device=device),
    }
    backbone = build_backbone(image_size, device, dtype)
    backbone.class_names = CLASS_NAMES
    nets = {name: builders[name]() if name in needs else None for name in NETWORKS}
    return World(backbone=backbone, face_detector=FullFrameDetector(), **nets)

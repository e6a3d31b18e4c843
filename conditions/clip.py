"""OpenCLIP loading shared by the style energy and the zero-shot classifier."""
from __future__ import annotations

import open_clip
import torch
from huggingface_hub.errors import HTTPError
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torch import Tensor

from guidance.errors import WeightsUnavailableError

from .images import resize

CLIP_MODEL, CLIP_WEIGHTS = "ViT-B-16", "openai"


def load_clip(model: str = CLIP_MODEL, pretrained: str | None = CLIP_WEIGHTS, device: str | torch.device = "cpu"):
    """(model, tokenizer) from open_clip; pretrained=None gives random weights (tests, timing)."""
    try:
        clip = open_clip.create_model(model, pretrained=pretrained, device=device)
    except (OSError, RuntimeError, ValueError, ConnectionError, HTTPError) as error:
        raise WeightsUnavailableError(
            f"OpenCLIP {model} ({pretrained}) weights",
            "the open_clip / Hugging Face cache",
            f"Download them once with network access. Cause: {type(error).__name__}: {error}",
        ) from error
    return clip.eval().requires_grad_(False), open_clip.get_tokenizer(model)


def clip_pixels(images: Tensor, size: int) -> Tensor:
    """[-1, 1] pixels resized to CLIP's input size and normalised as CLIP expects."""
    mean = torch.tensor(OPENAI_DATASET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD, device=images.device).view(1, 3, 1, 1)
    return (resize(images, size) * 0.5 + 0.5 - mean) / std

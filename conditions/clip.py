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
    """An OpenCLIP model, frozen in eval mode, and its tokenizer.

    Args:
        model: the OpenCLIP architecture name.
        pretrained: the weights' tag; None gives random weights (tests, timing).
        device: where the model is put.

    Returns:
        (model, tokenizer).

    Raises:
        WeightsUnavailableError: the weights cannot be loaded (offline and not cached).
    """
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
    """Pixels as CLIP's image encoder takes them.

    Args:
        images: (B, 3, H, W) in [-1, 1].
        size: CLIP's input size in pixels.

    Returns:
        (B, 3, size, size), normalised by CLIP's mean and standard deviation.
    """
    mean = torch.tensor(OPENAI_DATASET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD, device=images.device).view(1, 3, 1, 1)
    return (resize(images, size) * 0.5 + 0.5 - mean) / std

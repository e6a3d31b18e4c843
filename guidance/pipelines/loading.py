"""A guided pipeline of the family that a folder's or hub id's model_index.json names, loaded offline where asked."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from diffusers import ControlNetModel, DiffusionPipeline
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import HTTPError

from guidance.errors import UnsupportedModelError, WeightsUnavailableError
from guidance.pipelines.guided import (
    GuidedStableDiffusion3Pipeline,
    GuidedStableDiffusionControlNetPipeline,
    GuidedStableDiffusionPipeline,
    GuidedStableDiffusionXLControlNetPipeline,
    GuidedStableDiffusionXLPipeline,
)

LOAD_ERRORS = (OSError, ValueError, ConnectionError, HTTPError)
FAMILY_OF_CLASS = (("StableDiffusion3", "sd3"), ("StableDiffusionXL", "sdxl"), ("StableDiffusion", "sd"))  # first match wins
TITLES = {"sd": "Stable Diffusion 1.x/2.x", "sdxl": "Stable Diffusion XL", "sd3": "Stable Diffusion 3"}


def where(source: str) -> str:
    """Where a model is looked for, for error messages: the folder, or the hub id and cache."""
    if Path(source).exists():
        return f"local folder {Path(source).resolve()}"
    offline = " (HF_HUB_OFFLINE is set)" if hub_constants.HF_HUB_OFFLINE else ""
    return f"hub id {source!r}, cache {hub_constants.HF_HUB_CACHE}{offline}"


def local_only(source: str) -> bool:
    """Read from disk only: a folder, or HF_HUB_OFFLINE set."""
    return bool(os.environ.get("HF_HUB_OFFLINE")) or Path(source).exists()


def load(what: str, source: str, loader, **kwargs):
    """`loader(source, **kwargs)`, its loading errors turned into WeightsUnavailableError.

    Args:
        what: the weights, as a person names them.
        source: a hub id or folder.
        loader: e.g. a from_pretrained.

    Raises:
        WeightsUnavailableError: naming the weights, where they were looked for and how to get them.
    """
    try:
        return loader(source, **kwargs)
    except LOAD_ERRORS as error:
        how = (
            f"Download them once with network access (e.g. `huggingface-cli download {source}`), or pass a local "
            f"folder saved with `save_pretrained`. Cause: {type(error).__name__}: {error}"
        )
        raise WeightsUnavailableError(what, where(source), how) from error


def family(source: str, offline: bool = False) -> str:
    """The family of a diffusers pipeline folder or hub id, read from its model_index.json.

    Args:
        source: a hub id or folder.
        offline: read a hub id's model_index.json from the cache only, never from the network.

    Returns:
        "sd", "sdxl" or "sd3".

    Raises:
        WeightsUnavailableError: no model_index.json could be read.
        UnsupportedModelError: a pipeline class of another family.
    """
    index = load(
        "the pipeline's files (model_index.json)",
        source,
        DiffusionPipeline.load_config,
        local_files_only=offline or local_only(source),
    )
    name = index.get("_class_name", "")
    for prefix, found in FAMILY_OF_CLASS:
        if prefix in name:
            return found
    raise UnsupportedModelError(
        f"{source} is a {name or 'pipeline without a class name'}; guided pipelines cover Stable "
        "Diffusion 1.x/2.x (+ ControlNet), SDXL and SD 3 (guidance.pipelines)"
    )


def load_pipeline(
    source: str, controlnet: str | None = None, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> DiffusionPipeline:
    """The guided pipeline of `source`'s family (with a ControlNet for SD 1.x/2.x), on `device`.

    Args:
        source: a hub id or folder (diffusers layout, with model_index.json).
        controlnet: a ControlNet's hub id or folder (SD 1.x/2.x and SDXL), or None.
        device: where the modules go.
        dtype: their dtype; default fp16 on CUDA, fp32 elsewhere.

    Returns:
        A GuidedStableDiffusion(ControlNet/XL/XLControlNet/3)Pipeline.

    Raises:
        WeightsUnavailableError: weights that cannot be had (offline and not cached, a wrong id or folder).
        UnsupportedModelError: another family, or a ControlNet with SD 3.
    """
    device = torch.device(device)
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    kind = family(source)
    common = {"torch_dtype": dtype, "local_files_only": local_only(source)}
    if kind == "sd3" and not _has(source, "text_encoder_3"):  # T5 is optional: SD 3 runs on its two CLIP encoders without it
        common.update(text_encoder_3=None, tokenizer_3=None)
    if controlnet is not None and kind == "sd3":
        raise UnsupportedModelError(f"guided ControlNet pipelines are SD 1.x/2.x's and SDXL's; {source} is {TITLES[kind]}")
    if kind == "sd":
        common.update(safety_checker=None, requires_safety_checker=False)
    if controlnet is not None:
        net = load(
            "ControlNet weights",
            controlnet,
            ControlNetModel.from_pretrained,
            torch_dtype=dtype,
            local_files_only=local_only(controlnet),
        )
        cls = GuidedStableDiffusionControlNetPipeline if kind == "sd" else GuidedStableDiffusionXLControlNetPipeline
        pipe = load(f"{TITLES[kind]} weights", source, cls.from_pretrained, controlnet=net, **common)
    else:
        cls = {
            "sd": GuidedStableDiffusionPipeline,
            "sdxl": GuidedStableDiffusionXLPipeline,
            "sd3": GuidedStableDiffusion3Pipeline,
        }[kind]
        pipe = load(f"{TITLES[kind]} weights", source, cls.from_pretrained, **common)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def _has(source: str, component: str) -> bool:
    """Whether the pipeline index names a component (a [library, class] pair, not [null, null])."""
    index = DiffusionPipeline.load_config(source, local_files_only=local_only(source))
    return bool(index.get(component, [None])[0])

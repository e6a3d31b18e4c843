"""Stable Diffusion 1.5 (+ ControlNet) as a backbone, loaded with diffusers by hub id or local folder, and a diffusers
model of any family (SD 1.x/2.x, SDXL, SD 3) as a World (load_sd15_world: facenet-pytorch faces, OpenCLIP style
features and classifiers)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers import AutoencoderKL, AutoencoderTiny, ControlNetModel, DDIMScheduler, UNet2DConditionModel
from torch import Tensor
from transformers import CLIPTextModel, CLIPTokenizer

from guidance.backbone import Backbone, Condition, UNetBackbone
from guidance.pipelines.denoisers import PipelineBackbone
from guidance.pipelines.loading import load, local_only
from guidance.worlds.base import World, for_inference, optional

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SD_CLASSES = ("cat", "dog", "fox", "wolf", "lion", "tiger", "owl", "eagle")  # what the CLIP zero-shot classifiers tell apart
TAESD = "madebyollin/taesd"  # AutoencoderTiny weights for SD 1.5's latents: the tiny guidance decoder


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class StableDiffusionBackbone(UNetBackbone):
    """Latent backbone: CLIP text conditioning, 4x(H/8)x(W/8) latents, VAE decoding (made by `load_sd15`).

    Args:
        unet, vae, text_encoder, tokenizer: SD 1.5's diffusers and transformers components.
        scheduler_config: its scheduler's config (the noise schedule and prediction type come from it).
        controlnet: a ControlNetModel, or None.
        image_size: the pixel size of the images it samples.
        name: the model's hub id or folder, shown in results.
    """

    def __init__(
        self, unet, vae, text_encoder, tokenizer, scheduler_config: dict, controlnet=None, image_size: int = 512, name: str = SD15
    ):
        super().__init__(unet, controlnet)
        self.vae, self.text_encoder, self.tokenizer = vae, text_encoder, tokenizer
        self.name, self.image_size = name, image_size
        self.scheduler_config = dict(scheduler_config)
        self.prediction_type = self.scheduler_config.get("prediction_type", "epsilon")
        self.alphas_cumprod = DDIMScheduler.from_config(scheduler_config).alphas_cumprod.float()
        factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.sample_shape = (unet.config.in_channels, image_size // factor, image_size // factor)
        self._embedding_cache: dict[str, Tensor] = {}

    @torch.no_grad()
    def embed(self, conditions: Sequence[Condition]) -> Tensor:
        """CLIP text-encoder hidden states, (B, 77, D); None is the empty prompt."""
        prompts = ["" if c is None else c for c in conditions]
        missing = sorted({p for p in prompts if p not in self._embedding_cache})
        if missing:
            tokens = self.tokenizer(
                missing, padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True, return_tensors="pt"
            ).input_ids.to(self.device)
            hidden = self.text_encoder(tokens)[0].to(self.dtype)
            self._embedding_cache.update(zip(missing, hidden))
        return torch.stack([self._embedding_cache[p] for p in prompts])

    def decode(self, x0: Tensor) -> Tensor:
        return self.vae.decode(x0.to(self.dtype) / self.vae.config.scaling_factor).sample.float()


def load_tiny_decoder(source: str, dtype: torch.dtype) -> AutoencoderTiny:
    """An AutoencoderTiny (e.g. TAESD) for the guidance path, from a hub id or folder.

    Raises:
        WeightsUnavailableError: naming the weights and where they were looked for.
    """
    return load(
        "tiny decoder (AutoencoderTiny) weights",
        source,
        AutoencoderTiny.from_pretrained,
        torch_dtype=dtype,
        local_files_only=local_only(source),
    )


def load_sd15(
    model: str = SD15,
    controlnet: str | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    image_size: int = 512,
    local_files_only: bool | None = None,
    tiny_vae: str | None = None,
) -> StableDiffusionBackbone:
    """Stable Diffusion 1.5 components (and a ControlNet, and an AutoencoderTiny such as TAESD for the guidance
    path) by hub id or folder; fp16 on CUDA, fp32 on CPU.

    Args:
        model: SD 1.5's hub id or folder (diffusers layout: unet, vae, text_encoder, tokenizer, scheduler).
        controlnet: a ControlNet's hub id or folder, or None.
        device: default CUDA where available, else the CPU.
        dtype: default fp16 on CUDA, fp32 elsewhere.
        image_size: the pixel size of the images it samples.
        local_files_only: read only from disk; default True for a folder or with HF_HUB_OFFLINE set.
        tiny_vae: an AutoencoderTiny's hub id or folder for the guidance path, or None.

    Raises:
        WeightsUnavailableError: naming the missing weights; nothing is half-loaded.
    """
    device = torch.device(device) if device is not None else default_device()
    dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    if local_files_only is None:
        local_files_only = local_only(model)
    common = {"local_files_only": local_files_only}
    unet = load(
        "Stable Diffusion UNet weights",
        model,
        UNet2DConditionModel.from_pretrained,
        subfolder="unet",
        torch_dtype=dtype,
        **common,
    )
    vae = load("Stable Diffusion VAE weights", model, AutoencoderKL.from_pretrained, subfolder="vae", torch_dtype=dtype, **common)
    text_encoder = load(
        "CLIP text encoder weights", model, CLIPTextModel.from_pretrained, subfolder="text_encoder", torch_dtype=dtype, **common
    )
    tokenizer = load("CLIP tokenizer files", model, CLIPTokenizer.from_pretrained, subfolder="tokenizer", **common)
    scheduler_config = load("the scheduler config", model, DDIMScheduler.load_config, subfolder="scheduler", **common)
    control = None
    if controlnet is not None:
        control = load(
            "ControlNet weights",
            controlnet,
            ControlNetModel.from_pretrained,
            torch_dtype=dtype,
            local_files_only=local_only(controlnet),
        )
    tiny = None if tiny_vae is None else load_tiny_decoder(tiny_vae, dtype)
    for module in (unet, vae, text_encoder, control, tiny):
        if module is not None:
            for_inference(module, device)
    backbone = StableDiffusionBackbone(unet, vae, text_encoder, tokenizer, scheduler_config, control, image_size, name=model)
    backbone.tiny_decoder = tiny
    return backbone


def load_backbone(model: str, controlnet: str | None = None, device=None, tiny_vae: str | None = None) -> Backbone:
    """The backbone of a diffusers model of any family as its guided pipeline (guidance.pipelines.PipelineBackbone):
    SD 1.x/2.x, SDXL or SD 3, as its model_index.json says; a folder of SD 1.5's components without one by `load_sd15`.

    Args:
        model: a hub id or folder.
        controlnet: a ControlNet's hub id or folder (SD 1.x/2.x, SDXL), or None.
        device: default CUDA where available, else the CPU.
        tiny_vae: an AutoencoderTiny's hub id or folder for the guidance path (TAESD, TAESDXL, TAESD3), or None.

    Raises:
        WeightsUnavailableError: weights that cannot be had.
        UnsupportedModelError: another family, or a ControlNet with SD 3.
    """
    from guidance.pipelines.loading import load_pipeline

    if Path(model).exists() and not (Path(model) / "model_index.json").exists():
        return load_sd15(model, controlnet=controlnet, device=device, tiny_vae=tiny_vae)
    device = torch.device(device) if device is not None else default_device()
    backbone = PipelineBackbone(load_pipeline(model, controlnet, device), name=model)
    if tiny_vae is not None:
        backbone.tiny_decoder = for_inference(load_tiny_decoder(tiny_vae, backbone.dtype), device)
    return backbone


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
    only the tasks that use them fail, with their WeightsUnavailableError.

    Args:
        model: SD 1.5's hub id or folder (default SD15).
        controlnet: a ControlNet's hub id or folder, or None.
        device: default CUDA where available, else the CPU.
        class_names: the classes the zero-shot classifiers tell apart (default SD_CLASSES).
        tiny_vae: e.g. guidance.worlds.sd15.TAESD: a tiny decoder for the guidance path (Settings.tiny_decoder).

    Raises:
        WeightsUnavailableError: the UNet, VAE, text encoder or a requested ControlNet or tiny decoder cannot load.
    """
    from conditions.classes import CLIPZeroShot
    from conditions.face import FacenetEmbedder, MTCNNDetector
    from conditions.style import CLIPPatchTokens

    class_names = class_names or SD_CLASSES
    backbone = load_backbone(model or SD15, controlnet, device, tiny_vae)
    backbone.class_names = class_names
    return World(
        backbone=backbone,
        face_detector=MTCNNDetector(device=backbone.device),
        face_embedder=optional(lambda: FacenetEmbedder().to(backbone.device)),
        style_features=optional(CLIPPatchTokens, device=backbone.device),
        classifier=optional(CLIPZeroShot, class_names, device=backbone.device),
        evaluator=optional(CLIPZeroShot, class_names, model="ViT-B-32", device=backbone.device),
    )

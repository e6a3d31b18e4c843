"""SDXL and SD 3 (medium) at their published layer sizes with random weights, as guided pipelines: right for memory
and timing, not for quality.

The denoisers and VAEs are built from the published configurations (stabilityai/stable-diffusion-xl-base-1.0,
stabilityai/stable-diffusion-3-medium-diffusers): SDXL's UNet (2.6B parameters) and SD 3 medium's MMDiT transformer
(2.0B), each with its VAE. The text encoders are small (two layers each) at the published output widths, over the
character-level tokenizer of guidance.bench.sd15_random, and SD 3 runs without its T5 encoder (the stock pipeline's
zero T5 rows, so its text sequence keeps its 77 + 256 tokens): the text encoders run once per sample, outside
the denoising step whose memory and time these backbones measure.
"""

from __future__ import annotations

import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    SD3Transformer2DModel,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from guidance.bench.sd15_random import VAE, char_tokenizer
from guidance.pipelines import (
    GuidedStableDiffusion3Pipeline,
    GuidedStableDiffusionXLPipeline,
)
from guidance.pipelines.denoisers import PipelineBackbone
from guidance.schedulers import SD_SCHEDULE
from guidance.worlds import World
from guidance.worlds.base import for_inference

FAMILIES = ("sdxl", "sd3")
SDXL_UNET = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20),
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}
SDXL_VAE = {**VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True}
# SD 1.5's training schedule on "leading" timesteps, less DDIM's own keys (Euler takes neither)
SDXL_SCHEDULER = {k: v for k, v in SD_SCHEDULE.items() if k not in ("clip_sample", "set_alpha_to_one")} | {
    "timestep_spacing": "leading"
}
SD3_TRANSFORMER = {
    "sample_size": 128,
    "patch_size": 2,
    "in_channels": 16,
    "out_channels": 16,
    "num_layers": 24,
    "attention_head_dim": 64,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "caption_projection_dim": 1536,
    "pooled_projection_dim": 2048,
    "pos_embed_max_size": 192,
}
SD3_VAE = {
    **VAE,
    "latent_channels": 16,
    "sample_size": 1024,
    "scaling_factor": 1.5305,
    "shift_factor": 0.0609,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
}
CLIP_L, CLIP_G = 768, 1280  # the published text encoders' widths (CLIP ViT-L/14, OpenCLIP ViT-bigG/14)


def small_text_encoder(width: int, projection: bool, vocab: int) -> CLIPTextModel:
    """A two-layer CLIP text encoder of the given width (and projection to it), randomly initialised.

    Args:
        width: hidden size and projection size.
        projection: CLIPTextModelWithProjection (pooled, projected output) rather than CLIPTextModel.
        vocab: the tokenizer's vocabulary size.
    """
    config = CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=width,
        intermediate_size=width,
        num_hidden_layers=2,
        num_attention_heads=width // 64,
        max_position_embeddings=77,
        projection_dim=width,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def build_sdxl() -> GuidedStableDiffusionXLPipeline:
    """SDXL base's UNet and VAE at their published sizes, small text encoders of its widths, its Euler scheduler."""
    tokenizer = char_tokenizer()
    return GuidedStableDiffusionXLPipeline(
        vae=AutoencoderKL(**SDXL_VAE),
        unet=UNet2DConditionModel(**SDXL_UNET),
        scheduler=EulerDiscreteScheduler(**SDXL_SCHEDULER),
        text_encoder=small_text_encoder(CLIP_L, False, len(tokenizer)),
        text_encoder_2=small_text_encoder(CLIP_G, True, len(tokenizer)),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
    )


def build_sd3() -> GuidedStableDiffusion3Pipeline:
    """SD 3 medium's transformer and VAE at their published sizes, small CLIP encoders of its widths, no T5, its
    flow-matching Euler scheduler (shift 3)."""
    tokenizer = char_tokenizer()
    return GuidedStableDiffusion3Pipeline(
        transformer=SD3Transformer2DModel(**SD3_TRANSFORMER),
        vae=AutoencoderKL(**SD3_VAE),
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),
        text_encoder=small_text_encoder(CLIP_L, True, len(tokenizer)),
        text_encoder_2=small_text_encoder(CLIP_G, True, len(tokenizer)),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        text_encoder_3=None,
        tokenizer_3=None,
    )


BUILDERS = {"sdxl": build_sdxl, "sd3": build_sd3}


def build_world(
    family: str, image_size: int, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> World:
    """A World whose backbone is a PipelineBackbone over the random-weight guided pipeline of `family`; it has no face,
    style or class networks (the memory suite guides with an energy of its own).

    Args:
        family: "sdxl" or "sd3".
        image_size: the pixel size it samples at.
        device, dtype: where and in what the weights live.
        seed: torch's seed for the random weights.
    """
    torch.manual_seed(seed)
    pipe = BUILDERS[family]()
    for module in pipe.components.values():
        if isinstance(module, torch.nn.Module):
            for_inference(module, device, dtype)
    pipe.set_progress_bar_config(disable=True)
    backbone = PipelineBackbone(pipe, image_size, name=f"{family}-random")
    return World(backbone=backbone, face_detector=None, face_embedder=None, style_features=None, classifier=None, evaluator=None)

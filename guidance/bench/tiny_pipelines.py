"""Tiny SD 1.5, SDXL and SD 3 pipelines built offline from configs, with random weights, saved with `save_pretrained`.

Each folder has the layout of a diffusers repository (model_index.json, one subfolder per component), so the real
loading code (guidance.pipelines.loading, guidance.worlds.sd15) reads it back with `from_pretrained`. SD 3 has no T5
encoder (text_encoder_3 and tokenizer_3 are None). The tests and the families suite use them.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    DDIMScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from guidance.bench.family_random import SDXL_SCHEDULER
from guidance.schedulers import SD_SCHEDULE

TEXT_DIM = 32


def write_tokenizer(folder: Path) -> CLIPTokenizer:
    """A character-level CLIP BPE vocabulary (no merges) with CLIP's special tokens."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(string.ascii_lowercase + string.digits + "'.,-!?")
    tokens = ["<|startoftext|>", "<|endoftext|>"] + symbols + [s + "</w>" for s in symbols]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)
    tokenizer.save_pretrained(folder)
    return tokenizer


def build_tiny_sd(root: Path, seed: int = 0) -> tuple[Path, Path]:
    """Writes a tiny SD 1.5-layout repository and a matching ControlNet; returns both folders."""
    torch.manual_seed(seed)
    tokenizer = write_tokenizer(root / "sd" / "tokenizer")
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = tiny_vae()
    text_encoder = CLIPTextModel(text_config(tokenizer))
    scheduler = DDIMScheduler(**SD_SCHEDULE)
    sd = root / "sd"
    pipe = StableDiffusionPipeline(
        vae, text_encoder, tokenizer, unet, scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    pipe.save_pretrained(sd)  # with model_index.json, as a hub repository
    save_controlnet(unet, root / "controlnet")
    return sd, root / "controlnet"


def text_config(tokenizer) -> CLIPTextConfig:
    """A two-layer CLIP text encoder over the tiny character vocabulary."""
    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_DIM,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        projection_dim=TEXT_DIM,
    )


def tiny_vae(**config) -> AutoencoderKL:
    """A two-level AutoencoderKL: 4 latent channels at half the pixel size."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=16,
        **config,
    )


def save_controlnet(unet: UNet2DConditionModel, folder: Path) -> None:
    """A ControlNet of `unet` whose zero convolutions are drawn small (untrained zeros would hide the map), saved."""
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16))
    for name, parameter in controlnet.named_parameters():
        if "controlnet_" in name or "conv_out" in name:
            torch.nn.init.normal_(parameter, std=0.05)
    controlnet.save_pretrained(folder)


def build_tiny_sdxl(folder: Path, seed: int = 0) -> Path:
    """A tiny SDXL (two CLIP encoders, the second with projection; added text-time conditioning; Euler), saved, and
    a ControlNet of its UNet beside it (FOLDER-controlnet)."""
    torch.manual_seed(seed)
    tokenizer = write_tokenizer(folder / "tokenizer")
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=2 * TEXT_DIM,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        norm_num_groups=8,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + TEXT_DIM,
    )
    scheduler = EulerDiscreteScheduler(**SDXL_SCHEDULER)
    pipe = StableDiffusionXLPipeline(
        vae=tiny_vae(),
        text_encoder=CLIPTextModel(text_config(tokenizer)),
        text_encoder_2=CLIPTextModelWithProjection(text_config(tokenizer)),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=scheduler,
    )
    pipe.save_pretrained(folder)
    save_controlnet(unet, folder.parent / f"{folder.name}-controlnet")
    return folder


def build_tiny_sd3(folder: Path, seed: int = 0) -> Path:
    """A tiny SD 3 (an MMDiT transformer, two CLIP encoders with projection, no T5, flow-matching Euler), saved."""
    torch.manual_seed(seed)
    tokenizer = write_tokenizer(folder / "tokenizer")
    transformer = SD3Transformer2DModel(
        sample_size=8,
        patch_size=1,
        in_channels=4,
        out_channels=4,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=2 * TEXT_DIM,
        pooled_projection_dim=2 * TEXT_DIM,
    )
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=tiny_vae(shift_factor=0.0609, scaling_factor=1.5035, use_quant_conv=False, use_post_quant_conv=False),
        text_encoder=CLIPTextModelWithProjection(text_config(tokenizer)),
        tokenizer=tokenizer,
        text_encoder_2=CLIPTextModelWithProjection(text_config(tokenizer)),
        tokenizer_2=tokenizer,
        text_encoder_3=None,
        tokenizer_3=None,
    )
    pipe.save_pretrained(folder)
    return folder


def build_tiny_families(root: Path) -> dict[str, Path]:
    """Folders of a tiny pipeline of each family: "sd" (with its ControlNet in "controlnet"), "sdxl" (with its
    ControlNet in "sdxl-controlnet"), "sd3"."""
    sd, controlnet = build_tiny_sd(root / "sd-repo")
    sdxl = build_tiny_sdxl(root / "sdxl")
    return {
        "sd": sd,
        "controlnet": controlnet,
        "sdxl": sdxl,
        "sdxl-controlnet": root / "sdxl-controlnet",
        "sd3": build_tiny_sd3(root / "sd3"),
    }

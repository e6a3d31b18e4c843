"""Tiny Stable-Diffusion-architecture components and a tiny embedded world built offline from configs, with random
weights.

They are saved with `save_pretrained` in the folder layout of a diffusers repository, so the real
loading code (`guidance.worlds.sd15.load_sd15`) reads them back with `from_pretrained`.
"""
from __future__ import annotations

import json
import string
from pathlib import Path

import torch
from diffusers import AutoencoderKL, AutoencoderTiny, ControlNetModel, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

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
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_DIM, attention_head_dim=4, norm_num_groups=8,
    )  # fmt: skip
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1, norm_num_groups=8, sample_size=16,
    )  # fmt: skip
    text_encoder = CLIPTextModel(
        CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=TEXT_DIM, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, max_position_embeddings=tokenizer.model_max_length,
                       bos_token_id=0, eos_token_id=1, pad_token_id=1)
    )  # fmt: skip
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1,
    )  # fmt: skip
    sd = root / "sd"
    pipe = StableDiffusionPipeline(vae, text_encoder, tokenizer, unet, scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)  # fmt: skip
    pipe.save_pretrained(sd)  # with model_index.json, as a hub repository
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16))
    for name, parameter in controlnet.named_parameters():  # untrained zero convolutions would hide the map
        if "controlnet_" in name or "conv_out" in name:
            torch.nn.init.normal_(parameter, std=0.05)
    controlnet.save_pretrained(root / "controlnet")
    return sd, root / "controlnet"


def tiny_autoencoder(latent_channels: int = 4) -> AutoencoderTiny:
    """A TAESD-architecture AutoencoderTiny with one upsampling (the tiny SD VAE's factor 2), random weights."""
    torch.manual_seed(1)
    return AutoencoderTiny(latent_channels=latent_channels, encoder_block_out_channels=(8, 8), num_encoder_blocks=(1, 1),
                           decoder_block_out_channels=(8, 8), num_decoder_blocks=(1, 1))  # fmt: skip


def tiny_unet() -> UNet2DConditionModel:
    """A latent UNet like the embedded world's (4 x 16 x 16), tiny."""
    return UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4,
    )  # fmt: skip


def tiny_nets() -> dict[str, torch.nn.Module]:
    """The embedded world's networks (classifier, evaluator, face embedder and detector, style net), tiny and random."""
    from guidance.worlds.embedded.nets import AttributeEvaluator, Classifier, FaceDetectorNet, FaceEmbedder, StyleNet

    detector = FaceDetectorNet((8, 16))
    torch.nn.init.constant_(detector.head.bias, 10.0)  # always "a face": the energies need a box
    return {"classifier": Classifier((8, 16)), "evaluator": AttributeEvaluator((8, 16)), "face_embedder": FaceEmbedder((8, 16), 16), "face_detector": detector,
            "style_net": StyleNet((8, 16))}


def build_tiny_world(root: Path) -> Path:
    """An embedded-world folder with random tiny networks (attention only at 16x16, so sampling is fast).

    Args:
        root: the folder to write.

    Returns:
        `root`.
    """
    from guidance.worlds.embedded import FILES, LABEL_EMBEDDING
    from guidance.worlds.embedded.build.realism import write_realism_reference
    from guidance.worlds.embedded.build.config import SCHEDULE, vae_config
    from guidance.worlds.embedded.nets import save_net

    torch.manual_seed(0)
    unet = tiny_unet()
    for name, model in (("unet", unet), ("guide_unet", tiny_unet())):
        model.save_pretrained(root / name)
        save_file({"weight": torch.randn(11, 16)}, str(root / name / LABEL_EMBEDDING))
    AutoencoderKL(**vae_config((8, 16, 16), 4, 4)).save_pretrained(root / "vae")
    ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 8, 8)).save_pretrained(root / "controlnet")
    DDIMScheduler(**SCHEDULE).save_pretrained(root / "scheduler")
    for name, net in tiny_nets().items():
        save_net(net, root / FILES[name])
    write_realism_reference(root)
    return root

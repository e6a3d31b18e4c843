"""Tiny components and a tiny embedded world built offline from configs, with random weights (the tiny SD, SDXL
and SD 3 pipelines: guidance.bench.tiny_pipelines)."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, AutoencoderTiny, ControlNetModel, DDIMScheduler, UNet2DConditionModel
from safetensors.torch import save_file


def tiny_autoencoder(latent_channels: int = 4) -> AutoencoderTiny:
    """A TAESD-architecture AutoencoderTiny with one upsampling (the tiny SD VAE's factor 2), random weights."""
    torch.manual_seed(1)
    return AutoencoderTiny(
        latent_channels=latent_channels,
        encoder_block_out_channels=(8, 8),
        num_encoder_blocks=(1, 1),
        decoder_block_out_channels=(8, 8),
        num_decoder_blocks=(1, 1),
    )


def tiny_unet() -> UNet2DConditionModel:
    """A latent UNet like the embedded world's (4 x 16 x 16), tiny."""
    return UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=4,
    )


def tiny_nets() -> dict[str, torch.nn.Module]:
    """The embedded world's networks (classifier, evaluator, face embedder and detector, style net), tiny and random."""
    from guidance.worlds.embedded.nets import AttributeEvaluator, Classifier, FaceDetectorNet, FaceEmbedder, StyleNet

    detector = FaceDetectorNet((8, 16))
    torch.nn.init.constant_(detector.head.bias, 10.0)  # always "a face": the energies need a box
    return {
        "classifier": Classifier((8, 16)),
        "evaluator": AttributeEvaluator((8, 16)),
        "face_embedder": FaceEmbedder((8, 16), 16),
        "face_detector": detector,
        "style_net": StyleNet((8, 16)),
    }


def build_tiny_world(root: Path) -> Path:
    """An embedded-world folder with random tiny networks (attention only at 16x16, so sampling is fast).

    Args:
        root: the folder to write.

    Returns:
        `root`.
    """
    from guidance.worlds.embedded import FILES, LABEL_EMBEDDING
    from guidance.worlds.embedded.build.realism import write_realism_reference
    from guidance.schedulers import SD_SCHEDULE
    from guidance.worlds.embedded.build.config import vae_config
    from guidance.worlds.embedded.nets import save_net

    torch.manual_seed(0)
    unet = tiny_unet()
    for name, model in (("unet", unet), ("guide_unet", tiny_unet())):
        model.save_pretrained(root / name)
        save_file({"weight": torch.randn(11, 16)}, str(root / name / LABEL_EMBEDDING))
    AutoencoderKL(**vae_config((8, 16, 16), 4, 4)).save_pretrained(root / "vae")
    ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 8, 8)).save_pretrained(root / "controlnet")
    DDIMScheduler(**SD_SCHEDULE).save_pretrained(root / "scheduler")
    for name, net in tiny_nets().items():
        save_net(net, root / FILES[name])
    write_realism_reference(root)
    return root

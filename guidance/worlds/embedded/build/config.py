"""The build pipeline's configurations: dataset sizes, network shapes and each model stage's Loop (Config), and the three
named ones (CONFIGS: full on 2 CPU cores, gpu, smoke for the tests). The noise schedule is guidance.schedulers'
SD_SCHEDULE."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .training import Loop


def unet_config(
    channels: tuple[int, ...], dim: int, heads: int, groups: int, size: int, in_channels: int, layers: int = 1
) -> dict:
    """UNet2DConditionModel arguments; cross-attention (to the class token) in every block but the first.

    diffusers' UNet2DConditionModel reads `attention_head_dim` as the NUMBER of heads (a known naming quirk).

    Args:
        channels: block output channels, one block per resolution.
        dim: the cross-attention (label token) dimension.
        heads: attention heads.
        groups: GroupNorm groups.
        size: the latent size.
        in_channels: latent channels (in and out).
        layers: layers per block.

    Returns:
        The keyword arguments.
    """
    down = ["DownBlock2D"] + ["CrossAttnDownBlock2D"] * (len(channels) - 1)
    up = [b.replace("Down", "Up") for b in reversed(down)]
    return {
        "sample_size": size,
        "in_channels": in_channels,
        "out_channels": in_channels,
        "layers_per_block": layers,
        "block_out_channels": list(channels),
        "down_block_types": down,
        "up_block_types": up,
        "cross_attention_dim": dim,
        "attention_head_dim": heads,
        "norm_num_groups": groups,
    }


def vae_config(channels: tuple[int, ...], latent_channels: int, groups: int) -> dict:
    """AutoencoderKL arguments: 64 px pixels, downsampling 2 ** (len(channels) - 1).

    Args:
        channels: block output channels, one block per resolution.
        latent_channels: latent channels.
        groups: GroupNorm groups.

    Returns:
        The keyword arguments.
    """
    return {
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": latent_channels,
        "sample_size": 64,
        "down_block_types": ["DownEncoderBlock2D"] * len(channels),
        "up_block_types": ["UpDecoderBlock2D"] * len(channels),
        "block_out_channels": list(channels),
        "layers_per_block": 1,
        "norm_num_groups": groups,
    }


@dataclass(frozen=True)
class Config:
    """Dataset sizes and per-stage settings."""

    n_train: int
    n_val: int
    n_face: int
    face_ids_per_class: int
    n_face_val: int
    n_negatives: int
    n_estimates: int
    vae: Loop
    decoder: Loop
    evaluator: Loop
    denoiser: Loop
    controlnet: Loop
    classifier: Loop
    face: Loop
    detector: Loop
    style: Loop
    vae_net: dict = field(default_factory=lambda: vae_config((16, 32, 64), 8, 8))
    unet: dict = field(default_factory=lambda: unet_config((48, 96, 144), 128, 4, 16, 16, 8))
    prediction_type: str = "v_prediction"
    min_snr_gamma: float | None = 5.0  # min-SNR loss weighting (Hang et al. 2023); None: uniform
    guide_fraction: float = (
        0.42  # the Autoguidance guide: the EMA snapshot at this fraction of the run (tuned, assets/world/README.md)
    )
    classifier_widths: tuple[int, ...] = (16, 32, 64, 128)
    evaluator_widths: tuple[int, ...] = (24, 48, 96, 160)
    face_widths: tuple[int, ...] = (16, 32, 64, 128)
    face_adversarial: float = 0.0  # L2 radius of the face embedder's adversarial training inputs ([-1, 1] pixels); 0: off
    detector_widths: tuple[int, ...] = (16, 32, 64)
    style_widths: tuple[int, ...] = (16, 32, 64)
    n_textures: int = 4000  # full-frame textures beside the renders in the style net's training
    label_dropout: float = 0.12
    ema_decay: float = 0.999
    control_channels: tuple[int, ...] = (16, 32, 64)
    kl_weight: float = 1e-6
    device: str = "cpu"  # batches are drawn on the CPU (seeded) and moved here


def _loops() -> dict[str, Loop]:
    """The full configuration's stages; wall-clock budgets sized for 2 CPU cores (under 4 hours in all).

    The denoiser stops at 2 805 steps, the run of the shipped weights; its time budget only guards.
    """
    return {
        "vae": Loop(100000, 16, 1e-3, 8, time_budget_s=900, decay_from=2000),
        "decoder": Loop(100000, 32, 1e-3, 9, time_budget_s=4200, decay_from=500),
        "evaluator": Loop(4000, 64, 2e-3, 2, time_budget_s=300),
        "denoiser": Loop(2805, 64, 1e-3, 5, time_budget_s=7200, decay_from=4000, snapshot_every=250),
        "controlnet": Loop(100000, 32, 1e-3, 7, time_budget_s=540),
        "classifier": Loop(4000, 64, 2e-3, 1, time_budget_s=300),
        "face": Loop(6000, 64, 2e-3, 3, time_budget_s=720),  # adversarial inputs: 3 passes a step
        "detector": Loop(2000, 64, 2e-3, 4, time_budget_s=180),
        "style": Loop(600, 64, 2e-3, 10, time_budget_s=1200),
    }


GPU_BUDGETS = {
    "vae": 90,
    "decoder": 60,
    "evaluator": 30,
    "denoiser": 360,
    "controlnet": 90,
    "classifier": 40,
    "face": 50,
    "detector": 20,
    "style": 30,
}
FULL = Config(
    n_train=30000,
    n_val=1000,
    n_face=24000,
    face_ids_per_class=200,
    n_face_val=1000,
    n_negatives=8000,
    n_estimates=8000,
    face_adversarial=2.0,
    **_loops(),
)
CONFIGS = {
    "full": FULL,
    # One call on one large GPU (`--device cuda`): 4x the batches, short budgets.
    "gpu": replace(
        FULL,
        **{name: replace(loop, batch=4 * loop.batch, time_budget_s=GPU_BUDGETS[name]) for name, loop in _loops().items()},
    ),
    "smoke": Config(
        n_train=120,
        n_val=40,
        n_face=80,
        face_ids_per_class=2,
        n_face_val=40,
        n_negatives=40,
        n_estimates=32,
        vae=Loop(3, 8, 1e-3, 8),
        decoder=Loop(2, 8, 1e-3, 9),
        evaluator=Loop(3, 8, 1e-3, 2),
        denoiser=Loop(8, 4, 1e-3, 5, checkpoint_every=2, snapshot_every=2),
        controlnet=Loop(2, 4, 1e-3, 7),
        classifier=Loop(3, 8, 1e-3, 1),
        face=Loop(3, 8, 1e-3, 3),
        detector=Loop(3, 8, 1e-3, 4),
        style=Loop(3, 8, 1e-3, 10),
        vae_net=vae_config((8, 16, 16), 4, 4),
        unet=unet_config((8, 16), 16, 1, 4, 16, 4),
        classifier_widths=(8, 16),
        evaluator_widths=(8, 16),
        face_widths=(8, 16),
        detector_widths=(8, 16),
        style_widths=(8, 16, 16),
        n_textures=16,
        control_channels=(4, 8, 8),
        face_adversarial=2.0,
    ),
}

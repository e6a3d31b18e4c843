"""The embedded world's backbone: a small latent diffusion model with SD 1.5's structure (VAE, class-token UNet,
guide UNet, ControlNet on pixel-space maps)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import DDPMScheduler
from torch import Tensor, nn

from guidance.backbone import Condition, Control, UNetBackbone
from guidance.errors import MethodConfigError

from .vocabulary import CLASS_NAMES


class EmbeddedBackbone(UNetBackbone):
    """Samples are VAE latents, decoded by the AutoencoderKL as in SD; conditions are class names or None (the
    null label).

    Each model has its own label embedding (rows 0..9 the classes, row 10 the null label). `embed` returns
    one token per model, (B, L, D): token 0 conditions the denoiser and the ControlNet, token 1 (present
    when a guide model is loaded) the Autoguidance guide model.

    Args:
        unet: the denoiser (diffusers UNet2DConditionModel).
        label_embedding: its label table.
        scheduler_config: the DDPM scheduler's config.
        vae: the AutoencoderKL.
        controlnet: the ControlNet on pixel-space maps, if any.
        guide_unet: the Autoguidance guide model, if any.
        guide_label_embedding: the guide's label table, given with `guide_unet` and only then.

    Raises:
        MethodConfigError: a guide UNet without its label table, or a table without the UNet.
    """

    name = "embedded"
    class_names = CLASS_NAMES
    image_size = 64

    def __init__(
        self,
        unet,
        label_embedding: nn.Embedding,
        scheduler_config: dict,
        vae,
        controlnet=None,
        guide_unet=None,
        guide_label_embedding: nn.Embedding | None = None,
    ):
        super().__init__(unet, controlnet=controlnet, guide_unet=guide_unet)
        if (guide_unet is None) != (guide_label_embedding is None):
            raise MethodConfigError("a guide UNet needs its own label embedding, and only then")
        self.vae = vae
        self.label_embeddings = [label_embedding] + ([guide_label_embedding] if guide_label_embedding is not None else [])
        self.scheduler_config = dict(scheduler_config)
        self.prediction_type = self.scheduler_config.get("prediction_type", "epsilon")
        self.alphas_cumprod = DDPMScheduler.from_config(self.scheduler_config).alphas_cumprod.float()
        size = unet.config.sample_size
        self.sample_shape = (unet.config.in_channels, size, size)

    def labels(self, conditions: Sequence[Condition]) -> Tensor:
        """Label indices of conditions.

        Args:
            conditions: class names, or None for the null label.

        Returns:
            (B,) indices on the backbone's device; the null label is len(CLASS_NAMES).

        Raises:
            MethodConfigError: a condition that is not one of CLASS_NAMES.
        """
        unknown = [c for c in conditions if c is not None and c not in CLASS_NAMES]
        if unknown:
            raise MethodConfigError(f"the embedded world knows the classes {', '.join(CLASS_NAMES)}; not {unknown[0]!r}")
        return torch.tensor([len(CLASS_NAMES) if c is None else CLASS_NAMES.index(c) for c in conditions], device=self.device)

    def embed(self, conditions: Sequence[Condition]) -> Tensor:
        """One token per model: (B, 1, D), or (B, 2, D) with a guide model; MethodConfigError for an unknown class."""
        labels = self.labels(conditions)
        with torch.no_grad():
            return torch.stack([table(labels) for table in self.label_embeddings], 1).to(self.dtype)

    def _forward(self, x: Tensor, t: Tensor, embeddings: Tensor, control: Control | None, guide: bool) -> Tensor:
        token = embeddings[:, 1:2] if guide else embeddings[:, :1]
        return super()._forward(x, t, token, None if guide else control, guide)

    def decode(self, x0: Tensor) -> Tensor:
        """Through the AutoencoderKL, latents unscaled by its scaling factor."""
        return self.vae.decode(x0.to(self.dtype) / self.vae.config.scaling_factor).sample.float()

    @torch.no_grad()
    def encode(self, pixels: Tensor) -> Tensor:
        """Latents of pixels, as `decode` reads them.

        Args:
            pixels: (B, 3, 64, 64) in [-1, 1].

        Returns:
            (B, *sample_shape) latent means, scaled by the VAE's scaling factor.
        """
        return self.vae.encode(pixels.to(self.device, self.dtype)).latent_dist.mean * self.vae.config.scaling_factor

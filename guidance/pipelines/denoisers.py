"""The backbone of a diffusers pipeline: its UNet (with SDXL's added conditioning and a ControlNet) or its SD 3
transformer, its text encoders and its VAE, behind guidance.backbone.Backbone.

A condition's tensors travel as one (B, L, D) tensor, as the methods pass embeddings around (CFG batches them, GFCG
cuts rows of them): SDXL appends its pooled text embedding and its time ids as two more rows, SD 3 its pooled
embedding as one, each zero-padded to D (`pack`, `unpack`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import DDIMScheduler
from torch import Tensor
from torch.nn import functional as F

from guidance.backbone import Backbone, Condition, Control, checkpointing

FAMILIES = ("sd", "sdxl", "sd3")  # SD 1.x/2.x, SDXL, SD 3


def pack(embeddings: Tensor, *extras: Tensor) -> Tensor:
    """(B, L, D) embeddings with each (B, d <= D) extra appended as a row, zero-padded to D.

    Args:
        embeddings: (B, L, D) the text encoders' hidden states.
        *extras: (B, d) vectors: pooled embeddings, time ids.

    Returns:
        (B, L + len(extras), D).
    """
    width = embeddings.shape[-1]
    rows = [F.pad(extra.to(embeddings.dtype), (0, width - extra.shape[-1]))[:, None] for extra in extras]
    return torch.cat([embeddings, *rows], dim=1)


def unpack(packed: Tensor, sizes: Sequence[int]) -> tuple[Tensor, ...]:
    """The inverse of `pack`: (embeddings, *extras), the extras of the given widths.

    Args:
        packed: (B, L + len(sizes), D).
        sizes: each extra's width d.

    Returns:
        (B, L, D) embeddings, then each (B, d) extra.
    """
    count = len(sizes)
    extras = [packed[:, -count + i, :size] for i, size in enumerate(sizes)]
    return (packed[:, : packed.shape[1] - count], *extras)


def family_of(pipe) -> str:
    """ "sd3" for a pipeline with a transformer, "sdxl" for one with a second text encoder, else "sd"."""
    if getattr(pipe, "transformer", None) is not None:
        return "sd3"
    return "sdxl" if hasattr(pipe, "text_encoder_2") else "sd"


class PipelineBackbone(Backbone):
    """A diffusers pipeline's denoiser, text encoders and VAE as a backbone: the same modules, not copies.

    Args:
        pipe: a StableDiffusion(ControlNet)Pipeline, StableDiffusionXLPipeline or StableDiffusion3Pipeline (or their
            guided subclasses, guidance.pipelines); its scheduler's config gives the schedule and prediction type.
        image_size: the pixel size of the images it samples (default: the denoiser's sample size times the VAE's
            factor).
        name: shown in results (default: the pipeline's folder or hub id).
    """

    def __init__(self, pipe, image_size: int | None = None, name: str | None = None):
        super().__init__()
        self.pipe, self.family = pipe, family_of(pipe)
        self.denoiser = pipe.transformer if self.family == "sd3" else pipe.unet
        self.controlnet = getattr(pipe, "controlnet", None)
        self.has_controlnet = self.controlnet is not None
        self.device, self.dtype = self.denoiser.device, self.denoiser.dtype
        self.name = name or pipe.config.get("_name_or_path") or type(pipe).__name__
        # a config made in memory has no _class_name until saved; make_scheduler reads the family from it
        self.scheduler_config = {"_class_name": type(pipe.scheduler).__name__, **pipe.scheduler.config}
        if self.family == "sd3":
            self.prediction_type = "flow_prediction"
            self.alphas_cumprod = torch.ones(0)  # no DDPM schedule: the flow scheduler's sigmas give the levels
        else:
            self.prediction_type = self.scheduler_config.get("prediction_type", "epsilon")
            self.alphas_cumprod = DDIMScheduler.from_config(self.scheduler_config).alphas_cumprod.float()
        size = self.denoiser.config.sample_size * pipe.vae_scale_factor
        self.image_size = image_size or size
        latent = self.image_size // pipe.vae_scale_factor
        self.sample_shape = (self.denoiser.config.in_channels, latent, latent)
        self.extra_sizes: tuple[int, ...] = ()  # the widths packed after the embeddings (`pack`)

    @torch.no_grad()
    def embed(self, conditions: Sequence[Condition]) -> Tensor:
        """The stock pipeline's `encode_prompt` of each prompt (None: the empty prompt), packed (B, L', D)."""
        prompts = ["" if c is None else c for c in conditions]
        return self.encode(prompts, guidance=False)[0]

    def encode(
        self, prompts, negative=None, guidance: bool = True, per_prompt: int = 1, size: tuple[int, int] | None = None, **embeds
    ) -> tuple[Tensor, Tensor | None]:
        """The pipeline's own `encode_prompt` of prompts and negative prompts, packed with SDXL's time ids.

        Args:
            prompts: a prompt or one per sample (None where `embeds` holds prompt_embeds).
            negative: the negative prompts (None: the empty prompt).
            guidance: whether the negative branch is wanted.
            per_prompt: images per prompt (the rows are repeated as encode_prompt repeats them).
            size: (height, width) for SDXL's time ids; default the backbone's square image size.
            **embeds: encode_prompt's other arguments (prompt_2, prompt_embeds, pooled_prompt_embeds, ...).

        Returns:
            (packed conditions, packed negative conditions or None).
        """
        pipe, device = self.pipe, self.device
        if self.family == "sd":
            return pipe.encode_prompt(prompts, device, per_prompt, guidance, negative, **embeds)
        if self.family == "sdxl":
            positive, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(
                prompt=prompts,
                device=device,
                num_images_per_prompt=per_prompt,
                do_classifier_free_guidance=guidance,
                negative_prompt=negative,
                **embeds,
            )
            time_ids = self.time_ids(pooled, size)
            self.extra_sizes = (pooled.shape[-1], time_ids.shape[-1])
            positive = pack(positive, pooled, time_ids.repeat(len(positive), 1))
            if negative_embeds is not None:
                negative_embeds = pack(negative_embeds, negative_pooled, time_ids.repeat(len(negative_embeds), 1))
            return positive, negative_embeds
        embeds = {"prompt_2": None, "prompt_3": None, **embeds}
        positive, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(
            prompt=prompts,
            device=device,
            num_images_per_prompt=per_prompt,
            do_classifier_free_guidance=guidance,
            negative_prompt=negative,
            **embeds,
        )
        self.extra_sizes = (pooled.shape[-1],)
        positive = pack(positive, pooled)
        return positive, None if negative_embeds is None else pack(negative_embeds, negative_pooled)

    def time_ids(self, pooled: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """SDXL's added time ids (original size, crop corner, target size) at the image size, as the stock pipeline
        makes them (`_get_add_time_ids`).

        Args:
            pooled: (B, d) the pooled text embeddings (their width and dtype).
            size: (height, width); default the backbone's square image size.

        Returns:
            (1, 6) time ids.
        """
        size = size or (self.image_size, self.image_size)
        pipe = self.pipe
        projection = int(pooled.shape[-1]) if pipe.text_encoder_2 is None else pipe.text_encoder_2.config.projection_dim
        return pipe._get_add_time_ids(size, (0, 0), size, dtype=pooled.dtype, text_encoder_projection_dim=projection).to(
            self.device
        )

    def gradient_checkpointing(self, enabled: bool = True):
        """diffusers' gradient checkpointing on the denoiser and the ControlNet inside the block (FreeDoM and DPS)."""
        return checkpointing([self.denoiser, self.controlnet], enabled)

    def _forward(self, x: Tensor, t: Tensor, embeddings: Tensor, control: Control | None, guide: bool) -> Tensor:
        if self.family == "sd3":
            hidden, pooled = unpack(embeddings, self.extra_sizes)
            return self.denoiser(
                hidden_states=x, timestep=t, encoder_hidden_states=hidden, pooled_projections=pooled, return_dict=False
            )[0]
        added = None
        if self.family == "sdxl":
            embeddings, pooled, time_ids = unpack(embeddings, self.extra_sizes)
            added = {"text_embeds": pooled, "time_ids": time_ids}
        residuals = {}
        if control is not None:
            down, mid = self.controlnet(
                x,
                t,
                encoder_hidden_states=embeddings,
                controlnet_cond=control.image,
                conditioning_scale=control.scale,
                added_cond_kwargs=added,
                return_dict=False,
            )
            residuals = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        return self.denoiser(x, t, encoder_hidden_states=embeddings, added_cond_kwargs=added, return_dict=False, **residuals)[0]

    def decode(self, x0: Tensor) -> Tensor:
        """The VAE's decode of latents, in [-1, 1], as the stock pipeline scales them (SD 3 also shifts them)."""
        vae = self.pipe.vae
        latents = x0.to(vae.dtype) / vae.config.scaling_factor
        if self.family == "sd3":
            latents = latents + vae.config.shift_factor
        return vae.decode(latents, return_dict=False)[0].float()

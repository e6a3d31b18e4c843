"""The interface between the sampling loop and a model world (Stable Diffusion or the embedded world).

A backbone owns the denoiser (and optionally a ControlNet and a weaker "guide" denoiser for
Autoguidance), the noise schedule, the conditioning encoder and the decoder to pixels.
It counts denoiser evaluations so that every run reports its NFE.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor

from guidance.errors import MethodConfigError

Condition = str | None  # a prompt or class name; None is the unconditional (null) condition


@dataclass
class Control:
    """A control map fed to the backbone's ControlNet (made by `Backbone.prepare_control`).

    Args:
        image: (B, 3, H, W) in [0, 1] at the backbone's pixel size; B is 1 (one map for every sample) or the batch.
        scale: the ControlNet's conditioning scale.
    """

    image: Tensor
    scale: float = 1.0
    _batched: dict[int, "Control"] = field(default_factory=dict, repr=False, compare=False)

    def rows(self, keep: Tensor) -> "Control":
        """The maps of a sub-batch; one map shared by every sample stays as it is.

        Args:
            keep: (B,) bool, true for the samples to keep.

        Returns:
            The control of those samples.
        """
        return self if self.image.shape[0] == 1 else Control(self.image[keep.to(self.image.device)], self.scale)

    def for_batch(self, batch: int) -> "Control":
        """The map repeated to a batch (CFG doubles the batch), made once per batch size, not at every step.

        Args:
            batch: the rows wanted; a multiple of the maps held.

        Returns:
            The control with `batch` maps.
        """
        if self.image.shape[0] == batch:
            return self
        if batch not in self._batched:
            self._batched[batch] = Control(self.image.repeat(batch // self.image.shape[0], 1, 1, 1), self.scale)
        return self._batched[batch]


class Backbone(ABC):
    """A denoiser with its schedule, condition encoder and decoder.

    Subclasses set: name, device, dtype, alphas_cumprod (float32, CPU), scheduler_config (a
    diffusers DDPM-family config dict, or a flow-matching one), prediction_type ("flow_prediction" for a flow model's
    velocity), sample_shape (C, H, W), image_size (pixels), class_names (or None for free prompts), has_controlnet,
    has_guide_model.
    """

    name: str
    device: torch.device
    dtype: torch.dtype
    alphas_cumprod: Tensor
    scheduler_config: dict
    prediction_type: str
    sample_shape: tuple[int, int, int]
    image_size: int
    class_names: tuple[str, ...] | None = None
    has_controlnet: bool = False
    has_guide_model: bool = False
    tiny_decoder: "torch.nn.Module | None" = None  # diffusers AutoencoderTiny on scaled latents: guidance path only

    @property
    def estimate_type(self) -> str:
        """What the methods' estimates are (guidance.methods.predictors.Estimate): noise estimates ("epsilon"), or on a
        flow model clean estimates ("sample"), since there a noise estimate does not determine x0 at s = 1."""
        return "sample" if self.prediction_type == "flow_prediction" else "epsilon"

    def alpha(self, t: int | Tensor) -> float:
        """a_t (alpha-bar) at an integer timestep of a DDPM-family schedule.

        Args:
            t: the timestep, an int or a 0-d tensor.

        Returns:
            a_t; 1.0 below zero (the clean end).
        """
        t = int(t)
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def __init__(self) -> None:
        self.evaluations = 0  # denoiser evaluations, summed over samples

    @abstractmethod
    def embed(self, conditions: Sequence[Condition]) -> Tensor:
        """Encoder hidden states of conditions.

        Args:
            conditions: one prompt or class name per sample; None is the unconditional (null) condition.

        Returns:
            (B, L, D) hidden states for the denoiser's cross-attention.
        """

    @abstractmethod
    def _forward(self, x: Tensor, t: Tensor, embeddings: Tensor, control: Control | None, guide: bool) -> Tensor:
        """Raw model output (of `prediction_type`) for a batch; `guide` selects the guide model."""

    @abstractmethod
    def decode(self, x0: Tensor) -> Tensor:
        """Pixels of a clean estimate; differentiable.

        Args:
            x0: (B, *sample_shape) clean estimates.

        Returns:
            (B, 3, H, W) in [-1, 1].
        """

    def guidance_decode(self, x0: Tensor, tiny: bool = False) -> Tensor:
        """Pixels for the guidance energies; final images always come from `decode`.

        Args:
            x0: (B, *sample_shape) clean estimates.
            tiny: decode with `tiny_decoder` (TAESD-style, reading scaled latents) instead of `decode`.

        Returns:
            (B, 3, H, W) in [-1, 1]; differentiable.

        Raises:
            MethodConfigError: `tiny` on a backbone loaded without a tiny decoder.
        """
        if not tiny:
            return self.decode(x0)
        if self.tiny_decoder is None:
            raise MethodConfigError(
                f"{self.name} was loaded without a tiny decoder for the guidance path "
                "(load it with tiny_vae=..., e.g. madebyollin/taesd; the app: --sd-tiny-vae)"
            )
        scaled = x0.to(self.tiny_decoder.dtype) / self.tiny_decoder.config.scaling_factor
        return self.tiny_decoder.decode(scaled).sample.float()

    @contextmanager
    def gradient_checkpointing(self, enabled: bool = True) -> Iterator[None]:
        """Inside the block, the denoisers recompute their activations in the backward pass instead of keeping
        them (less memory, one more forward); a no-op for backbones without checkpointable denoisers.

        Args:
            enabled: False makes the block a no-op, so callers need no branch.
        """
        yield

    def predict(self, x: Tensor, t: Tensor, embeddings: Tensor, control: Control | None = None, guide: bool = False) -> Tensor:
        """One denoiser evaluation per sample of the batch; counted in `evaluations`.

        Args:
            x: (B, *sample_shape) noisy samples.
            t: the timestep, a scalar or one per sample.
            embeddings: (B, L, D) from `embed`.
            control: a ControlNet map, repeated to the batch if it holds one map.
            guide: evaluate the guide denoiser (Autoguidance) instead of the main one.

        Returns:
            (B, *sample_shape) float32 model output of `prediction_type`.

        Raises:
            MethodConfigError: `guide` on a backbone without a guide model.
        """
        if guide and not self.has_guide_model:
            raise MethodConfigError(f"{self.name} has no guide model for Autoguidance")
        self.evaluations += x.shape[0]
        t = t.to(self.device).expand(x.shape[0]) if t.ndim else t.to(self.device).repeat(x.shape[0])
        control = None if control is None else control.for_batch(x.shape[0])
        out = self._forward(x.to(self.dtype), t, embeddings.to(self.dtype), control, guide)
        return out.float()

    def prepare_control(self, image: Tensor, scale: float = 1.0) -> Control:
        """A control map for `predict`, on the backbone's device and dtype.

        Args:
            image: (B, 3, H, W) in [0, 1] at the backbone's pixel size.
            scale: the ControlNet's conditioning scale.

        Returns:
            The Control.

        Raises:
            MethodConfigError: the backbone was loaded without a ControlNet.
        """
        if not self.has_controlnet:
            raise MethodConfigError(f"{self.name} was loaded without a ControlNet")
        return Control(image.to(self.device, self.dtype), scale)

    def initial_noise(self, batch: int, generator: torch.Generator) -> Tensor:
        """Standard normal x_T drawn on the CPU (reproducible on every device), then moved.

        Args:
            batch: how many samples.
            generator: a CPU generator, seeded by the caller.

        Returns:
            (batch, *sample_shape) on the backbone's device.
        """
        return torch.randn((batch, *self.sample_shape), generator=generator).to(self.device)


@contextmanager
def checkpointing(models: Sequence[torch.nn.Module | None], enabled: bool = True) -> Iterator[None]:
    """Inside the block, diffusers' gradient checkpointing on each model (None ones are skipped).

    Args:
        models: diffusers models (UNet, ControlNet, transformer), or None.
        enabled: False makes the block a no-op.
    """
    models = [m for m in models if m is not None] if enabled else []
    for model in models:
        model.enable_gradient_checkpointing()
    try:
        yield
    finally:
        for model in models:
            model.disable_gradient_checkpointing()


class UNetBackbone(Backbone):
    """A diffusers UNet2DConditionModel, with an optional ControlNetModel and a guide UNet (Autoguidance).

    Args:
        unet: the denoiser; its device and dtype are the backbone's.
        controlnet: a ControlNetModel for `Control` maps, or None.
        guide_unet: a weaker UNet for Autoguidance, or None.
    """

    def __init__(self, unet, controlnet=None, guide_unet=None) -> None:
        super().__init__()
        self.unet, self.controlnet, self.guide_unet = unet, controlnet, guide_unet
        self.has_controlnet, self.has_guide_model = controlnet is not None, guide_unet is not None
        self.device, self.dtype = unet.device, unet.dtype

    def gradient_checkpointing(self, enabled: bool = True):
        """diffusers' `enable_gradient_checkpointing` on the UNet, ControlNet and guide UNet for the block."""
        return checkpointing([self.unet, self.controlnet, self.guide_unet], enabled)

    def _forward(self, x: Tensor, t: Tensor, embeddings: Tensor, control: Control | None, guide: bool) -> Tensor:
        residuals = {}
        if control is not None:
            down, mid = self.controlnet(
                x,
                t,
                encoder_hidden_states=embeddings,
                controlnet_cond=control.image,
                conditioning_scale=control.scale,
                return_dict=False,
            )
            residuals = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        unet = self.guide_unet if guide else self.unet
        return unet(x, t, encoder_hidden_states=embeddings, **residuals).sample

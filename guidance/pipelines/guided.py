"""Guided diffusers pipelines: the stock pipeline's components and preparation, guidance.sampling's one loop.

A guided pipeline is its stock pipeline (`from_pipe`, `from_pretrained`, `save_pretrained`, `encode_prompt`, ...)
whose `__call__` takes three more arguments, `guidance` (a method name as guidance.methods.build_method takes it, or
a built method), `energy` (guidance.energy.Energy on decoded pixels) and `classifier` (GFCG's), and the methods'
options by their declared names (guidance.methods.OPTIONS: scale, step_rule, dsg_rate, ...). It prepares a run with
the stock pipeline's own `check_inputs`, `encode_prompt`, `retrieve_timesteps` and `prepare_latents`, runs
`guided_loop`, decodes with the stock VAE and image processor, and returns the stock output type with the run's
per-step records beside the images. With `guidance=None` it is the stock pipeline: CFG at `guidance_scale`
(docs/methods.md, "Guided pipelines").
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import (
    StableDiffusion3Pipeline,
    StableDiffusionControlNetPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLControlNetPipeline,
    StableDiffusionXLPipeline,
)
from diffusers.pipelines.stable_diffusion import StableDiffusionPipelineOutput
from diffusers.pipelines.stable_diffusion_3 import StableDiffusion3PipelineOutput
from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import calculate_shift
from diffusers.pipelines.stable_diffusion_xl import StableDiffusionXLPipelineOutput
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor

from guidance.backbone import Control
from guidance.energy import Classifier, Energy
from guidance.errors import MethodConfigError
from guidance.methods import OPTIONS, Guidance, Settings, build_method
from guidance.pipelines.denoisers import PipelineBackbone, unpack
from guidance.recording import Recorder, StepRecord
from guidance.sampling import Start, guided_loop

# the stock arguments every guided call reads; others must keep their defaults
COMMON = (
    "prompt",
    "negative_prompt",
    "height",
    "width",
    "num_inference_steps",
    "timesteps",
    "sigmas",
    "guidance_scale",
    "num_images_per_prompt",
    "eta",
    "generator",
    "latents",
    "prompt_embeds",
    "negative_prompt_embeds",
    "output_type",
    "return_dict",
    "callback_on_step_end",
    "callback_on_step_end_tensor_inputs",
    "kwargs",
)
METHOD_OPTIONS = frozenset(name for name, option in OPTIONS.items() if option.setting) - {
    "cfg_scale"
}  # CFG's w is guidance_scale


@dataclass
class GuidedStableDiffusionPipelineOutput(StableDiffusionPipelineOutput):
    """StableDiffusionPipelineOutput with `records`: one guidance.recording.StepRecord per step (time, NFE, energy)."""

    records: list[StepRecord] | None = None


@dataclass
class GuidedStableDiffusionXLPipelineOutput(StableDiffusionXLPipelineOutput):
    """StableDiffusionXLPipelineOutput with `records`: one StepRecord per step."""

    records: list[StepRecord] | None = None


@dataclass
class GuidedStableDiffusion3PipelineOutput(StableDiffusion3PipelineOutput):
    """StableDiffusion3PipelineOutput with `records`: one StepRecord per step."""

    records: list[StepRecord] | None = None


class GuidedMixin:
    """The guided `__call__`, over a stock pipeline class's preparation; each family says what differs (`_reads`,
    `_check`, `_size`, `_control`, `_timestep_kwargs`, `_finish`)."""

    _reads: tuple[str, ...] = ()  # the family's stock arguments read beyond COMMON

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        *args,
        guidance: str | Guidance | None = None,
        energy: Energy | None = None,
        classifier: Classifier | None = None,
        noise_rule: str = "ddim",
        **kwargs,
    ):
        """The stock pipeline's call, guided.

        Args:
            prompt, *args: the stock pipeline's arguments, as its own __call__ takes them.
            guidance: a method name ("figd+dsg", "freedom+cfg+gfcg", ...), a built method, or None for the stock
                pipeline (CFG at guidance_scale).
            energy: what the gradient methods guide with and the records measure (None: no energy).
            classifier: GFCG's classifier (its class names are the prompts it reads).
            noise_rule: how eta sets DDIM's noise (guidance.schedulers.adapters.NOISE_RULES).
            **kwargs: the stock arguments, and the methods' options by name (guidance.methods.OPTIONS).

        Returns:
            The stock output type with `records`; with return_dict=False the stock tuple.

        Raises:
            MethodConfigError: an option or stock argument the guided call cannot take, or a method that cannot run
                with the pipeline's scheduler.
            EnergyShapeError: an energy that does not return one value per image.
        """
        options = {name: kwargs.pop(name) for name in list(kwargs) if name in METHOD_OPTIONS}
        call = self._bind(prompt, *args, **kwargs)
        self._check(call)
        height, width = self._size(call)
        do_cfg = call["guidance_scale"] > 1
        self._guidance_scale, self._interrupt, self._clip_skip, self._cross_attention_kwargs = (
            call["guidance_scale"],
            False,
            None,
            None,
        )
        self._guidance_rescale, self._joint_attention_kwargs = 0.0, None
        method = self._method(guidance, call["guidance_scale"] if do_cfg else 1.0, options, classifier)
        backbone = PipelineBackbone(self)
        device, per_prompt = self._execution_device, call["num_images_per_prompt"]
        embeds = {
            name: call[name] for name in ("negative_prompt_embeds", "prompt_embeds", *self._embeds) if call.get(name) is not None
        }
        positive, negative = backbone.encode(call["prompt"], call["negative_prompt"], True, per_prompt, (height, width), **embeds)
        control = self._control(call, len(positive), height, width)
        self._retrieve_timesteps(call, device, height, width)  # sets the scheduler's timesteps, as the stock call does
        latents = self.prepare_latents(
            len(positive),
            backbone.denoiser.config.in_channels,
            height,
            width,
            positive.dtype,
            device,
            call["generator"],
            call["latents"],
        )

        def noise() -> Tensor:
            return randn_tensor(latents.shape, generator=call["generator"], device=device, dtype=latents.dtype)

        start = Start(self.scheduler, latents, positive, negative, noise, call["generator"])
        latents, records = self._loop(
            backbone, method, start, self._conditions(call, len(positive)), energy, control, call, noise_rule
        )
        return self._finish(latents, call, records)

    def _bind(self, prompt, *args, **kwargs) -> dict[str, Any]:
        """The stock call's arguments with their defaults; a non-default one the guided call does not read is refused."""
        stock = next(cls for cls in type(self).__mro__ if cls.__module__.startswith("diffusers."))
        signature = inspect.signature(stock.__call__)
        try:
            bound = signature.bind(self, prompt, *args, **kwargs)
        except TypeError as error:
            raise MethodConfigError(f"{error}; the method options are {sorted(METHOD_OPTIONS)}") from None
        bound.apply_defaults()
        call = dict(bound.arguments)
        del call["self"]
        ignored = [
            name
            for name, value in call.items()
            if name not in COMMON + self._reads and value is not signature.parameters[name].default
        ]
        if ignored or call.get("kwargs"):
            raise MethodConfigError(
                f"a guided {stock.__name__} does not take {ignored or sorted(call['kwargs'])}; "
                f"it reads {sorted(COMMON + self._reads)} and the method options"
            )
        return call

    @property
    def _embeds(self) -> tuple[str, ...]:
        """The family's further encode_prompt arguments among its stock arguments."""
        return tuple(
            name for name in self._reads if name.startswith(("prompt_", "negative_prompt_", "pooled_", "negative_pooled_"))
        )

    @staticmethod
    def _method(guidance: str | Guidance | None, cfg_scale: float, options: dict, classifier: Classifier | None) -> Guidance:
        """The run's method: the stock CFG (or the conditional branch alone) when `guidance` is None."""
        if isinstance(guidance, Guidance):
            if options:
                raise MethodConfigError(f"options {sorted(options)} go to build_method, not beside a built method")
            return guidance
        name = guidance or ("cfg" if cfg_scale != 1.0 else "plain")
        return build_method(name, Settings(cfg_scale=cfg_scale, **options), classifier)

    @staticmethod
    def _conditions(call: dict, count: int) -> list[str | None]:
        """One prompt per sample, in encode_prompt's order (each prompt's images together); None for given embeddings."""
        prompt = call["prompt"]
        if prompt is None:
            return [None] * count
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        return [p for p in prompts for _ in range(call["num_images_per_prompt"])]

    def _retrieve_timesteps(self, call: dict, device, height: int, width: int):
        from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import retrieve_timesteps

        steps, timesteps, sigmas = call["num_inference_steps"], call.get("timesteps"), call.get("sigmas")
        return retrieve_timesteps(self.scheduler, steps, device, timesteps, sigmas, **self._timestep_kwargs(height, width))

    def _size(self, call: dict) -> tuple[int, int]:
        """(height, width): as given, else the pipeline's default sample size in pixels (SDXL's and SD 3's rule)."""
        default = self.default_sample_size * self.vae_scale_factor
        return call["height"] or default, call["width"] or default

    def _timestep_kwargs(self, height: int, width: int) -> dict:
        return {}

    def _control(self, call: dict, batch: int, height: int, width: int) -> Control | None:
        return None

    def _loop(self, backbone, method, start, conditions, energy, control, call, noise_rule) -> tuple[Tensor, list[StepRecord]]:
        """guided_loop with the pipeline's progress bar, interrupt and callback_on_step_end: (final latents, records)."""
        steps = len(start.scheduler.timesteps)
        callback, inputs = call["callback_on_step_end"], call["callback_on_step_end_tensor_inputs"]

        def after_step(index: int, t: Tensor, z: Tensor) -> Tensor:
            if callback is None:
                return z
            tensors = {"latents": z, **callback_tensors(backbone, start)}
            returned = callback(self, index, t, {name: tensors[name] for name in inputs if name in tensors})
            return returned.get("latents", z)

        self._num_timesteps = steps
        with self.progress_bar(total=steps) as bar:
            recorder = Recorder(backbone, energy, steps, progress=lambda done, total: bar.update())
            latents, _ = guided_loop(
                backbone,
                method,
                start,
                conditions,
                recorder,
                eta=call.get("eta", 0.0),
                noise_rule=noise_rule,
                energy=energy,
                control=control,
                should_stop=lambda: self.interrupt,
                after_step=after_step,
            )
        return latents, recorder.records


def callback_tensors(backbone: PipelineBackbone, start: Start) -> dict[str, Tensor]:
    """The conditioning tensors a callback_on_step_end may ask for, by the stock pipeline's names (unbatched by CFG).

    Args:
        backbone: the pipeline's backbone (its family and packed widths).
        start: the run's packed embeddings.

    Returns:
        The tensors by name.
    """
    positive, negative = unpack(start.embeddings, backbone.extra_sizes), unpack(start.null_embeddings, backbone.extra_sizes)
    tensors = {"prompt_embeds": positive[0], "negative_prompt_embeds": negative[0]}
    if backbone.family == "sdxl":
        tensors.update(add_text_embeds=positive[1], negative_pooled_prompt_embeds=negative[1], add_time_ids=positive[2])
    if backbone.family == "sd3":
        tensors.update(pooled_prompt_embeds=positive[1], negative_pooled_prompt_embeds=negative[1])
    return tensors


class StableDiffusionFinish:
    """SD 1.x/2.x's end of a call: the stock decode, safety checker and post-processing."""

    def _finish(self, latents: Tensor, call: dict, records: list[StepRecord]):
        """The stock decode, safety checker and post-processing."""
        if call["output_type"] == "latent":
            image, nsfw = latents, None
        else:
            image = self.vae.decode(latents / self.vae.config.scaling_factor, return_dict=False, generator=call["generator"])[0]
            image, nsfw = self.run_safety_checker(image, self._execution_device, latents.dtype)
        denormalize = [True] * image.shape[0] if nsfw is None else [not flagged for flagged in nsfw]
        image = self.image_processor.postprocess(image, output_type=call["output_type"], do_denormalize=denormalize)
        self.maybe_free_model_hooks()
        if not call["return_dict"]:
            return image, nsfw
        return GuidedStableDiffusionPipelineOutput(images=image, nsfw_content_detected=nsfw, records=records)


class GuidedStableDiffusionPipeline(GuidedMixin, StableDiffusionFinish, StableDiffusionPipeline):
    """StableDiffusionPipeline (SD 1.x and 2.x, epsilon and v-prediction) with training-free guidance in __call__."""

    def _check(self, call: dict) -> None:
        self.check_inputs(
            call["prompt"],
            *self._size(call),
            None,
            call["negative_prompt"],
            call["prompt_embeds"],
            call["negative_prompt_embeds"],
            None,
            None,
            call["callback_on_step_end_tensor_inputs"],
        )

    def _size(self, call: dict) -> tuple[int, int]:
        default = self.unet.config.sample_size * self.vae_scale_factor
        return call["height"] or default, call["width"] or default


class ControlNetInput:
    """A ControlNet pipeline's control image: its size sets the image's, the stock `prepare_image` makes the map."""

    def _size(self, call: dict) -> tuple[int, int]:
        image = self.control_image_processor.preprocess(call["image"], height=call["height"], width=call["width"])
        return tuple(image.shape[-2:])

    def _control(self, call: dict, batch: int, height: int, width: int) -> Control:
        """One map per sample (the loop repeats it for CFG's batch)."""
        image = self.prepare_image(
            call["image"], width, height, batch, call["num_images_per_prompt"], self._execution_device, self.controlnet.dtype
        )
        return Control(image, float(call["controlnet_conditioning_scale"]))


class GuidedStableDiffusionControlNetPipeline(
    ControlNetInput, GuidedMixin, StableDiffusionFinish, StableDiffusionControlNetPipeline
):
    """StableDiffusionControlNetPipeline (one ControlNet) with training-free guidance in __call__."""

    _reads = ("image", "controlnet_conditioning_scale")

    def _check(self, call: dict) -> None:
        self.check_inputs(
            call["prompt"],
            call["image"],
            None,
            call["negative_prompt"],
            call["prompt_embeds"],
            call["negative_prompt_embeds"],
            None,
            None,
            call["controlnet_conditioning_scale"],
            0.0,
            1.0,
            call["callback_on_step_end_tensor_inputs"],
        )


class StableDiffusionXLFinish:
    """SDXL's end of a call: the stock decode and post-processing."""

    def _finish(self, latents: Tensor, call: dict, records: list[StepRecord]):
        """The stock decode (fp16 VAEs upcast, latents_mean/std where the VAE has them), watermark and post-processing."""
        if call["output_type"] == "latent":
            image = latents
        else:
            upcast = self.vae.dtype == torch.float16 and self.vae.config.force_upcast
            if upcast:
                self.upcast_vae()
            config = self.vae.config
            latents = latents.to(self.vae.dtype)
            if getattr(config, "latents_mean", None) is not None and getattr(config, "latents_std", None) is not None:
                mean = torch.tensor(config.latents_mean).view(1, -1, 1, 1).to(latents)
                std = torch.tensor(config.latents_std).view(1, -1, 1, 1).to(latents)
                latents = latents * std / config.scaling_factor + mean
            else:
                latents = latents / config.scaling_factor
            image = self.vae.decode(latents, return_dict=False)[0]
            if upcast:
                self.vae.to(dtype=torch.float16)
            if self.watermark is not None:
                image = self.watermark.apply_watermark(image)
            image = self.image_processor.postprocess(image, output_type=call["output_type"])
        self.maybe_free_model_hooks()
        if not call["return_dict"]:
            return (image,)
        return GuidedStableDiffusionXLPipelineOutput(images=image, records=records)


SDXL_PROMPTS = ("prompt_2", "negative_prompt_2", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")


class GuidedStableDiffusionXLPipeline(GuidedMixin, StableDiffusionXLFinish, StableDiffusionXLPipeline):
    """StableDiffusionXLPipeline with training-free guidance in __call__; its pooled text embedding and time ids
    travel with the prompt embeddings (guidance.pipelines.denoisers.pack)."""

    _reads = SDXL_PROMPTS

    def _check(self, call: dict) -> None:
        self.check_inputs(
            call["prompt"],
            call["prompt_2"],
            *self._size(call),
            None,
            call["negative_prompt"],
            call["negative_prompt_2"],
            call["prompt_embeds"],
            call["negative_prompt_embeds"],
            call["pooled_prompt_embeds"],
            call["negative_pooled_prompt_embeds"],
            None,
            None,
            call["callback_on_step_end_tensor_inputs"],
        )


class GuidedStableDiffusionXLControlNetPipeline(
    ControlNetInput, GuidedMixin, StableDiffusionXLFinish, StableDiffusionXLControlNetPipeline
):
    """StableDiffusionXLControlNetPipeline (one ControlNet) with training-free guidance in __call__."""

    _reads = (*SDXL_PROMPTS, "image", "controlnet_conditioning_scale")

    def _check(self, call: dict) -> None:
        self.check_inputs(
            call["prompt"],
            call["prompt_2"],
            call["image"],
            None,
            call["negative_prompt"],
            call["negative_prompt_2"],
            call["prompt_embeds"],
            call["negative_prompt_embeds"],
            call["pooled_prompt_embeds"],
            None,
            None,
            call["negative_pooled_prompt_embeds"],
            call["controlnet_conditioning_scale"],
            0.0,
            1.0,
            call["callback_on_step_end_tensor_inputs"],
        )


class GuidedStableDiffusion3Pipeline(GuidedMixin, StableDiffusion3Pipeline):
    """StableDiffusion3Pipeline (rectified flow) with training-free guidance in __call__; the methods read the flow's
    VP view (docs/methods.md, "Gaussian paths"). It runs without its T5 encoder where the pipeline has none."""

    _reads = (
        "prompt_2",
        "prompt_3",
        "negative_prompt_2",
        "negative_prompt_3",
        "pooled_prompt_embeds",
        "negative_pooled_prompt_embeds",
        "mu",
    )

    def _check(self, call: dict) -> None:
        self.check_inputs(
            call["prompt"],
            call["prompt_2"],
            call["prompt_3"],
            *self._size(call),
            call["negative_prompt"],
            call["negative_prompt_2"],
            call["negative_prompt_3"],
            call["prompt_embeds"],
            call["negative_prompt_embeds"],
            call["pooled_prompt_embeds"],
            call["negative_pooled_prompt_embeds"],
            call["callback_on_step_end_tensor_inputs"],
        )

    def _timestep_kwargs(self, height: int, width: int) -> dict:
        """The stock resolution-dependent shift `mu` where the scheduler uses dynamic shifting."""
        config = self.scheduler.config
        if not config.get("use_dynamic_shifting", None):
            return {}
        patch = self.transformer.config.patch_size
        tokens = (height // self.vae_scale_factor // patch) * (width // self.vae_scale_factor // patch)
        mu = calculate_shift(
            tokens,
            config.get("base_image_seq_len", 256),
            config.get("max_image_seq_len", 4096),
            config.get("base_shift", 0.5),
            config.get("max_shift", 1.16),
        )
        return {"mu": mu}

    def _finish(self, latents: Tensor, call: dict, records: list[StepRecord]):
        """The stock decode (scaling and shift factors) and post-processing."""
        if call["output_type"] == "latent":
            image = latents
        else:
            latents = latents / self.vae.config.scaling_factor + self.vae.config.shift_factor
            image = self.vae.decode(latents.to(self.vae.dtype), return_dict=False)[0]
            image = self.image_processor.postprocess(image, output_type=call["output_type"])
        self.maybe_free_model_hooks()
        if not call["return_dict"]:
            return (image,)
        return GuidedStableDiffusion3PipelineOutput(images=image, records=records)

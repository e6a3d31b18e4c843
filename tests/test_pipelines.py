"""Guided diffusers pipelines on tiny random SD 1.5, SDXL and SD 3 folders: equal to the stock pipelines when unguided,
the energy falls under each gradient method, and they behave as diffusers pipelines."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    HeunDiscreteScheduler,
    StableDiffusion3Pipeline,
    StableDiffusionControlNetPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLControlNetPipeline,
    StableDiffusionXLPipeline,
    UniPCMultistepScheduler,
)
from helpers import MeanColour, FixedClassifier

from guidance.energy import Energy
from guidance.errors import EnergyShapeError, MethodConfigError, UnsupportedModelError, WeightsUnavailableError
from guidance.pipelines import (
    GuidedStableDiffusion3Pipeline,
    GuidedStableDiffusionControlNetPipeline,
    GuidedStableDiffusionPipeline,
    GuidedStableDiffusionXLControlNetPipeline,
    GuidedStableDiffusionXLPipeline,
)
from guidance.pipelines.loading import family, load_pipeline
from guidance.schedulers import EVODiffScheduler

VP_SOLVERS = (DDIMScheduler, EulerDiscreteScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler, EVODiffScheduler)
STOCK = {"sd": StableDiffusionPipeline, "sdxl": StableDiffusionXLPipeline, "sd3": StableDiffusion3Pipeline}
GUIDED = {"sd": GuidedStableDiffusionPipeline, "sdxl": GuidedStableDiffusionXLPipeline, "sd3": GuidedStableDiffusion3Pipeline}
CASES = [("sd", s) for s in VP_SOLVERS] + [("sdxl", s) for s in VP_SOLVERS] + [("sd3", FlowMatchEulerDiscreteScheduler)]


@pytest.fixture(scope="module")
def folders(tiny_families):
    return tiny_families


@pytest.fixture(scope="module")
def stock(folders):
    """The stock pipeline of each family, loaded from its folder as a user would."""
    pipes = {}
    for name, cls in STOCK.items():
        extra = {"text_encoder_3": None, "tokenizer_3": None} if name == "sd3" else {}
        pipes[name] = cls.from_pretrained(folders[name], **extra)
        pipes[name].set_progress_bar_config(disable=True)
    return pipes


def images(pipe, prompt="a red cat", steps=4, seed=0, **kwargs):
    return pipe(
        prompt, num_inference_steps=steps, generator=torch.Generator().manual_seed(seed), output_type="np", **kwargs
    ).images


@pytest.mark.parametrize(("name", "scheduler"), CASES, ids=[f"{n}-{s.__name__}" for n, s in CASES])
def test_unguided_pipeline_gives_the_stock_images(stock, name, scheduler):
    pipe = stock[name]
    pipe.scheduler = scheduler.from_config(pipe.scheduler.config)
    guided = GUIDED[name].from_pipe(pipe)
    for kwargs in ({}, {"guidance_scale": 1.0}):
        expected = images(pipe, **kwargs)
        assert abs(images(guided, **kwargs) - expected).max() <= 1e-4


@pytest.mark.parametrize("name", ["sd", "sdxl"])
def test_unguided_controlnet_pipeline_gives_the_stock_images(folders, name):
    from diffusers import ControlNetModel

    stock, guided_class, net = {
        "sd": (StableDiffusionControlNetPipeline, GuidedStableDiffusionControlNetPipeline, "controlnet"),
        "sdxl": (StableDiffusionXLControlNetPipeline, GuidedStableDiffusionXLControlNetPipeline, "sdxl-controlnet"),
    }[name]
    extra = {"safety_checker": None, "requires_safety_checker": False} if name == "sd" else {}
    pipe = stock.from_pretrained(folders[name], controlnet=ControlNetModel.from_pretrained(folders[net]), **extra)
    pipe.set_progress_bar_config(disable=True)
    control = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    guided = guided_class.from_pipe(pipe)
    unguided = images(guided, image=control)
    assert abs(unguided - images(pipe, image=control)).max() <= 1e-4
    assert abs(unguided - images(guided, image=torch.flip(control, [-1]))).max() > 1e-5  # the map acts (exactly 0 if ignored)


def test_from_pipe_shares_the_modules(stock):
    for name, pipe in stock.items():
        guided = GUIDED[name].from_pipe(pipe)
        for component, module in pipe.components.items():
            assert guided.components[component] is module, (name, component)


def final_energy(pipe, energy, guidance=None, seeds=range(2), **kwargs) -> float:
    """The energy of the final images, averaged over seeds (2 samples each)."""
    values = []
    for seed in seeds:
        out = pipe(
            ["a cat"] * 2,
            num_inference_steps=6,
            generator=torch.Generator().manual_seed(seed),
            output_type="pt",
            guidance=guidance,
            energy=energy,
            guidance_scale=1.0,
            **kwargs,
        )
        values.append(energy(out.images * 2 - 1).mean().item())
    return sum(values) / len(values)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sd", "sdxl", "sd3"])
def test_energy_falls_under_each_gradient_method(stock, name):
    guided = GUIDED[name].from_pipe(stock[name])
    guided.scheduler = (FlowMatchEulerDiscreteScheduler if name == "sd3" else DDIMScheduler).from_config(guided.scheduler.config)
    energy = MeanColour()
    plain = final_energy(guided, energy)
    for method in ("freedom", "figd", "dps"):
        assert final_energy(guided, energy, method, scale=0.3, step_rule="normalized") < plain - 0.01, method
    if name == "sd3":  # DSG needs a step with noise: the stochastic flow step
        guided.scheduler = FlowMatchEulerDiscreteScheduler.from_config(guided.scheduler.config, stochastic_sampling=True)
    eta = {} if name == "sd3" else {"eta": 1.0}
    assert final_energy(guided, energy, "figd+dsg", scale=1.0, dsg_rate=0.6, **eta) < final_energy(guided, energy, **eta) - 0.01


def test_records_per_step_beside_the_images(stock):
    guided = GUIDED["sd"].from_pipe(stock["sd"])
    guided.scheduler = DDIMScheduler.from_config(guided.scheduler.config)
    out = guided("a cat", num_inference_steps=3, guidance="figd", energy=MeanColour(), scale=0.2, output_type="np")
    from diffusers.pipelines.stable_diffusion import StableDiffusionPipelineOutput

    assert isinstance(out, StableDiffusionPipelineOutput)
    assert [r.index for r in out.records] == [0, 1, 2] and all(r.nfe == 2 and len(r.energy) == 1 for r in out.records)
    assert out.images.shape == (1, 16, 16, 3)


def test_gfcg_runs_on_sd3_classifier_free_guidance(stock):
    guided = GUIDED["sd3"].from_pipe(stock["sd3"])
    classifier = FixedClassifier([0.3, 0.5, 0.1, 0.1])
    out = guided(
        ["cat"],
        num_inference_steps=3,
        guidance="cfg+gfcg",
        classifier=classifier,
        guidance_scale=3.0,
        gfcg_max_scale=2.0,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    )
    cfg = images(guided, prompt=["cat"], steps=3, guidance_scale=3.0)
    assert all(r.nfe == 3 for r in out.records)  # D_c, D_u and D(c_ref)
    assert abs(out.images - cfg).max() > 1e-3


def test_diffusers_behaviour(stock, folders, tmp_path):
    pipe = GUIDED["sd"].from_pipe(stock["sd"])
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    # batched prompts and num_images_per_prompt
    out = images(pipe, prompt=["a cat", "a dog"], num_images_per_prompt=2)
    assert out.shape == (4, 16, 16, 3)
    # callback_on_step_end sees the latents and may replace them
    seen = []

    def callback(p, index, t, tensors):
        seen.append((index, tuple(tensors["latents"].shape), tuple(tensors["prompt_embeds"].shape)))
        return {"latents": tensors["latents"] * 0 if index == 3 else tensors["latents"]}

    zeroed = pipe(
        "a cat",
        num_inference_steps=4,
        callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"],
        output_type="latent",
    ).images
    assert [s[0] for s in seen] == [0, 1, 2, 3] and seen[0][1] == (1, 4, 8, 8) and torch.count_nonzero(zeroed) == 0
    # encode_prompt alone, output types, save_pretrained / from_pretrained
    embeds, negative = pipe.encode_prompt("a cat", "cpu", 1, True)
    assert embeds.shape == negative.shape == (1, 16, 32)
    assert isinstance(pipe("a cat", num_inference_steps=2).images[0], Image.Image)
    assert pipe("a cat", num_inference_steps=2, output_type="pt").images.shape == (1, 3, 16, 16)
    pipe.save_pretrained(tmp_path / "saved")
    again = GuidedStableDiffusionPipeline.from_pretrained(tmp_path / "saved")
    again.set_progress_bar_config(disable=True)
    assert abs(images(again) - images(pipe)).max() == 0
    # dtype and device moves
    moved = again.to("cpu", torch.float64)
    assert moved.unet.dtype == torch.float64 and images(moved).shape == (1, 16, 16, 3)


def test_load_pipeline_reads_the_family_from_model_index(folders, tmp_path):
    for name in ("sd", "sdxl", "sd3"):
        assert family(str(folders[name])) == name
        assert isinstance(load_pipeline(str(folders[name])), GUIDED[name])
    assert isinstance(
        load_pipeline(str(folders["sd"]), controlnet=str(folders["controlnet"])), GuidedStableDiffusionControlNetPipeline
    )
    with pytest.raises(WeightsUnavailableError, match="model_index.json"):
        load_pipeline(str(tmp_path / "nowhere"))
    with pytest.raises(WeightsUnavailableError, match="huggingface-cli download"):
        load_pipeline("no-such-org/no-such-model")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model_index.json").write_text('{"_class_name": "FluxPipeline"}')
    with pytest.raises(UnsupportedModelError, match="FluxPipeline"):
        load_pipeline(str(tmp_path / "other"))
    assert isinstance(
        load_pipeline(str(folders["sdxl"]), controlnet=str(folders["sdxl-controlnet"])), GuidedStableDiffusionXLControlNetPipeline
    )
    with pytest.raises(UnsupportedModelError, match="ControlNet"):
        load_pipeline(str(folders["sd3"]), controlnet=str(folders["controlnet"]))


class PerPixel(Energy):
    def forward(self, images):
        return images.mean(1)  # (B, H, W): not one value per image


def test_typed_errors_say_what_to_do(stock):
    pipe = GUIDED["sd"].from_pipe(stock["sd"])
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    with pytest.raises(MethodConfigError, match="DDIM with eta > 0"):
        pipe("a cat", num_inference_steps=2, guidance="figd+dsg", energy=MeanColour())
    pipe.scheduler = HeunDiscreteScheduler.from_config(pipe.scheduler.config)
    with pytest.raises(MethodConfigError, match="HeunDiscreteScheduler is not among them"):
        pipe("a cat", num_inference_steps=2)
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    with pytest.raises(MethodConfigError, match="time travel"):
        pipe("a cat", num_inference_steps=2, guidance="freedom", energy=MeanColour(), repeats=2)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    with pytest.raises(EnergyShapeError, match=r"shape \(B,\)"):
        pipe("a cat", num_inference_steps=2, guidance="freedom", energy=PerPixel())
    with pytest.raises(MethodConfigError, match="needs an energy"):
        pipe("a cat", num_inference_steps=2, guidance="figd")
    with pytest.raises(MethodConfigError, match="ip_adapter_image"):
        pipe("a cat", num_inference_steps=2, ip_adapter_image=object())
    with pytest.raises(MethodConfigError, match="scale"):
        pipe("a cat", num_inference_steps=2, guidance="figd", energy=MeanColour(), scale=-1.0)
    sd3 = GUIDED["sd3"].from_pipe(stock["sd3"])
    with pytest.raises(MethodConfigError, match="stochastic_sampling=True"):
        sd3("a cat", num_inference_steps=2, guidance="figd+dsg", energy=MeanColour())


def test_the_readme_section_runs_as_written(tiny_families, tmp_path, monkeypatch):
    """README "Use with diffusers", its model id pointed at the tiny SDXL folder."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = readme.split("## Use with diffusers", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace('"stabilityai/stable-diffusion-xl-base-1.0"', repr(str(tiny_families["sdxl"])))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert (tmp_path / "lighthouse.png").exists() and len(namespace["out"].records) == 30

"""`gpu`: the SD 1.5 architecture (random weights) at 512x512 in fp16 on CUDA: ms per step of each method.

Gradient methods (FreeDoM, FIGD, DSG) guide every step with the face-ID energy and run without CFG, so
their ratio to the plain step is the cost of the gradient alone. Speed-ups used and recorded: PyTorch's
scaled-dot-product attention (diffusers' AttnProcessor2_0), channels_last UNet/VAE/ControlNet, and
torch.compile of the UNet, kept only where it makes the plain step faster.
`measure` is the suite without the CUDA requirement; the tests run it on a CPU at tiny size.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch

from guidance.methods import Settings
from guidance.sampling import SamplingResult
from guidance.tasks import TaskRequest, build_energy
from guidance.worlds import World

from ..common import BenchUnavailable, Options, Rows, SuiteOutput, generate, goal, reference_images, warm_up

SIZE = 512
METHODS = {  # label: (method, scheduler, uses the face energy)
    "plain": ("plain", "ddim", False),
    "cfg": ("cfg", "ddim", False),
    "freedom": ("freedom", "ddim", True),
    "figd": ("figd", "ddim", True),
    "freedom+dsg": ("freedom+dsg", "ddim", True),
    "figd+dsg": ("figd+dsg", "ddim", True),
    "gfcg": ("gfcg", "ddim", False),
    "cfg+gfcg": ("cfg+gfcg", "ddim", False),
    "evodiff": ("plain", "evodiff", False),
}
SETTINGS = Settings(cfg_scale=7.5, scale=0.08, step_rule="normalized", window=(0.0, 1.0), dsg_rate=0.05)


NEEDS = ("face_embedder", "classifier")

@dataclass(frozen=True)
class Plan:
    steps: int
    batch: int = 1


PLANS = {"quick": Plan(steps=10), "full": Plan(steps=30)}


def check(opts: Options) -> None:
    if opts.device != "cuda" or not torch.cuda.is_available():
        raise BenchUnavailable(
            "the gpu suite needs a CUDA device: run it with --device cuda on a machine where "
            f"torch.cuda.is_available() is True (here: {torch.cuda.is_available()}, torch {torch.__version__})"
        )


def prepare(opts: Options) -> Options:
    """The gpu suite always measures sd15-random at 512 px (fp16 comes with the CUDA device)."""
    return Options(backbone="sd15-random", device="cuda", quick=opts.quick, image_size=opts.image_size or SIZE)


def run(world: World, opts: Options) -> SuiteOutput:
    check(opts)
    return measure(world, opts.plan(PLANS), compile_unet=True)


def measure(world: World, plan: Plan, compile_unet: bool) -> SuiteOutput:
    """ms per step of every method in METHODS, each also as a ratio to the plain step."""
    eager_unet, used = world.backbone.unet, speed_ups(world)
    if compile_unet:
        used |= try_compile(world, plan)
    energy = face_energy(world)
    condition = world.classifier.class_names[0]
    rows = Rows("gpu")
    for label, (method, scheduler, guided) in METHODS.items():
        kwargs = {"settings": SETTINGS, "scheduler": scheduler, "eta": 1.0, "energy": energy if guided else None}
        try:
            results = timed_run(world, method, condition, plan, kwargs)
        except Exception as error:  # a compiled UNet that fails on this method: measure it eagerly
            if world.backbone.unet is eager_unet:
                raise
            world.backbone.unet = eager_unet
            used[f"eager_from_{label}"] = f"{type(error).__name__}: {error}"[:300]
            results = timed_run(world, method, condition, plan, kwargs)
        rows.append({"task": "face" if guided else "class", "method": label, "steps": plan.steps, "nfe": results[0].nfe,
                     "ms_per_step": median_step_ms(results), "peak_mem_mb": results[0].peak_mem_mb})  # fmt: skip
    plain = rows[0]["ms_per_step"]
    for row in rows:
        row["ratio_to_plain"] = row["ms_per_step"] / plain
    by = {r["method"]: r for r in rows}
    speedup = by["freedom"]["ms_per_step"] / by["figd"]["ms_per_step"]
    goals = [goal("FIGD speed-up over FreeDoM per step", ">= 2x", speedup, speedup >= 2, "x")]
    config = {"steps": plan.steps, "batch": plan.batch, "size": world.backbone.image_size, **used}
    return SuiteOutput(rows, goals, config=config)


def timed_run(world: World, method: str, condition: str, plan: Plan, kwargs: dict) -> list[SamplingResult]:
    """A 2-step warm-up (and compilation), then the measured run."""
    generate(world, method, [condition], steps=2, **kwargs)
    return generate(world, method, [condition] * plan.batch, steps=plan.steps, **kwargs)


def median_step_ms(results: list[SamplingResult]) -> float:
    """Median wall time of one step, the first step left out."""
    return 1000 * statistics.median(s.seconds for r in results for s in r.steps[1:])


def face_energy(world: World):
    reference = reference_images(world.backbone.image_size)["face"]
    return build_energy(world, TaskRequest(task="face", methods=[], reference=reference))[0]


def speed_ups(world: World) -> dict:
    """channels_last for the convolutional networks; reports the attention processor and dtype in use."""
    backbone = world.backbone
    for module in (backbone.unet, getattr(backbone, "vae", None), backbone.controlnet):
        if module is not None:
            module.to(memory_format=torch.channels_last)
    processors = {type(p).__name__ for p in backbone.unet.attn_processors.values()}
    return {"dtype": str(backbone.dtype).removeprefix("torch."), "channels_last": True, "attention": sorted(processors)}


def try_compile(world: World, plan: Plan) -> dict:
    """torch.compile the UNet; keep it only if the plain step gets faster."""
    condition = world.classifier.class_names[0]
    eager_unet = world.backbone.unet

    def plain_ms() -> float:
        warm_up(world, "plain", condition)
        return median_step_ms(generate(world, "plain", [condition] * plan.batch, steps=plan.steps))

    eager = plain_ms()
    world.backbone.unet = torch.compile(eager_unet)
    try:
        compiled = plain_ms()
    except Exception as error:  # a compiler failure must not end the benchmark
        world.backbone.unet = eager_unet
        return {"compile": False, "compile_error": f"{type(error).__name__}: {error}"[:300], "plain_ms_eager": eager}
    kept = compiled < 0.95 * eager
    if not kept:
        world.backbone.unet = eager_unet
    return {"compile": kept, "plain_ms_eager": eager, "plain_ms_compiled": compiled}

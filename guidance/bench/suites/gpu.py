"""`gpu`: the SD 1.5 architecture (random weights) at 512x512 in fp16 on CUDA: time per step and per image, and
peak memory, of each method.

    python -m guidance.bench gpu --quick --json docs/figures/json/gpu-sd15-random.json   # one call, < 8 min

Every method samples one class prompt with CFG at w = 7.5 where it uses CFG (gradient methods too: build_method
adds CFG when cfg_scale != 1), so a FIGD step compares with a plain CFG step. Gradient methods guide every step
with the face-ID energy. FreeDoM also runs with the UNet's gradient checkpointing, and FreeDoM and FIGD with the
tiny decoder (a random TAESD-architecture AutoencoderTiny) on the guidance path; CFG+GFCG with its classifier on
the full and the tiny decoder, and with every branch in one batched call and the classifier every 3 steps (the classes preset). ATG's guide is the UNet itself
(timing only). `peak_mem_mb` is the CUDA allocator's peak above the loaded weights; `peak_total_mb` adds
every weight loaded (the world holds more networks than one method needs). Speed-ups used and recorded:
PyTorch's scaled-dot-product attention (diffusers' AttnProcessor2_0), channels_last weights (set by the loaders), and,
in the full plan, torch.compile of the UNet, kept only where it makes the plain step faster.
`measure` is the suite without the CUDA requirement; the tests run it on a CPU at tiny size.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace

import torch

from guidance.bench.common import (
    BenchUnavailable,
    Options,
    Rows,
    SuiteOutput,
    generate,
    goal_told,
    reference_images,
    timing,
    warm_up,
)
from guidance.methods import Settings
from guidance.playground.tasks import build_energy, make_request
from guidance.sampling import SamplingResult
from guidance.worlds import World

SIZE = 512
SETTINGS = Settings(cfg_scale=7.5, scale=0.08, step_rule="normalized", window=(0.0, 1.0), dsg_rate=0.05)
METHODS = {  # label: (method, scheduler, uses the face energy, settings)
    "plain": ("plain", "ddim", False, SETTINGS),
    "cfg": ("cfg", "ddim", False, SETTINGS),
    "freedom": ("freedom", "ddim", True, SETTINGS),
    "freedom checkpointed": ("freedom", "ddim", True, replace(SETTINGS, checkpointing=True)),
    "freedom tiny decoder": ("freedom", "ddim", True, replace(SETTINGS, tiny_decoder=True)),
    "figd": ("figd", "ddim", True, SETTINGS),
    "figd tiny decoder": ("figd", "ddim", True, replace(SETTINGS, tiny_decoder=True)),
    "figd+dsg": ("figd+dsg", "ddim", True, SETTINGS),
    "cfg+gfcg": ("cfg+gfcg", "ddim", False, SETTINGS),
    "cfg+gfcg tiny decoder": ("cfg+gfcg", "ddim", False, replace(SETTINGS, tiny_decoder=True)),
    "cfg+gfcg one call, interval 3": (
        "cfg+gfcg",
        "ddim",
        False,
        replace(SETTINGS, gfcg_one_call=True, gfcg_interval=3),
    ),  # the classes preset's
    "atg+gfcg": ("atg+gfcg", "ddim", False, replace(SETTINGS, cfg_scale=2.0)),
    "evodiff": ("cfg", "evodiff", False, SETTINGS),
    "dpm-solver++": ("cfg", "dpmsolver++", False, SETTINGS),
}
EIGHT_GB = 8 * 1024
NEEDS = ("face_embedder", "classifier")


@dataclass(frozen=True)
class Plan:
    steps: int
    batch: int = 1
    compile: bool = False


PLANS = {"quick": Plan(steps=20), "full": Plan(steps=50, compile=True)}


def check(opts: Options) -> None:
    """Raises BenchUnavailable where there is no CUDA device."""
    if not torch.cuda.is_available():
        raise BenchUnavailable(
            "the gpu suite needs a CUDA device: run it on a machine where "
            f"torch.cuda.is_available() is True (here: False, torch {torch.__version__})"
        )


def prepare(opts: Options) -> Options:
    """The gpu suite always measures sd15-random on CUDA at 512 px (fp16 comes with the CUDA device)."""
    return Options(backbone="sd15-random", device="cuda", quick=opts.quick, image_size=opts.image_size or SIZE)


def run(world: World, opts: Options) -> SuiteOutput:
    """`measure` with the plan's compile choice (the interface: guidance.bench.suites)."""
    check(opts)
    plan = opts.plan(PLANS)
    return measure(world, plan, compile_unet=plan.compile)


def measure(world: World, plan: Plan, compile_unet: bool) -> SuiteOutput:
    """Per step (median) and per image time and peak memory of every method in METHODS, with ratios to the plain
    and CFG steps, and the suite's goals.

    Args:
        world: the world (sd15-random on CUDA in the suite; any world in the tests).
        plan: steps and batch.
        compile_unet: try torch.compile on the UNet (`try_compile`), falling back to eager per method.
    """
    eager_unet, used = world.backbone.unet, speed_ups(world)
    if compile_unet:
        used |= try_compile(world, plan)
    energy, weights = face_energy(world), weights_mb(world)
    condition = world.classifier.class_names[0]
    rows = Rows("gpu")
    for label, (method, scheduler, guided, settings) in METHODS.items():
        if "tiny decoder" in label and world.backbone.tiny_decoder is None:
            continue
        kwargs = {
            "settings": settings,
            "scheduler": scheduler,
            "eta": 1.0 if scheduler == "ddim" else 0.0,
            "energy": energy if guided else None,
        }
        try:
            results = timed_run(world, method, condition, plan, kwargs)
        except Exception as error:  # a compiled UNet that fails on this method: measure it eagerly
            if world.backbone.unet is eager_unet:
                raise
            world.backbone.unet = eager_unet
            used[f"eager_from_{label}"] = f"{type(error).__name__}: {error}"[:300]
            results = timed_run(world, method, condition, plan, kwargs)
        peak = max(r.peak_mem_mb for r in results)
        rows.append(
            {
                **timing(results),
                "task": "face" if guided else "class",
                "method": label,
                "scheduler": scheduler,
                "ms_per_step": median_step_ms(results),
                "peak_mem_mb": peak,
                "peak_total_mb": peak + weights,
            }
        )
    by = {r["method"]: r for r in rows}
    for row in rows:
        row["ratio_to_plain"] = row["ms_per_step"] / by["plain"]["ms_per_step"]
        row["ratio_to_cfg"] = row["ms_per_step"] / by["cfg"]["ms_per_step"]
    config = {"steps": plan.steps, "batch": plan.batch, "size": world.backbone.image_size, "weights_mb": weights, **used}
    return SuiteOutput(rows, goals(by, weights), config=config)


def goals(by: dict[str, dict], weights: float) -> list[dict]:
    """The step-time goals, FIGD over FreeDoM, and FreeDoM's memory with checkpointing.

    Args:
        by: the rows by method label.
        weights: MB of weights the world holds (`weights_mb`).
    """
    ms = {label: row["ms_per_step"] for label, row in by.items()}
    figd, dsg, gfcg = ms["figd"] / ms["cfg"], ms["figd+dsg"] / ms["figd"] - 1, ms["cfg+gfcg"] / ms["cfg"]
    speedup, tiny_gfcg, one_call = (
        ms["freedom"] / ms["figd"],
        ms["cfg+gfcg tiny decoder"] / ms["cfg"],
        ms["cfg+gfcg one call, interval 3"] / ms["cfg"],
    )
    checkpointed = by["freedom checkpointed"]
    return [
        goal_told("FIGD step vs plain CFG step", "<= 1.5x", figd, figd <= 1.5, "x"),
        goal_told("FIGD+DSG step vs FIGD step", "within 5%", 100 * dsg, abs(dsg) <= 0.05, "%"),
        goal_told("CFG+GFCG step vs CFG step", "<= 1.3x", gfcg, gfcg <= 1.3, "x"),
        goal_told("CFG+GFCG (classifier on the tiny decoder) step vs CFG step", "<= 1.3x", tiny_gfcg, tiny_gfcg <= 1.3, "x"),
        goal_told(
            "CFG+GFCG (one call, classifier every 3 steps: the classes preset) step vs CFG step",
            "<= 1.3x",
            one_call,
            one_call <= 1.3,
            "x",
        ),
        goal_told("FIGD speed-up over FreeDoM per step", ">= 2x", speedup, speedup >= 2, "x"),
        goal_told(
            f"FreeDoM checkpointed: peak incl. all {weights:.0f} MB of weights",
            "<= 8 GB",
            checkpointed["peak_total_mb"],
            checkpointed["peak_total_mb"] <= EIGHT_GB,
            " MB",
        ),
    ]


def weights_mb(world: World) -> float:
    """MB of every parameter and buffer the world holds on its device."""
    modules = [getattr(world.backbone, n, None) for n in ("unet", "vae", "text_encoder", "controlnet", "tiny_decoder")]
    modules += [world.face_embedder, world.classifier]
    pipe = getattr(world.backbone, "pipe", None)  # a diffusers pipeline's backbone (guidance.pipelines.PipelineBackbone)
    modules += [] if pipe is None else list(pipe.components.values())
    tensors = {id(t): t for m in modules if isinstance(m, torch.nn.Module) for t in (*m.parameters(), *m.buffers())}
    return sum(t.numel() * t.element_size() for t in tensors.values()) / 2**20


def timed_run(world: World, method: str, condition: str, plan: Plan, kwargs: dict) -> list[SamplingResult]:
    """A 2-step warm-up (and compilation), then the measured run.

    Args:
        world: where to sample.
        method: a METHODS name.
        condition: the class every sample is of.
        plan: steps and batch.
        kwargs: the rest of `generate`'s arguments (settings, scheduler, eta, energy).
    """
    generate(world, method, [condition], steps=2, **kwargs)
    return generate(world, method, [condition] * plan.batch, steps=plan.steps, **kwargs)


def median_step_ms(results: list[SamplingResult]) -> float:
    """Median wall time of one step, the first step left out."""
    return 1000 * statistics.median(s.seconds for r in results for s in r.steps[1:])


def face_energy(world: World):
    """The face-ID energy of the held-out reference render, as the face tab builds it."""
    reference = reference_images(world.backbone.image_size)["face"]
    return build_energy(world, make_request(task="face", methods=[], reference=reference))[0]


def speed_ups(world: World) -> dict:
    """The dtype, memory format (the loaders put convolution weights in channels_last) and attention processors in use."""
    backbone = world.backbone
    processors = {type(p).__name__ for p in backbone.unet.attn_processors.values()}
    return {
        "dtype": str(backbone.dtype).removeprefix("torch."),
        "channels_last": backbone.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last),
        "attention": sorted(processors),
    }


def try_compile(world: World, plan: Plan) -> dict:
    """torch.compile the UNet; keep it only if the plain step gets at least 5% faster.

    Args:
        world: its backbone's UNet is replaced by the compiled one where kept.
        plan: steps and batch of the plain runs compared.

    Returns:
        What was tried and measured, for the config.
    """
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

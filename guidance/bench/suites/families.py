"""`families`: does guidance act on every model family? Each gradient method's final energy against unguided sampling
from the same seeds, through the guided diffusers pipelines of tiny random SD 1.5, SDXL and SD 3 models.

    python -m guidance.bench families --json docs/figures/json/families-tiny-full.json

The pipelines are built offline from configs with random weights (guidance.bench.tiny_pipelines), 16 px, so the
figures say whether the methods move the energy on each family's arithmetic (epsilon UNets on DDIM, rectified flow
on SD 3), not how good the pictures are. The energy is the distance of an image's mean colour to a target colour.
Per seed: one sample, unguided and guided from the same noise; the figure is the mean paired difference
(guided - unguided) with its bootstrap 95% interval, and the goal is that it lies below 0. DSG runs where the step has
noise: DDIM with eta 1 on SD and SDXL (its unguided baseline too), the stochastic flow step on SD 3.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler
from torch import Tensor

from guidance.bench.common import Options, Rows, SuiteOutput, goal_over, progress
from guidance.bench.tiny_pipelines import build_tiny_families
from guidance.energy import Energy
from guidance.pipelines.loading import load_pipeline
from guidance.worlds import World

NEEDS = ()
FAMILIES = ("sd", "sdxl", "sd3")
METHODS = {  # label: (method, its options)
    "freedom": ("freedom", {"scale": 0.3, "step_rule": "normalized"}),
    "figd": ("figd", {"scale": 0.3, "step_rule": "normalized"}),
    "dps": ("dps", {"scale": 0.3, "step_rule": "normalized"}),
    "figd+dsg": ("figd+dsg", {"scale": 1.0, "dsg_rate": 0.6}),
}


@dataclass(frozen=True)
class Plan:
    seeds: int
    steps: int = 6


PLANS = {"quick": Plan(seeds=4), "full": Plan(seeds=16)}


class MeanColour(Energy):
    """Distance of each image's mean colour to a reddish target."""

    name = metric_name = "mean-colour distance"

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("target", torch.tensor([[0.8, -0.6, 0.2]]))

    def forward(self, images: Tensor) -> Tensor:
        return (images.mean((2, 3)) - self.target).norm(dim=1)


def run(world: World, opts: Options) -> SuiteOutput:
    """Each family's pipeline, unguided and under each method, from the same seeds (the interface: guidance.bench.suites;
    the loaded world is not used)."""
    plan, energy, rows, goals = opts.plan(PLANS), MeanColour(), Rows("families"), []
    with tempfile.TemporaryDirectory() as folder:
        folders = build_tiny_families(Path(folder))
        for family in FAMILIES:
            pipe = load_pipeline(str(folders[family]))
            for label, (method, options) in METHODS.items():
                progress(f"families: {family} {label}")
                dsg = label.endswith("+dsg")
                set_scheduler(pipe, family, stochastic=dsg)
                noise = {} if family == "sd3" or not dsg else {"eta": 1.0}
                pairs = [
                    (
                        final_energy(pipe, energy, seed, plan.steps, method, options, noise),
                        final_energy(pipe, energy, seed, plan.steps, None, {}, noise),
                    )
                    for seed in range(plan.seeds)
                ]
                differences = [guided - plain for guided, plain in pairs]
                rows.append(
                    {
                        "family": family,
                        "method": label,
                        "scheduler": type(pipe.scheduler).__name__,
                        "seeds": plan.seeds,
                        "energy_unguided": sum(p for _, p in pairs) / len(pairs),
                        "energy_guided": sum(g for g, _ in pairs) / len(pairs),
                        "difference": sum(differences) / len(differences),
                    }
                )
                goals.append(goal_over(f"{family} {label}: final energy - unguided", differences, 0.0, strict=True))
    config = {"steps": plan.steps, "seeds": plan.seeds, "methods": METHODS, "size_px": 16}
    return SuiteOutput(rows, goals, config=config, backbone="tiny-random")  # guidance.bench.tiny_pipelines


def set_scheduler(pipe, family: str, stochastic: bool) -> None:
    """DDIM on SD and SDXL; the flow's Euler step on SD 3, stochastic for DSG."""
    config = pipe.scheduler.config
    if family == "sd3":
        pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(config, stochastic_sampling=stochastic)
    else:
        pipe.scheduler = DDIMScheduler.from_config(config)


def final_energy(pipe, energy: Energy, seed: int, steps: int, method: str | None, options: dict, noise: dict) -> float:
    """The energy of one sample's final image from `seed`.

    Args:
        pipe: a guided pipeline.
        energy: the energy guided and measured.
        seed: the generator's seed.
        steps: sampling steps.
        method: a method name, or None for unguided sampling.
        options: the method's options.
        noise: DDIM's eta, where it is given.
    """
    out = pipe(
        "a red cat",
        num_inference_steps=steps,
        guidance_scale=1.0,
        generator=torch.Generator().manual_seed(seed),
        output_type="pt",
        guidance=method,
        energy=energy,
        **options,
        **noise,
    )
    return float(energy(out.images * 2 - 1)[0])

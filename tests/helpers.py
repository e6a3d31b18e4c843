"""Energies, classifiers and shortcuts shared by the tests of the sampling loop and the methods (tiny SD components)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from guidance.energy import Energy
from guidance.methods import Settings, StepContext, build_method
from guidance.sampling import sample

COMMITTED_WORLD = Path(__file__).resolve().parents[1] / "assets" / "world"


def world_complete(path: Path) -> bool:
    """Every file load_world needs, the guide UNet and the ControlNet included."""
    from guidance.worlds.embedded import REQUIRED

    return all((path / name).exists() for name in (*REQUIRED, "guide_unet/config.json", "controlnet/config.json"))


PROMPTS = ["a red cat", "a blue dog"]


class MeanColour(Energy):
    """Distance of each image's mean colour to a target colour: simple, smooth, differentiable."""

    def __init__(self, target=(0.8, -0.6, 0.2)):
        super().__init__()
        self.register_buffer("target", torch.tensor(target).view(1, 3))

    def forward(self, images):
        return (images.mean((2, 3)) - self.target).norm(dim=1)


class TargetImage(Energy):
    """L2 distance to a fixed image that the decoder can produce (so guidance can reach it)."""

    def __init__(self, target):
        super().__init__()
        self.register_buffer("target", target)

    def forward(self, images):
        return (images - self.target).flatten(1).norm(dim=1)


def reachable_target(backbone) -> TargetImage:
    with torch.no_grad():
        latent = torch.randn((1, *backbone.sample_shape), generator=torch.Generator().manual_seed(9))
        return TargetImage(backbone.decode(latent))


class NaNEnergy(Energy):
    def forward(self, images):
        return images.mean((1, 2, 3)) * float("nan")


def run(backbone, name, energy=None, **kw):
    settings = Settings(**{k: kw.pop(k) for k in list(kw) if hasattr(Settings, k)})
    return sample(backbone, build_method(name, settings), PROMPTS, energy=energy, **{"steps": 6, "seed": 3, **kw})


def step_context(backbone, x, energy, index=2, steps=6):
    t = torch.tensor(500)
    embeddings = backbone.embed(PROMPTS)
    null = backbone.embed([None, None])
    alphas = tuple(backbone.alpha(t + 100 * (index - i)) for i in range(steps))  # the run's grid around t
    return StepContext(
        backbone, x, t, index, steps, backbone.alpha(t), backbone.alpha(t - 100), PROMPTS, embeddings, null, None, energy, alphas
    )


class FixedClassifier:
    """Returns fixed probabilities, whatever the image."""

    class_names = ("cat", "dog", "fox", "owl")

    def __init__(self, probs):
        self.probs = torch.tensor(probs)

    def __call__(self, images):
        return self.probs.expand(images.shape[0], -1)


class CountingClassifier(FixedClassifier):
    """FixedClassifier that counts its calls."""

    def __init__(self, probs):
        super().__init__(probs)
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        return super().__call__(images)


def unet_batches(backbone) -> tuple[list[int], object]:
    batches = []
    handle = backbone.unet.register_forward_hook(lambda module, args, output: batches.append(args[0].shape[0]))
    return batches, handle


def trained_for_real(world: Path, model: str) -> bool:
    """False for a model the smoke config trained (a few steps: its outputs mean nothing)."""
    manifest = world / "manifest.json"
    entry = json.loads(manifest.read_text()).get(model, {}) if manifest.exists() else {}
    return entry.get("config_name", "full") != "smoke"


def free_port() -> int:
    """A TCP port of this machine that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_sweep(seeds: str) -> list[str]:
    """The arguments of a face-tab sweep of FreeDoM's and FIGD's scale over two values at 2 steps, on one thread."""
    return ["face", *"--methods freedom,figd --setting scale --values 0.05,0.1 --steps 2 --threads 1".split(), "--seeds", seeds]


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m torch.distributed.run` on 2 processes of one thread each with `args`; asserts that it succeeded."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()), *args]
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=240, env=os.environ | {"OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done

"""The task layer (guidance/tasks.py): presets and energies reach the sampler, on the tiny SD backbone."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from guidance.tasks import TaskRequest, preset, run_task
from guidance.worlds import World


class CentreBox:
    """A face detector that always finds the central face."""

    no_face_hint, fallback_box = "", (0.25, 0.25, 0.75, 0.75)

    def box(self, image):
        return self.fallback_box


class TinyEmbedder(nn.Module):
    input_size = 16

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.Flatten())

    def forward(self, crops):
        return self.net(crops)


def pixel_tokens(images: torch.Tensor) -> torch.Tensor:
    """Style features: every pixel is a token of its three colours, (B, H*W, 3)."""
    return images.flatten(2).transpose(1, 2)


def picture(seed: int = 0, size: tuple[int, int] = (64, 64)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def world(tiny_sd) -> World:
    embedder = TinyEmbedder().eval().requires_grad_(False)
    return World(tiny_sd, CentreBox(), embedder, pixel_tokens, classifier=None, evaluator=None)


def test_face_preset_samples_with_freedoms_noise_rule(world):
    request = TaskRequest("face", ["freedom"], steps=2, eta=0.5, settings=preset("face"), reference=picture())
    (_, result), = run_task(world, request).results
    assert result.options["noise_rule"] == "freedom"


def test_style_preset_travels_in_time_three_times_on_freedoms_window(world):
    """FreeDoM's SD style run: 3 runs per step on index 69..40 of 100, i.e. progress [0.3, 0.6) (FreeDoM step 6)."""
    request = TaskRequest("style", ["freedom"], steps=10, eta=1.0, settings=preset("style"), reference=picture())
    (_, result), = run_task(world, request).results
    assert [s.nfe for s in result.steps] == [1, 1, 1, 3, 3, 3, 1, 1, 1, 1]

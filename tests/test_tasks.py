"""The task layer (guidance/tasks.py): presets and energies reach the sampler, on the tiny SD backbone."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from guidance.errors import MethodConfigError
from guidance.methods import FreeDoM, Terms, Window
from guidance.tasks import TaskRequest, build_energy, preset, run_task
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


def test_a_face_on_a_control_map_guides_in_its_own_window_with_its_own_k(world, monkeypatch):
    """FreeDoM's ControlNet face-ID run: the face guides progress [0.6, 1.0) with k = 0.08, the edge map the preset's
    (0, 0.8) with k = 0.2; each term its own step size, no time travel (docs/methods.md, FreeDoM step 7)."""
    request = TaskRequest(
        "control", ["freedom"], steps=10, eta=1.0, settings=preset("control"), reference=picture(1),
        control_image=picture(2), annotator="none", extra="face",
    )  # fmt: skip
    energy = build_energy(world, request)[0]
    assert isinstance(energy, Terms) and [(t.window, t.scale) for t in energy.terms] == [(None, None), (Window(0.6, 1.0), 0.08)]
    scales, step_size = {}, FreeDoM.step_size
    monkeypatch.setattr(FreeDoM, "step_size", lambda self, ctx, pred, g, k: scales.setdefault(ctx.index, []).append(k) or step_size(self, ctx, pred, g, k))
    (_, result), = run_task(world, request).results
    assert scales == {**{i: [0.2] for i in range(6)}, 6: [0.2, 0.08], 7: [0.2, 0.08], 8: [0.08], 9: [0.08]}
    assert [s.nfe for s in result.steps] == [1] * 10


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"steps": 0}, "steps"), ({"samples": 1000}, "samples"), ({"seed": 2**70}, "seed"), ({"eta": 5.0}, "eta"), ({"task": "faces"}, "known")],
)
def test_requests_out_of_range_are_refused_with_the_range(overrides: dict, message: str) -> None:
    with pytest.raises(MethodConfigError, match=message):
        TaskRequest(**{"task": "classes", "methods": ["cfg"], **overrides})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"cfg_scale": 1e9}, r"cfg_scale must lie in \[0, 20\]"), ({"scale": 1e6}, "scale"), ({"gfcg_max_scale": 1e6}, "gfcg_max_scale"),
     ({"window": (0.8, 0.2)}, "guidance window"), ({"gfcg_rule": "max"}, "confusion"), ({"repeats": 0}, "repeats")],
)
def test_settings_out_of_range_are_refused_with_the_range(overrides: dict, message: str) -> None:
    with pytest.raises(MethodConfigError, match=message):
        preset("face", **overrides)

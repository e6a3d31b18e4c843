"""A run depends on its own inputs only: not on the methods that ran before it in a request, nor on earlier requests.

Every tab runs on the embedded world (tests/conftest.py: world_path) at 5 steps and 1 sample. Its face detector
is wrapped so that the box it finds moves with the image: a box kept from another image, or from another run,
changes the crop, and so the images and the ID distance.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from guidance.energy import Box, FaceDetector
from guidance.methods import GFCG, Settings, build_method
from guidance.playground.tasks import EXAMPLES, TaskRequest, build_energy, make_request, preset, run_task, spec
from guidance.sampling import SamplingResult, sample
from guidance.worlds import World

pytestmark = pytest.mark.slow  # every task run twice or more on the embedded world

# A face-tab run calls the face energy STEPS + 2 times (each step, then the final energy and metric), a control-tab run
# STEPS + 1 (its metric is edge F1): with neither a multiple of redetect_every (5), a run that inherited the run before
# it (its call count and boxes) would detect on a shifted schedule
STEPS = 5


class MovingBox:
    """A face detector whose box follows the image: the world detector's box (or its fallback) at 70 % of its size,
    shifted across the rest by the fractional part of the image's mean intensity (0-255), which any change of the
    image moves."""

    def __init__(self, inner: FaceDetector):
        self.inner, self.no_face_hint, self.fallback_box = inner, inner.no_face_hint, inner.fallback_box

    def box(self, image: Image.Image) -> Box:
        x0, y0, x1, y1 = self.inner.box(image) or self.fallback_box
        shift = 0.3 * (float(np.asarray(image, dtype=np.float64).mean()) % 1.0)
        width, height = x1 - x0, y1 - y0
        left, top = x0 + shift * width, y0 + shift * height
        return (left, top, left + 0.7 * width, top + 0.7 * height)


@pytest.fixture(scope="module")
def world(world_path: Path) -> World:
    from guidance.worlds.embedded import load_world

    loaded = load_world(world_path)
    return replace(loaded, face_detector=MovingBox(loaded.face_detector))


def example(name: str) -> Image.Image:
    return Image.open(EXAMPLES / name).convert("RGB")


def tab_request(task: str) -> TaskRequest:
    """The tab's preset, default inputs and default selection (the control tab with a face on top)."""
    tab = spec(task)
    inputs: dict = {"condition": tab.condition or None, "eta": tab.eta, "settings": preset(task)}
    if task in ("face", "style"):
        inputs["reference"] = example("face_blond.png" if task == "face" else "style_stripes.png")
    if task == "control":
        inputs |= {
            "control_image": example("control_canny.png"),
            "annotator": "none",
            "extra": "face",
            "reference": example("face_blond.png"),
        }
    if tab.runs_over == "schedulers":
        inputs |= {"methods": ["cfg"], "schedulers": list(tab.selected)}
    else:
        inputs["methods"] = list(tab.selected)
    return make_request(task=task, samples=1, steps=STEPS, **inputs)


def only(request: TaskRequest, label: str) -> TaskRequest:
    """The request with one of its runs (a method, or a scheduler on the solvers tab)."""
    if spec(request.task).runs_over == "schedulers":
        return replace(request, schedulers=[label])
    return replace(request, methods=[label])


def assert_same(a: SamplingResult, b: SamplingResult) -> None:
    assert torch.equal(a.images, b.images)
    assert a.metric == b.metric and a.final_energy == b.final_energy


TABS = ("face", "style", "control", "classes", "solvers")


@pytest.mark.parametrize("task", TABS)
def test_a_method_gives_the_same_alone_as_after_others_in_one_request(world, task):
    request = tab_request(task)
    together = run_task(world, request).results
    assert len(together) > 1
    for label, result in together:
        ((alone_label, alone),) = run_task(world, only(request, label)).results
        assert alone_label == label
        assert_same(alone, result)


@pytest.mark.parametrize("task", TABS)
def test_two_identical_requests_give_identical_results(world, task):
    first, second = run_task(world, tab_request(task)).results, run_task(world, tab_request(task)).results
    assert [label for label, _ in first] == [label for label, _ in second]
    for (_, a), (_, b) in zip(first, second):
        assert_same(a, b)


@pytest.mark.parametrize("task", ("face", "control"))
def test_the_final_figures_are_measured_at_the_face_found_in_the_final_image(world, task):
    """A new energy on the final images detects the face in them: the reported figures must be its figures."""
    request = tab_request(task)
    for _, result in run_task(world, request).results:
        fresh = build_energy(world, request)[0]
        assert result.final_energy == pytest.approx(fresh(result.images).tolist(), rel=1e-6)
        fresh.reset()
        assert result.metric == pytest.approx(fresh.metric(result.images).tolist(), rel=1e-6)


def test_gfcg_starts_every_run_without_the_reading_of_the_run_before(world, monkeypatch):
    """One method object sampled twice: its second run starts with no carried c_ref or w_t and gives a new object's images."""
    settings = Settings(cfg_scale=2.5, gfcg_one_call=True, gfcg_interval=3)
    method = build_method("cfg+gfcg", settings, world.classifier)
    first_call: list[tuple[bool, bool]] = []  # (no pending reading, no kept reading) at each run's first step
    original = GFCG.__call__

    def watched(self, ctx, x):
        if ctx.index == 0:
            first_call.append((self.state.pending is None, self.state.read_at is None))
        return original(self, ctx, x)

    monkeypatch.setattr(GFCG, "__call__", watched)
    runs = [sample(world.backbone, method, ["ginger hair"], steps=STEPS, seed=1) for _ in range(2)]
    assert method.predictor.state.read_at is not None  # the run did carry a reading between its steps
    assert first_call == [(True, True), (True, True)]
    fresh = sample(world.backbone, build_method("cfg+gfcg", settings, world.classifier), ["ginger hair"], steps=STEPS, seed=1)
    assert torch.equal(runs[1].images, fresh.images) and torch.equal(runs[0].images, fresh.images)

"""The task layer (guidance/playground/tasks): presets and energies reach the sampler, on the tiny SD backbone."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from guidance.errors import MethodConfigError
from guidance.methods import FreeDoM, Terms, Window
from guidance.playground.tasks import (
    ControlRequest,
    ReferenceRequest,
    TaskRequest,
    build_energy,
    method_settings,
    parse_values,
    preset,
    run_task,
    spec,
    sweep,
)
from guidance.recording import snapshot_indices
from guidance.worlds import World

PRESETS_RUN = Path(__file__).resolve().parents[1] / "docs" / "figures" / "json" / "presets-embedded-full.json"


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
    request = ReferenceRequest("face", ["freedom"], steps=2, eta=0.5, settings=preset("face"), reference=picture())
    ((_, result),) = run_task(world, request).results
    assert result.options["noise_rule"] == "freedom"


def test_style_preset_travels_in_time_three_times_on_freedoms_window(world):
    """FreeDoM's SD style run: 3 runs per step on index 69..40 of 100, i.e. progress [0.3, 0.6) (FreeDoM step 6)."""
    request = ReferenceRequest("style", ["freedom"], steps=10, eta=1.0, settings=preset("style"), reference=picture())
    ((_, result),) = run_task(world, request).results
    assert [s.nfe for s in result.steps] == [1, 1, 1, 3, 3, 3, 1, 1, 1, 1]


def test_a_face_on_a_control_map_guides_in_its_own_window_with_its_own_scale(world, monkeypatch):
    """FreeDoM's ControlNet face-ID run: the face guides progress [0.6, 1.0) with scale 0.08, the edge map the preset's
    (0, 0.8) with the run's scale (0.2 here); each term its own step size, no time travel (docs/methods.md, FreeDoM
    step 7)."""
    request = ControlRequest(
        "control",
        ["freedom"],
        steps=10,
        eta=1.0,
        settings=preset("control", scale=0.2),
        reference=picture(1),
        control_image=picture(2),
        annotator="none",
        extra="face",
    )
    energy = build_energy(world, request)[0]
    assert isinstance(energy, Terms) and [(t.window, t.scale) for t in energy.terms] == [(None, None), (Window(0.6, 1.0), 0.08)]
    scales, step_size = {}, FreeDoM.step_size
    monkeypatch.setattr(
        FreeDoM,
        "step_size",
        lambda self, ctx, pred, g, k: scales.setdefault(ctx.index, []).append(k) or step_size(self, ctx, pred, g, k),
    )
    ((_, result),) = run_task(world, request).results
    assert scales == {**{i: [0.2] for i in range(6)}, 6: [0.2, 0.08], 7: [0.2, 0.08], 8: [0.08], 9: [0.08]}
    assert [s.nfe for s in result.steps] == [1] * 10


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": 0}, "steps"),
        ({"samples": 1000}, "samples"),
        ({"seed": 2**70}, "seed"),
        ({"eta": 5.0}, "eta"),
        ({"task": "faces"}, "known"),
    ],
)
def test_requests_out_of_range_are_refused_with_the_range(overrides: dict, message: str) -> None:
    with pytest.raises(MethodConfigError, match=message):
        TaskRequest(**{"task": "classes", "methods": ["cfg"], **overrides})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cfg_scale": 1e9}, r"cfg_scale must lie in \[0, 20\]"),
        ({"scale": 1e6}, "scale"),
        ({"gfcg_max_scale": 1e6}, "gfcg_max_scale"),
        ({"window": (0.8, 0.2)}, "guidance window"),
        ({"gfcg_rule": "max"}, "confusion"),
        ({"repeats": 0}, "repeats"),
    ],
)
def test_settings_out_of_range_are_refused_with_the_range(overrides: dict, message: str) -> None:
    with pytest.raises(MethodConfigError, match=message):
        preset("face", **overrides)


def face_request(methods=("plain", "freedom", "figd+dsg"), **overrides) -> TaskRequest:
    fields = {"steps": 2, "eta": 0.5, "settings": preset("face"), "reference": picture()} | overrides
    return ReferenceRequest("face", list(methods), **fields)


def test_a_sweep_is_a_grid_of_methods_by_values_and_samples_what_the_setting_does_not_change_once(world):
    outcome = sweep(world, face_request(), "scale", [0.02, 0.05, 0.1])
    assert outcome.values == [0.02, 0.05, 0.1] and outcome.labels == ["plain", "freedom", "figd+dsg"]
    assert [[label for label, _ in column.results] for column in outcome.columns] == [outcome.labels] * 3
    for column, value in enumerate(outcome.values):
        assert outcome.cell("freedom", column).options["scale"] == value == outcome.cell("figd+dsg", column).options["scale"]
    plain = [outcome.cell("plain", column) for column in range(3)]
    assert plain[0] is plain[1] is plain[2]  # plain ignores k: one run serves the row
    assert len({id(outcome.cell("freedom", column)) for column in range(3)}) == 3
    assert not outcome.cancelled


def test_a_sweep_of_steps_runs_each_method_for_that_many_steps_and_reports_where_it_is(world):
    seen: list[str] = []
    outcome = sweep(world, face_request(methods=["freedom", "figd"]), "steps", [2, 3, 4], progress=lambda p: seen.append(str(p)))
    assert [[len(r.steps) for _, r in column.results] for column in outcome.columns] == [[2, 2], [3, 3], [4, 4]]
    assert seen[0] == "method 1 of 2, value 1 of 3, step 1 of 2" and seen[-1] == "method 2 of 2, value 3 of 3, step 4 of 4"
    assert len(seen) == 2 * (2 + 3 + 4)


def test_stopping_a_sweep_returns_the_finished_columns_and_the_stopped_run(world):
    ticks: list[object] = []
    outcome = sweep(
        world,
        face_request(methods=["freedom", "figd"], steps=3),
        "eta",
        [0.2, 0.5, 1.0],
        progress=ticks.append,
        should_stop=lambda: len(ticks) >= 8,
    )
    assert outcome.cancelled and len(outcome.columns) == 2
    assert [len(r.steps) for _, r in outcome.columns[0].results] == [3, 3]
    ((label, stopped),) = outcome.columns[1].results
    assert label == "freedom" and stopped.cancelled and len(stopped.steps) == 2


@pytest.mark.parametrize(
    ("setting", "values", "message"),
    [
        ("scale", [0.1, 0.2], "3 to 8 values"),
        ("scale", [0.1] * 9, "3 to 8 values"),
        ("gfcg_max_scale", [1, 2, 3], "sweeps one of"),
        ("fisher_weight", ["unit", "flat-prior", "uniform"], "fisher_weight must be one of"),
        ("eta", [0.5, 1.0, 1.5], r"eta must lie in \[0, 1\]"),
        ("dsg_rate", [0.1, 0.5, 2.0], r"dsg_rate must lie in \[0, 1\]"),
        ("steps", [2, 4, 5000], r"steps must lie in \[1, 999\]"),
        ("steps", [2, 4, 4], "repeat"),
        ("scale", ["a", "b", "c"], "takes numbers"),
    ],
)
def test_a_bad_sweep_is_refused_with_a_message(world, setting, values, message):
    with pytest.raises(MethodConfigError, match=message):
        sweep(world, face_request(), setting, values)


def test_sweep_values_come_as_a_list_or_a_range():
    assert parse_values("scale", "0.02, 0.05 ,0.1") == ["0.02", "0.05", "0.1"]
    assert parse_values("scale", "0:0.3:4") == [0.0, 0.1, 0.2, 0.3]
    assert parse_values("steps", "10:40:3") == [10, 25, 40]
    with pytest.raises(MethodConfigError, match="start:stop:count"):
        parse_values("scale", "0:1")


def test_snapshots_decode_x0_hat_at_evenly_spaced_steps_and_every_step_is_seen(world):
    assert (
        snapshot_indices(20, 6) == {0, 4, 8, 11, 15, 19}
        and snapshot_indices(3, 8) == {0, 1, 2}
        and snapshot_indices(5, 0) == set()
    )
    seen: list[tuple[str, int, bool]] = []
    request = face_request(methods=["freedom"], steps=5, snapshots=3)
    ((_, result),) = run_task(
        world, request, on_step=lambda label, record, x0: seen.append((label, record.index, x0 is not None))
    ).results
    assert seen == [("freedom", i, i in (0, 2, 4)) for i in range(5)]
    assert [index for index, _ in result.trajectory] == [0, 2, 4]
    assert all(images.shape == result.images.shape for _, images in result.trajectory)


def test_each_method_runs_at_its_own_preset_strength_times_the_request_strength(world):
    """The scale for FreeDoM and FIGD, the dsg_rate for a "+dsg" method, each from TaskSpec.guiding; None keeps `settings`."""
    strengths = spec("style").guiding
    request = ReferenceRequest(
        "style", ["freedom", "figd+dsg", "plain"], steps=2, eta=1.0, settings=preset("style"), reference=picture(), strength=2.0
    )
    assert method_settings(request, "freedom").scale == pytest.approx(2 * strengths["freedom"])
    assert method_settings(request, "figd+dsg").dsg_rate == pytest.approx(2 * strengths["figd+dsg"])
    assert method_settings(request, "plain") == preset("style")
    shared = replace(request, strength=None)
    assert method_settings(shared, "freedom") == method_settings(shared, "figd") == preset("style")
    options = dict((label, result.options) for label, result in run_task(world, request).results)
    assert options["freedom"]["scale"] == pytest.approx(2 * strengths["freedom"])
    assert options["figd+dsg"]["dsg_rate"] == pytest.approx(2 * strengths["figd+dsg"])


def test_a_strength_out_of_range_is_a_config_error():
    with pytest.raises(MethodConfigError, match="strength"):
        ReferenceRequest("face", ["freedom"], strength=-1.0)
    with pytest.raises(MethodConfigError, match="dsg_rate"):  # the product is checked as any DSG rate
        method_settings(ReferenceRequest("face", ["figd+dsg"], settings=preset("face"), strength=20.0), "figd+dsg")


def test_a_sweep_of_the_strength_multiplies_the_presets_and_one_of_k_shares_it(world):
    request = ReferenceRequest(
        "face", ["freedom", "figd"], steps=2, eta=0.5, settings=preset("face"), reference=picture(), strength=1.0
    )
    by_strength = sweep(world, request, "strength", [0.5, 1.0, 2.0])
    own = spec("face").guiding
    assert [by_strength.cell("figd", c).options["scale"] for c in range(3)] == pytest.approx(
        [own["figd"] * m for m in (0.5, 1, 2)]
    )
    by_k = sweep(world, request, "scale", [0.05, 0.1, 0.2])
    assert [by_k.cell("freedom", c).options["scale"] for c in range(3)] == [0.05, 0.1, 0.2]


def test_presets_are_what_the_rule_picks_from_the_committed_presets_run():
    """TaskSpec.guiding hold what the presets suite's rule picks from the committed run's rows (docs/methods.md,
    Presets); DPS takes FreeDoM's strength (the same step under the tabs' normalised rule)."""
    from guidance.bench.suites.presets import choose

    run = json.loads(PRESETS_RUN.read_text())
    picks = choose(run["rows"])
    assert picks == run["config"]["picks"]
    for task, methods in picks.items():
        for method, value in methods.items():
            assert spec(task).guiding[method] == value, (task, method)
            assert spec(task).guiding[method.replace("freedom", "dps")] == value


@pytest.mark.parametrize("family", ["sd", "sdxl", "sd3"])
def test_every_family_runs_a_tab_from_its_folder(tiny_families, family):
    """The app's diffusers world from a tiny folder of each family: its title in the Backbone menu, and the face tab's
    methods, DSG included (on SD 3 the flow's stochastic step; a VP multistep solver is refused with the reason)."""
    from guidance.pipelines import PipelineBackbone
    from guidance.worlds.registry import SD, WorldRegistry
    from guidance.worlds.sd15 import load_backbone

    registry = WorldRegistry(sd_model=str(tiny_families[family]), device="cpu")
    assert (
        registry.title(SD)
        == {"sd": "Stable Diffusion 1.x/2.x", "sdxl": "Stable Diffusion XL", "sd3": "Stable Diffusion 3"}[family]
    )
    backbone = load_backbone(str(tiny_families[family]), device="cpu")
    assert isinstance(backbone, PipelineBackbone) and backbone.family == family  # the guided pipeline of the folder's family
    world = World(
        backbone, CentreBox(), TinyEmbedder().eval().requires_grad_(False), pixel_tokens, classifier=None, evaluator=None
    )
    request = ReferenceRequest(
        "face", ["plain", "figd", "figd+dsg"], steps=3, eta=1.0, settings=preset("face"), reference=picture()
    )
    outcome = run_task(world, request)
    assert [label for label, _ in outcome.results] == ["plain", "figd", "figd+dsg"]
    assert all(r.images.shape == (1, 3, 16, 16) and torch.isfinite(r.images).all() for _, r in outcome.results)
    if family == "sd3":
        assert {r.scheduler for _, r in outcome.results} == {"flow-sde"}
        with pytest.raises(MethodConfigError, match="flow-matching"):
            run_task(world, replace(request, scheduler="dpmsolver++", methods=["plain"]))


def test_the_backbone_menu_names_an_uncached_hub_model_without_the_network(monkeypatch, tmp_path):
    """The page opens offline at once: the title reads model_index.json from disk only (HF_HUB_OFFLINE unset)."""
    import socket

    from huggingface_hub import constants

    from guidance.worlds.registry import SD, WorldRegistry

    def no_network(*args, **kwargs):
        raise AssertionError("the Backbone menu's title asked the network")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    registry = WorldRegistry(sd_model="nobody/not-cached", device="cpu")
    assert registry.title(SD) == "Stable Diffusion"

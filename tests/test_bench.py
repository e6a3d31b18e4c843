"""Benchmarks (guidance.bench): the metrics are right, and every suite's code path runs at tiny size.

A tiny random-weight embedded world is written to disk and loaded with `load_world`; the suites run through
the CLI with their quick plans swapped for tiny ones, so each writes its JSON and plots in seconds.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import torchrun
from tiny_sd import tiny_autoencoder, tiny_nets

from guidance.bench import cli, frechet_distance, roc_auc
from guidance.bench.common import ROW_KEYS, VERDICTS, Options, goal_over, goal_told
from guidance.bench.metrics import diversity, frechet_from_moments, per_sample_rmse
from guidance.bench.report import goals_table, verdict_counts, write_report
from guidance.bench.sd15_random import FullFrameDetector, char_tokenizer
from guidance.bench.suites import SUITES, dsg, figd, gfcg, gpu, memory, presets, preview, profile, solvers, world
from guidance.methods.figd import FISHER_WEIGHTS
from guidance.statistics import ratio_of_means
from guidance.playground.tasks import preset, guiding_setting
from guidance.worlds import World

TINY_PLANS = {
    world: world.Plan(
        per_class=1,
        face_references=1,
        face_seeds=1,
        style_references=1,
        control_maps=1,
        id_images=50,
        steps=2,
        task_steps=2,
        speed_repeats=1,
        example_seeds=1,
        condition_example_seeds=1,
        ranking_renders=40,
    ),
    figd: figd.Plan(steps=2, samples=1, seeds=2, methods=("freedom", "figd")),
    dsg: dsg.Plan(
        steps=(3,), scales=(0.3, dsg.SHARED_SCALE["face"]), rates=(dsg.PRESETS["face"].dsg_rate,), samples=2, seeds=1, rounds=1
    ),
    gfcg: gfcg.Plan(samples=10, steps=2, rounds=1, timing_steps=2),
    solvers: solvers.Plan(nfes=(3, solvers.GRID_NFE), samples=10, reference_samples=2, reference_steps=6),
    profile: profile.Plan(steps=3, rounds=1, speed_repeats=1),
    memory: memory.Plan(steps=2),
    preview: preview.Plan(methods=("freedom", "figd"), steps=3, snapshots=2, repeats=1),
    presets: world.Plan(
        per_class=0, face_references=1, face_seeds=1, style_references=1, control_maps=1, id_images=0, task_steps=2, style_first=3
    ),
}
DOCUMENT_KEYS = {"suite", "backbone", "device", "machine", "rows"}


@pytest.fixture(scope="session")
def tiny_sd_world(tiny_sd):
    """The tiny SD backbone with tiny face, style and class networks (the gpu suite's code path on a CPU)."""
    from guidance.worlds.embedded.nets import StyleFeatures

    nets = tiny_nets()
    for net in nets.values():
        net.eval().requires_grad_(False)
    return World(
        tiny_sd,
        FullFrameDetector(),
        nets["face_embedder"],
        StyleFeatures(nets["style_net"].trunk),
        nets["classifier"],
        nets["evaluator"],
    )


@pytest.fixture()
def tiny_plans(monkeypatch):
    for module, plan in TINY_PLANS.items():
        monkeypatch.setitem(module.PLANS, "quick", plan)


def test_frechet_distance_of_identical_sets_is_zero():
    x = np.random.default_rng(0).normal(size=(200, 6))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_the_gaussian_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    var1, var2 = rng.uniform(0.5, 2.0, 4), rng.uniform(0.5, 2.0, 4)
    closed = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)  # diagonal covariances
    assert frechet_from_moments(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(closed, rel=1e-9)
    a = rng.normal(size=(200_000, 4)) * np.sqrt(var1) + mu1
    b = rng.normal(size=(200_000, 4)) * np.sqrt(var2) + mu2
    assert frechet_distance(torch.from_numpy(a), b) == pytest.approx(closed, abs=0.02)


def test_frechet_distance_with_full_covariances_matches_scipy():
    from scipy.linalg import sqrtm

    rng = np.random.default_rng(2)
    m1, m2 = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    c1, c2 = m1 @ m1.T + np.eye(5), m2 @ m2.T + np.eye(5)
    expected = np.trace(c1 + c2 - 2 * sqrtm(c1 @ c2).real)
    assert frechet_from_moments(np.zeros(5), c1, np.zeros(5), c2) == pytest.approx(expected, rel=1e-7)


def test_roc_auc_and_diversity():
    assert roc_auc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert roc_auc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
    assert roc_auc([0.5, 0.5], [True, False]) == 0.5
    feats = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0], [1.0, 1.0]])
    assert diversity(feats, torch.tensor([0, 0, 1, 1])) == pytest.approx(2.5)


@pytest.mark.slow  # each suite end to end
@pytest.mark.parametrize("suite", ["world", "figd", "dsg", "gfcg", "solvers", "profile", "preview", "presets", "memory"])
def test_suite_writes_json_table_and_plots(suite, tiny_world_path, tiny_plans, tmp_path, capsys):
    out = tmp_path / "out.json"
    argv = [
        suite,
        "--quick",
        "--world",
        str(tiny_world_path),
        "--json",
        str(out),
        "--plots",
        str(tmp_path / "plots"),
        "--grid",
        str(tmp_path / "grid.png"),
    ]
    assert cli.main(argv) == 0
    data = json.loads(out.read_text())
    assert DOCUMENT_KEYS <= set(data) and data["suite"] == suite and data["backbone"] == "embedded"
    assert {"cpu", "cores", "torch_threads", "gpu"} <= set(data["machine"])
    assert data["rows"] and all({"task", "method"} <= set(row) for row in data["rows"])
    assert {k for row in data["rows"] for k in row} & set(ROW_KEYS) >= {"task", "method"}
    assert all(isinstance(g["met"], bool) and g["measured"] for g in data["goals"])
    assert all(g["verdict"] in VERDICTS and g["met"] == (g["verdict"] == "met") for g in data["goals"])
    assert list((tmp_path / "plots").glob(f"{suite}-embedded-*.png"))
    printed = capsys.readouterr().out
    assert "| task | method |" in printed and data["machine"]["cpu"] in printed
    if suite == "solvers":  # a latent world does not clip x0: every solver solves the plain ODE
        assert {(r["method"], r["x0_clip"]) for r in data["rows"]} == {(m, False) for m in solvers.SOLVERS}
        assert all(
            r["rmse_ref"] >= 0 and r["rmse_ref_n"] == 2 and r["rmse_ref_ci"][0] <= r["rmse_ref"] <= r["rmse_ref_ci"][1]
            for r in data["rows"]
        )
        error, fd = data["goals"]  # the reconstruction error decides; FD over 10 samples is indicative
        assert (
            "reconstruction error" in error["goal"]
            and error["n"] == 2
            and error["verdict"] != "indicative"
            and len(error["interval"]) == 2
        )
        assert fd["verdict"] == "indicative" and not fd["met"] and fd["n"] == 10
        assert data["config"]["timestep_spacing"] == "linspace" and set(data["config"]["reference_check_rmse"]["false"]) == {
            "clean",
            "label 0",
        }
        assert {(r["method"], r["end"]) for r in data["rows"]} >= {
            ("evodiff", "label 0"),
            ("ddim", "label 0"),
            ("dpmsolver++", "clean"),
        }
    if suite in ("world", "solvers"):
        assert (tmp_path / "grid.png").exists() and data["images"] == [str(tmp_path / "grid.png")]
    if suite == "dsg":  # the time goal reads interleaved rounds of the preset pair
        assert [r["step_ratio_to_plain"] for r in data["rows"] if "step_ratio_to_plain" in r][0] == 1.0
        timing_goal = next(g for g in data["goals"] if "interleaved" in g["goal"])
        assert (
            timing_goal["n"] == 1 and timing_goal["over"] == "rounds" and timing_goal["verdict"] == "undecided"
        )  # one round: no interval
        assert next(g for g in data["goals"] if "energy" in g["goal"])["n"] == 2  # two images, paired
    if suite == "memory":
        assert [r["method"] for r in data["rows"]] == ["unguided (cfg)", *memory.GUIDED]
        assert all(r["peak_total_mb"] >= r["peak_mem_mb"] for r in data["rows"]) and {r["task"] for r in data["rows"][1:]} == {
            "face"
        }
        assert [g["goal"] for g in data["goals"]][:2] == [
            "FreeDoM's peak with checkpointing vs without",
            "DPS's peak with checkpointing vs without",
        ]
        assert "over the unguided step's" in data["notes"][0] and any(note.startswith("FIGD:") for note in data["notes"])
    if suite == "profile":  # FreeDoM's step has a denoiser backward, FIGD's has none; both differentiate the decoder
        by = {r["method"]: r for r in data["rows"]}
        assert by["face freedom"]["denoiser_bwd"] > 0 and by["face figd"]["denoiser_bwd"] == 0
        assert by["face figd"]["decode_bwd"] > 0 and by["face figd"]["energy_bwd"] > 0 and by["plain"]["decode_bwd"] == 0
        assert by["cfg+gfcg"]["classifier_fwd"] > 0 and by["control figd"]["denoiser_fwd"] > 0
        parts = sum(by["face freedom"][p] for p in profile.PARTS if p != "other")
        assert 0.5 * by["face freedom"]["cpu_ms_per_step"] < parts <= by["face freedom"]["cpu_ms_per_step"] * 1.001  # CPU clock
        assert any("FreeDoM's step / FIGD's" in note for note in data["notes"])
        freedom, figd_ = by["face freedom"], by["face figd"]
        assert any(
            f"{profile.ceiling(freedom, figd_):.2f}x at most" in note for note in data["notes"]
        )  # a figure, not a timing claim
        assert by["4 x 25 steps unguided"]["seconds"] > 0 and by["app face tab, 3 methods x 20 steps"]["seconds"] > 0
        assert [g["target"] for g in data["goals"]] == ["<= 1.5 s", "<= 5 s"] and all(
            g["over"] == "repeats" for g in data["goals"]
        )
    if suite == "presets":  # every tab's guided methods at every strength of their grid, and a pick per (tab, method)
        tried = {(r["task"], r["method"], r["value"]) for r in data["rows"] if "fisher_weight" not in r}
        for task, grid in presets.GRIDS.items():
            assert all((task, m, v) in tried for m in world.EXAMPLE_METHODS for v in grid[guiding_setting(m)])
        assert set(data["config"]["picks"]) == set(presets.ROWS) and data["notes"][0].startswith("Picks")
        profiles = {(r["task"], r["fisher_weight"]) for r in data["rows"] if "fisher_weight" in r}
        assert profiles == {(task, w) for task in presets.ROWS for w in FISHER_WEIGHTS if w != preset(task).fisher_weight}
    if suite == "world":  # the rows and keys that the world suite's goals are read from
        by = {(r["task"], r["method"]): r for r in data["rows"] if r["bar"] != "examples"}
        assert {"accuracy", "fd", "fd_floor", "saturation_ratio"} <= set(by[("class", "plain")]) & set(by[("class", "atg")])
        assert by[("class", "plain")]["nfe"] == by[("class", "atg")]["nfe"] and by[("class", "cfg")]["accuracy"] >= 0
        assert {"attribute_agreement", "face_rate"} <= set(by[("face", "freedom")]) & set(by[("face", "figd")]) & set(
            by[("face", "plain")]
        )
        assert by[("style", "plain")]["style_ratio"] == 1 and "style_ratio" in by[("style", "figd")]
        assert {"edge_f1", "face_rate"} <= set(by[("control", "figd")]) and by[("class", "speed")]["batch_seconds"] > 0
        assert set(by[("style", "ranking")]["auc"]) == {"stripes", "checker", "dots"}
        examples = {(r["task"], r["method"]) for r in data["rows"] if r["bar"] == "examples"}
        assert examples == {(t, m) for t in world.EXAMPLE_TASKS for m in ("plain", *world.EXAMPLE_METHODS)}
        assert any("pattern agreement" in g["goal"] for g in data["goals"]) and any(
            "FreeDoM's" in g["goal"] for g in data["goals"]
        )
    (tmp_path / "notes.md").write_text("FIGD is faster here.")
    write_report([out], tmp_path / "benchmarks.md", tmp_path / "figures", tmp_path / "notes.md")
    written = (tmp_path / "benchmarks.md").read_text()
    assert f"## `{suite}`" in written and "## Reading the figures" in written and "FIGD is faster here." in written
    assert f"--notes {tmp_path / 'notes.md'}" in written
    assert "| goal | target | measured | 95% interval | n | verdict |" in written or not data["goals"]


def test_a_told_goal_reports_its_verdict_and_n():
    old = goal_told("speed-up", ">= 2x", 2.5, True, "x")
    assert old["interval"] is None and old["met"] and old["verdict"] == "met" and old["n"] is None and old["measured"] == "2.5x"
    told = goal_told("accuracy", ">= 0.9", 0.8, False, n=120)
    assert told["verdict"] == "not met" and told["n"] == 120 and told["over"] == "samples"
    assert goal_told("fd", "<= 3", 2.0, True, n=10, indicative=True)["verdict"] == "indicative"


def test_goal_over_samples_is_undecided_while_its_interval_spans_the_bar_and_writes_its_target_from_the_bar():
    rng = np.random.default_rng(3)
    wide, narrow = rng.normal(1.02, 0.3, 10), rng.normal(1.2, 0.05, 200)
    assert goal_over("g", wide, 1.0, higher_is_better=True)["verdict"] == "undecided"
    decided = goal_over("g", narrow, 1.0, higher_is_better=True)
    assert decided["verdict"] == "met" and decided["met"] and decided["n"] == 200 and decided["interval"][0] > 1.0
    assert float(decided["measured"]) == pytest.approx(narrow.mean(), rel=1e-3) and decided["target"] == ">= 1"
    assert goal_over("g", narrow, 1.0)["verdict"] == "not met"
    pairs = np.stack([narrow, narrow / 2], axis=1)  # the first twice the second, sample by sample
    ratio = goal_over("g", pairs, 1.5, "x", statistic=ratio_of_means, over="seeds")
    assert ratio["measured"] == "2x" and ratio["interval"] == pytest.approx([2.0, 2.0]) and ratio["verdict"] == "not met"
    assert (
        ratio["target"] == "<= 1.5x"
        and goal_over("g", narrow, 0.0, "%", strict=True, context="plain: 3")["target"] == "< 0% (plain: 3)"
    )
    assert goal_over("g", [0.5], 1.0)["verdict"] == "undecided"  # one sample: no interval
    assert goal_over("g", narrow, 1.0, indicative=True)["verdict"] == "indicative"


def test_goals_table_shows_interval_n_and_verdict_and_reads_old_documents():
    new = goal_over("g", [1.1, 1.2, 1.3], 1.0, "x", higher_is_better=True, over="rounds")
    old = {"goal": "old", "target": "<= 5 s", "measured": "4 s", "met": True}
    lines = goals_table([new, old]).splitlines()
    assert lines[0] == "| goal | target | measured | 95% interval | n | verdict |"
    low, high = new["interval"]
    assert (
        lines[2] == f"| g | >= 1x | 1.2x | [{low:.4g}, {high:.4g}]x | 3 rounds | met |"
        and lines[3] == "| old | <= 5 s | 4 s |  |  | met |"
    )
    assert verdict_counts([new, old, goal_over("u", [0.5], 1.0)]) == "2 met, 1 undecided (of 3)"


@pytest.mark.slow
def test_solvers_reference_ends_where_each_solver_ends(tiny_world_path):
    """DPM-Solver++ to label 0 lands where DDIM and EVODiff end; its denoised estimate there is the clean end, which
    DPM-Solver++ and UniPC approach as their steps grow."""
    from guidance.worlds.embedded import load_world

    world, plan = load_world(tiny_world_path), replace(TINY_PLANS[solvers], reference_samples=4, batch=2)
    config, conditions = world.backbone.scheduler_config, list(world.backbone.class_names[:4])
    before = dict(config)
    with solvers.scheduler_config(world, timestep_spacing="linspace"):
        ends = solvers.reference(world, conditions, 40, plan)
        near = {solver: solvers.solve(world, conditions, 40, solver, plan) for solver in ("dpmsolver++", "evodiff")}
    assert config == before  # restored, keys it lacked (final_sigmas_type) removed again
    distance = lambda a, b: sum(per_sample_rmse(a, b))  # noqa: E731
    assert distance(near["dpmsolver++"], ends["clean"]) < distance(near["dpmsolver++"], ends["label 0"])
    assert distance(near["evodiff"], ends["label 0"]) < distance(near["evodiff"], ends["clean"])
    assert [solvers.end_level(s, config) for s in solvers.SOLVERS] == ["label 0", "clean", "clean", "label 0"]


@pytest.mark.slow
def test_sd_plans_and_timing_rows_on_tiny_sd(tiny_sd_world, monkeypatch):
    monkeypatch.setitem(figd.PLANS, "quick-sd", figd.Plan(steps=2, samples=1, seeds=1, methods=("freedom", "figd")))
    output = figd.run(tiny_sd_world, Options(backbone="sd15-random", quick=True))
    assert len(output.rows) == len(figd.TASKS) * 2 and len(output.goals) == len(figd.TASKS) * 3
    assert all(r["seconds_per_image"] > 0 and "fd" not in r for r in output.rows)


@pytest.mark.slow
def test_gpu_suite_path_runs_on_a_cpu_at_tiny_size(tiny_sd_world):
    """With a guide model (the UNet itself, as on sd15-random) and a tiny decoder, as the gpu suite's world has."""

    backbone = copy.copy(tiny_sd_world.backbone)
    backbone.guide_unet, backbone.has_guide_model, backbone.tiny_decoder = backbone.unet, True, tiny_autoencoder().eval()
    output = gpu.measure(replace(tiny_sd_world, backbone=backbone), gpu.Plan(steps=3), compile_unet=False)
    assert [r["method"] for r in output.rows] == list(gpu.METHODS)
    assert output.rows[0]["ratio_to_plain"] == 1.0 and all(
        r["ms_per_step"] > 0 and r["seconds_per_image"] > 0 for r in output.rows
    )
    assert all(r["peak_total_mb"] >= output.config["weights_mb"] > 0 for r in output.rows)
    assert len(output.goals) == 7 and output.config["channels_last"] and output.config["attention"]


def test_gpu_without_cuda_exits_with_a_clear_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cpu", "cuda"):
        assert cli.main(["gpu", "--device", device, "--json", str(tmp_path / "gpu.json")]) == 2
        assert "needs a CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "gpu.json").exists()


def test_char_tokenizer_pads_to_clip_length():
    ids = char_tokenizer()(["a cat"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    assert ids.shape == (1, 77) and ids[0, 0] == 0


def test_every_suite_is_registered():
    assert set(SUITES) == {
        "world",
        "figd",
        "dsg",
        "gfcg",
        "solvers",
        "gpu",
        "profile",
        "preview",
        "presets",
        "memory",
        "load",
        "families",
    }


@pytest.mark.slow
def test_families_suite_compares_each_method_with_unguided_on_every_family(monkeypatch):
    from guidance.bench.suites import families

    monkeypatch.setitem(families.PLANS, "quick", families.Plan(seeds=2, steps=3))
    output = families.run(None, Options(quick=True))
    assert {(r["family"], r["method"]) for r in output.rows} == {(f, m) for f in families.FAMILIES for m in families.METHODS}
    assert all(g["n"] == 2 and g["interval"] is not None for g in output.goals)


def test_profile_suite_runs_on_the_sd_path_without_the_embedded_worlds_speed_rows(tiny_sd_world, monkeypatch):
    runs = ("plain", "face freedom", "face figd", "face figd tiny decoder", "control figd")
    monkeypatch.setitem(profile.PLANS, "quick-sd", profile.Plan(steps=3, rounds=1, runs=runs))
    output = profile.run(tiny_sd_world, Options(backbone="sd15-random", quick=True))
    assert [r["method"] for r in output.rows] == ["plain", "face freedom", "face figd", "control figd"]
    assert not output.goals and any("face figd tiny decoder" in note for note in output.notes)  # no tiny decoder here
    assert all(r["denoiser_fwd"] > 0 and r["ms_per_step"] > 0 for r in output.rows)


@pytest.mark.slow
def test_profile_figd_plan_times_freedom_against_figd_with_both_decoders_in_rounds(tiny_sd_world, monkeypatch):

    backbone = copy.copy(tiny_sd_world.backbone)
    backbone.tiny_decoder = tiny_autoencoder().eval()
    monkeypatch.setitem(profile.PLANS, "figd-sd", replace(profile.PLANS["figd-sd"], steps=3, rounds=2))
    output = profile.run(replace(tiny_sd_world, backbone=backbone), Options(backbone="sd15-random", plan_name="figd-sd"))
    assert [r["method"] for r in output.rows] == [label for pair in profile.FACE_PAIRS.values() for label in pair]
    for row in output.rows:  # 2 rounds of steps 2..3
        low, high = row["ms_per_step_iqr"]
        assert row["timed_steps"] == 4 and low <= row["ms_per_step_median"] <= high and row["cpu_ms_per_step_median"] > 0
    assert len(output.goals) == 4 and all(g["n"] == 2 and g["over"] == "rounds" and g["target"] == ">= 2x" for g in output.goals)
    assert {g["goal"].split(":")[0] for g in output.goals} == {"face, full VAE", "face, tiny decoder"}


def test_an_unknown_plan_is_refused_before_the_world_loads(tmp_path, capsys):
    assert cli.main(["profile", "--plan", "nope", "--world", str(tmp_path / "absent"), "--json", str(tmp_path / "p.json")]) == 2
    assert "no plan 'nope'" in capsys.readouterr().err and not (tmp_path / "p.json").exists()


@pytest.mark.slow
def test_tiny_decoder_is_distilled_saved_in_fp16_and_loaded_with_the_world(tiny_world_path, tmp_path):
    import shutil

    from safetensors.torch import load_file

    from guidance.worlds.embedded import load_world
    from guidance.worlds.embedded.build.tiny_decoder import distil

    folder = tmp_path / "world"
    shutil.copytree(tiny_world_path, folder)
    assert load_world(folder).backbone.tiny_decoder is None
    entry = distil(folder, seconds=0.5, renders=16, heldout=16)
    assert entry["iterations"] >= 1 and entry["params"] > 0
    assert json.loads((folder / "manifest.json").read_text())["tiny_decoder"] == entry
    weights = load_file(str(folder / "tiny_decoder" / "diffusion_pytorch_model.safetensors"))
    assert {w.dtype for w in weights.values()} == {torch.float16}
    backbone = load_world(folder).backbone
    latents = torch.randn((2, *backbone.sample_shape))
    with torch.no_grad():
        assert backbone.guidance_decode(latents, tiny=True).shape == backbone.decode(latents).shape == (2, 3, 64, 64)


TIMES = {"seconds_per_image", "cpu_seconds_per_image", "ms_per_step", "peak_mem_mb"}  # a row's timings
RUN = {"machine", "created", "wall_seconds", "command", "processes", "images"}  # how a run went, and where it wrote


@pytest.mark.slow
def test_solvers_from_two_processes_give_the_json_and_grid_of_one(tiny_world_path, tmp_path, monkeypatch):
    """torchrun on gloo: the batches are shared, rank 0 writes; the figures equal one process's, timings aside."""
    from pathlib import Path

    import tiny_suite

    for module, plan in tiny_suite.PLANS.items():
        monkeypatch.setitem(module.PLANS, "quick", plan)
    common = ["solvers", "--quick", "--world", str(tiny_world_path), "--threads", "1"]
    threads = torch.get_num_threads()
    try:
        assert cli.main([*common, "--json", str(tmp_path / "one.json"), "--grid", str(tmp_path / "one.png")]) == 0
    finally:
        torch.set_num_threads(threads)
    script = Path(tiny_suite.__file__)
    done = torchrun(
        str(script), *common, "--json", str(tmp_path / "two.json"), "--grid", str(tmp_path / "two.png"), cwd=script.parents[1]
    )
    one, two = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("one", "two"))
    assert (one["processes"], two["processes"]) == (1, 2) and done.stdout.count("json: ") == 1  # rank 0 alone reports

    def without(data: dict) -> dict:
        return {k: v for k, v in data.items() if k not in RUN} | {
            "rows": [{k: v for k, v in r.items() if k not in TIMES} for r in data["rows"]]
        }

    assert without(one) == without(two)
    assert (tmp_path / "one.png").read_bytes() == (tmp_path / "two.png").read_bytes()


@pytest.mark.slow  # an app server, a crowd, a soak
def test_load_suite_serves_the_app_to_a_small_crowd_a_soak_and_stops(tmp_path, monkeypatch):
    """The load suite end to end at a tiny size, on the committed world (the face tab needs its detector)."""
    from guidance.bench.suites import load

    monkeypatch.setitem(
        load.PLANS,
        "quick",
        load.Plan(clients=4, queue=1, crowd_steps=2, soak=6, soak_steps=2, stops=1, stopped=0.3, faulty=0.3, bad=0.2),
    )
    out = tmp_path / "load.json"
    assert cli.main(["load", "--quick", "--json", str(out), "--plots", str(tmp_path / "plots")]) == 0
    data = json.loads(out.read_text())
    by = {(r["task"], r["method"]): r for r in data["rows"]}
    outcomes = by[("crowd", "outcomes")]
    assert outcomes["error"] == 0 and outcomes["refused by Gradio"] == 0 and outcomes["finished"] + outcomes["refused"] == 4
    assert (
        outcomes["finished"] >= 1
        and outcomes["refused"] >= 1
        and by[("crowd", "seconds to a refusal")]["n"] == outcomes["refused"]
    )
    assert (
        sum(by[("soak", "runs by kind")][kind] for kind in ("ran", "stopped", "fault", "bad input")) == 6
        and by[("soak", "after run 6")]["rss_mb"] > 0
    )
    assert by[("stop", "steps after the step shown at Stop")]["n"] == 1
    assert {g["goal"].split(":")[0] for g in data["goals"]} == {"crowd", "soak", "stop"}
    assert list((tmp_path / "plots").glob("load-embedded-quick-soak.png"))


@pytest.mark.slow
def test_the_world_suites_examples_plan_runs_only_the_examples(tiny_world_path, tmp_path, monkeypatch):
    """`--plan examples`: every energy tab's examples at its own seeds, and only their goals."""
    tiny = replace(world.PLANS["examples"], task_steps=2, example_seeds=1, condition_example_seeds=2)
    monkeypatch.setitem(world.PLANS, "examples", tiny)
    monkeypatch.setattr(world, "RUN_SAMPLES", 1)  # two runs of one seed each per style and control example
    out = tmp_path / "out.json"
    argv = ["world", "--plan", "examples", "--world", str(tiny_world_path), "--json", str(out), "--plots", str(tmp_path)]
    assert cli.main(argv) == 0 and (tmp_path / "world-embedded-examples-examples.png").exists()
    data = json.loads(out.read_text())
    assert {row["bar"] for row in data["rows"]} == {"examples"} and data["plan"] == "examples"
    samples = {row["task"]: row["n"] for row in data["rows"] if row["method"] == "plain"}
    assert samples == {"face": 3, "style": 6, "control": 6}  # 3 examples each, 1 and 2 seeds
    assert data["goals"] and all(g["goal"].split(" examples")[0] in ("face", "style", "control") for g in data["goals"])


@pytest.mark.slow
def test_the_world_suites_control_examples_plan_runs_its_tab_and_methods_alone(tiny_world_path, tmp_path, monkeypatch):
    tiny = replace(world.PLANS["examples-control"], task_steps=2, condition_example_seeds=2)
    monkeypatch.setitem(world.PLANS, "examples-control", tiny)
    out = tmp_path / "out.json"
    argv = ["world", "--plan", "examples-control", "--world", str(tiny_world_path), "--json", str(out), "--plots", str(tmp_path)]
    assert cli.main(argv) == 0 and (tmp_path / "world-embedded-examples-control-examples.png").exists()
    data = json.loads(out.read_text())
    assert [(row["task"], row["method"], row["n"]) for row in data["rows"]] == [
        ("control", m, 6) for m in ("plain", "freedom", "figd")
    ]
    assert [g["goal"] for g in data["goals"]] == ["control examples, figd: metric gain over plain vs FreeDoM's"]

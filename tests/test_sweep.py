"""Sweeps at scale (guidance.sweep): bounds, resuming, and the same sweep from 1 and from 2 processes.

The runs use the tiny random-weight embedded world of tests/test_bench.py at 2 steps, so that each takes seconds;
the 2-process run is `python -m torch.distributed.run --nproc_per_node 2 -m guidance.sweep` on gloo.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import tiny_sweep, torchrun
from PIL import Image

from guidance.errors import MethodConfigError
from guidance.playground.tasks import sweep
from guidance.playground.views import HEADER_HEIGHT, LABEL_WIDTH, sweep_series
from guidance.sweep import Cell, SweepInputs, base_request, cli, comparable, plan_sweep, run_cell, run_sweep, sweep_command
from guidance.worlds.base import realism

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_world(tiny_world_path):
    from guidance.worlds.embedded import load_world

    return load_world(tiny_world_path)


def tiny_plan(world_path: Path, seeds: range = range(2), steps: int = 2, values: str = "0.05,0.1"):
    request, recorded = base_request(SweepInputs("face", world=str(world_path), steps=steps))
    return plan_sweep(request, "scale", values, ("freedom", "figd"), seeds, inputs=recorded)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--setting", "scale", "--values", "0.1,200"], "scale must lie in"),
        (["--seeds", "3:3"], "stop must be above start"),
        (["--methods", "freedom,cfg"], "the face task offers"),
        (
            ["--methods", "freedom", "--setting", "scale", "--values", "0.1:0.2:10", "--seeds", "0:500"],
            "5000 cells; at most 4096",
        ),
        (
            ["--methods", "freedom", "--setting", "scale", "--values", "0.1:0.2:10", "--seeds", "0:50", "--max-cells", "100"],
            "at most 100",
        ),
        (["--setting", "gfcg_max_scale"], "sweeps one of"),
        (["--set", "window=0.5,0.1"], "guidance window"),
        (["--strength", "50"], "strength must lie in"),
        (
            ["--methods", "freedom,figd+dsg", "--setting", "strength", "--values", "5,19"],
            "dsg_rate must lie in",
        ),  # 19 x its preset rate
        (["--reference", "no/such/face.png"], "no such file"),
    ],
)
def test_a_bad_value_is_a_one_line_error_before_anything_runs(argv, message, tmp_path, capsys):
    assert cli.main(["face", *argv, "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("guidance.sweep: ") and message in error and "\n" not in error
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_sweep_records_every_cell_keeps_them_when_stopped_and_starts_over_on_force(tiny_world, tiny_world_path, tmp_path):
    plan = tiny_plan(tiny_world_path)
    whole = run_sweep(tiny_world, plan, tmp_path / "whole")
    assert [(c["method"], c["value"], c["seed"]) for c in whole["cells"]] == [
        (m, v, s) for s in (0, 1) for m in ("freedom", "figd") for v in (0.05, 0.1)
    ]
    assert all(isinstance(c["realism"], float) and isinstance(c["metric"], float) and c["nfe"] == 2 for c in whole["cells"])
    assert whole["summary"]["figd"]["n"] == [2, 2]
    assert (whole["run"]["processes"], whole["run"]["cells_run"], whole["run"]["cells_resumed"]) == (1, 8, 0)
    assert Image.open(tmp_path / "whole" / "grid.png").size == (LABEL_WIDTH + 2 * 96, HEADER_HEIGHT + 2 * 2 * 96)
    assert json.loads((tmp_path / "whole" / "sweep.json").read_text()) == whole

    def stop_after_three(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(tiny_world, plan, tmp_path / "stopped", progress=stop_after_three)
    assert not (tmp_path / "stopped" / "sweep.json").exists()
    started = []
    resumed = run_sweep(tiny_world, plan, tmp_path / "stopped", on_start=lambda mine, kept: started.append((mine, kept)))
    assert started == [(5, 3)] and resumed["run"]["cells_run"] == 5
    assert comparable(resumed) == comparable(whole)  # the kept cells are the ones a whole run makes

    more = run_sweep(tiny_world, tiny_plan(tiny_world_path, range(3)), tmp_path / "stopped")
    assert (more["run"]["cells_run"], more["run"]["cells_resumed"]) == (4, 8) and len(more["cells"]) == 12
    again = run_sweep(tiny_world, plan, tmp_path / "stopped", force=True)
    assert (again["run"]["cells_run"], again["run"]["cells_resumed"]) == (8, 0)
    with pytest.raises(MethodConfigError, match="holds a sweep with steps 2, not 3"):
        run_sweep(tiny_world, tiny_plan(tiny_world_path, steps=3), tmp_path / "stopped")


def test_a_cell_records_the_realism_the_world_judges_of_its_sample(tiny_world, tiny_world_path):
    record, image = run_cell(tiny_world, tiny_plan(tiny_world_path), Cell("figd", 0.1, 5))
    assert record["realism"] == realism(tiny_world, image)[0]
    assert record["seed"] == 5 and record["metric"] > 0 and image.shape == (1, 3, 64, 64)


@pytest.mark.slow
def test_the_apps_sweep_over_seeds_holds_the_cells_of_the_sweep_command(tiny_world, tiny_world_path, tmp_path):
    """guidance.playground.tasks.sweep with 2 seeds per value (one sample each) gives, per cell, the samples of those seeds."""
    plan = tiny_plan(tiny_world_path, values="0.05,0.1,0.2")
    cells = {(c["method"], c["value"], c["seed"]): c["metric"] for c in run_sweep(tiny_world, plan, tmp_path / "cells")["cells"]}
    seen = []
    outcome = sweep(
        tiny_world,
        replace(plan.request, methods=list(plan.methods)),
        "scale",
        list(plan.values),
        progress=lambda where: seen.append(str(where)),
        seeds=2,
    )
    for column, value in enumerate(plan.values):
        for method in plan.methods:
            assert outcome.cell(method, column).metric == [cells[method, value, 0], cells[method, value, 1]]
            assert outcome.cell(method, column).images.shape[0] == 2
    assert "method 2 of 2, value 3 of 3, seed 2 of 2, step 2 of 2" in seen
    series = sweep_series(outcome)["figd"]
    assert all(low < mean < high for mean, (low, high) in zip(series["metric"], series["metric_ci95"]))
    with pytest.raises(MethodConfigError, match="seed must lie in"):
        sweep(tiny_world, replace(plan.request, seed=2**32 - 1), "scale", list(plan.values), seeds=2)


def test_the_command_a_sweep_names_gives_back_its_inputs():
    inputs = SweepInputs(
        "control",
        world="sd/folder",
        controlnet_model="lllyasviel/sd-controlnet-canny",
        steps=12,
        eta=0.5,
        control_map="map.png",
        annotator="none",
        controlnet=False,
        extra="face",
        reference="face.png",
        strength=None,
        settings=(("window", "0,0.8"), ("repeats", "2")),
    )
    line = sweep_command(inputs, "dsg_rate", "0.05:0.2:4", ("freedom", "figd+dsg"), range(8, 24), "runs/x y")
    assert line.startswith("python -m guidance.sweep control ")
    args = cli.parser().parse_args(shlex.split(line)[3:])
    assert cli.inputs_from(args) == inputs
    assert (args.methods, args.setting, args.values, args.seeds, args.out) == (
        "freedom,figd+dsg",
        "dsg_rate",
        "0.05:0.2:4",
        "8:24",
        Path("runs/x y"),
    )


@pytest.mark.slow
def test_two_processes_give_the_same_sweep_and_figures_as_one(tiny_world_path, tmp_path):
    argv = [*tiny_sweep("0:2"), "--world", str(tiny_world_path)]
    threads = torch.get_num_threads()
    try:
        assert cli.main([*argv, "--out", str(tmp_path / "one")]) == 0
    finally:
        torch.set_num_threads(threads)
    done = torchrun("-m", "guidance.sweep", *argv, "--out", str(tmp_path / "two"), cwd=ROOT)
    one, two = (json.loads((tmp_path / name / "sweep.json").read_text()) for name in ("one", "two"))
    assert (one["run"]["processes"], two["run"]["processes"]) == (1, 2)
    assert comparable(one) == comparable(two)
    for figure in ("grid.png", "curves.png"):
        assert (tmp_path / "one" / figure).read_bytes() == (tmp_path / "two" / figure).read_bytes()
    assert "on 2 process(es)" in done.stdout

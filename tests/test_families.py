"""Every model family from a tiny folder through the tools: the sweep command on SD 1.5, SDXL and SD 3."""

from __future__ import annotations

import json

import pytest

from guidance.sweep import cli


@pytest.mark.slow
@pytest.mark.parametrize("family", ["sd", "sdxl", "sd3"])
def test_the_sweep_command_runs_each_family_from_a_folder(tiny_families, family, tmp_path):
    argv = [
        "control",
        "--methods",
        "plain,figd",
        "--setting",
        "scale",
        "--values",
        "0.1,0.3",
        "--seeds",
        "0:2",
        "--steps",
        "3",
        "--no-controlnet",
        "--world",
        str(tiny_families[family]),
        "--out",
        str(tmp_path / "out"),
    ]
    assert cli.main(argv) == 0
    report = json.loads((tmp_path / "out" / "sweep.json").read_text())
    cells = [json.loads(line) for line in (tmp_path / "out" / "cells.jsonl").read_text().splitlines()]
    assert len(cells) == 8 and report["config"]["inputs"]["world"] == str(tiny_families[family])

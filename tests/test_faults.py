"""Faults: damaged world files, a sweep killed while it writes, an exception inside an energy during a run."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import COMMITTED_WORLD, tiny_sweep, world_complete
from gradio_client import Client
from gradio_client.exceptions import AppError

from guidance.errors import WeightsDamagedError, WeightsUnavailableError
from guidance.sweep import comparable
from guidance.worlds.embedded import load_world

ROOT = Path(__file__).resolve().parents[1]
REBUILD = "python -m guidance.worlds.embedded.build.train all"


@pytest.fixture(scope="module")
def world_copy(tmp_path_factory) -> Path:
    """A copy of the committed world, which each test damages and mends."""
    if not world_complete(COMMITTED_WORLD):
        pytest.skip("assets/world is not complete here")
    copy = tmp_path_factory.mktemp("world") / "world"
    shutil.copytree(COMMITTED_WORLD, copy)
    return copy


def cut_in_half(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def scramble_header(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[8:40] = b"\x93\x00garbled weights, not JSON\xff\xfe\x01\x02"
    file.write_bytes(bytes(data))


def append_bytes(file: Path) -> None:
    file.write_bytes(file.read_bytes() + b"\x00" * 100)


@pytest.mark.parametrize(
    "name",
    ["unet/diffusion_pytorch_model.safetensors", "face_embedder.safetensors", "controlnet/diffusion_pytorch_model.safetensors"],
)
@pytest.mark.parametrize(
    "damage, message",
    [
        (Path.unlink, "is missing|not available"),
        (cut_in_half, "is cut short"),
        (scramble_header, "is corrupted: its header"),
        (append_bytes, "is corrupted: .* bytes where its header says"),
    ],
)
def test_a_missing_cut_or_corrupted_weight_file_is_named_with_the_command_that_rebuilds_it(
    world_copy: Path, name: str, damage, message: str
) -> None:
    original = (COMMITTED_WORLD / name).read_bytes()
    damage(world_copy / name)
    started = time.monotonic()
    try:
        with pytest.raises(WeightsUnavailableError) as raised:
            load_world(world_copy)
    finally:
        (world_copy / name).write_bytes(original)
    text = str(raised.value)
    assert name in text and REBUILD in text and str(world_copy) in text
    assert raised.type is WeightsDamagedError or damage is Path.unlink
    assert re.search(message, text)
    assert time.monotonic() - started < 5  # found from the headers, before any model loads


def test_the_mended_copy_loads(world_copy: Path) -> None:
    assert load_world(world_copy).backbone is not None


def lines(file: Path) -> list[str]:
    return file.read_text().splitlines() if file.exists() else []


@pytest.mark.slow  # three sweep processes
def test_a_sweep_killed_while_it_writes_resumes_with_the_same_command(tiny_world_path: Path, tmp_path: Path) -> None:
    """SIGKILL after some cells; the kill cannot be timed inside a write, so the last line is then cut in half as a
    kill inside write() leaves it. The same command keeps every whole line, redoes the cut cell and the rest, and
    gives the cells of a run that was never killed."""
    command = [sys.executable, "-m", "guidance.sweep", *tiny_sweep("0:4"), "--world", str(tiny_world_path)]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    folder = tmp_path / "killed"
    child = subprocess.Popen(
        [*command, "--out", str(folder)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    cells = folder / "cells-rank0.jsonl"
    deadline = time.monotonic() + 180
    while len(lines(cells)) < 4:
        assert child.poll() is None and time.monotonic() < deadline, "the sweep ended before it could be killed"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    written = lines(cells)
    assert not (folder / "sweep.json").exists() and len(written) < 16
    with cells.open("rb+") as file:  # the last line, half-written
        file.truncate(cells.stat().st_size - len(written[-1]) // 2 - 1)
    kept = len(written) - 1
    done = subprocess.run([*command, "--out", str(folder)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{kept} of 16 cells were finished" in done.stdout + done.stderr
    resumed = json.loads((folder / "sweep.json").read_text())
    assert (resumed["run"]["cells_resumed"], resumed["run"]["cells_run"]) == (kept, 16 - kept)
    whole = subprocess.run(
        [*command, "--out", str(tmp_path / "whole")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert comparable(resumed) == comparable(json.loads((tmp_path / "whole" / "sweep.json").read_text()))


@pytest.mark.slow
def test_an_exception_inside_an_energy_is_a_readable_error_and_the_next_run_works(app_url: str, monkeypatch) -> None:
    from conditions.style import StyleEnergy

    def broken(self, images):
        raise RuntimeError("the style energy broke")

    visitor, other = Client(app_url, verbose=False), Client(app_url, verbose=False)
    with monkeypatch.context() as patch:
        patch.setattr(StyleEnergy, "forward", broken)
        with pytest.raises(AppError, match=r"the run failed \(RuntimeError: the style energy broke\)\. The app is fine"):
            visitor.predict(methods=["figd"], steps=2, api_name="/style")
    for client in (visitor, other):
        summary = client.predict(methods=["figd"], steps=2, api_name="/style")[1]
        assert summary["figd"]["steps"] == 2 and not summary["figd"]["cancelled"]

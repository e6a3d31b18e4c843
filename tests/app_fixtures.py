"""Fixtures of the app tests: an embedded world on disk, and the app served from this process on a free port.

Import the fixtures into a test module (`from app_fixtures import app_url, world_path`). The world is
$GUIDANCE_WORLD when set, else the committed assets/world when complete, else a smoke world trained by
`python -m guidance.worlds.embedded.build.train all --config smoke` in a temporary folder.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMITTED_WORLD = ROOT / "assets" / "world"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def world_complete(path: Path) -> bool:
    """Every file load_world needs, the guide UNet and the ControlNet included."""
    from guidance.worlds.embedded import REQUIRED

    return all((path / name).exists() for name in (*REQUIRED, "guide_unet/config.json", "controlnet/config.json"))


def trained_for_real(world: Path, model: str) -> bool:
    """False for a model the smoke config trained (a few steps: its outputs mean nothing)."""
    manifest = world / "manifest.json"
    entry = json.loads(manifest.read_text()).get(model, {}) if manifest.exists() else {}
    return entry.get("config_name", "full") != "smoke"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def world_path(tmp_path_factory) -> Path:
    if os.environ.get("GUIDANCE_WORLD"):
        return Path(os.environ["GUIDANCE_WORLD"])
    if world_complete(COMMITTED_WORLD):
        return COMMITTED_WORLD
    folder = tmp_path_factory.mktemp("smoke_world")
    command = [sys.executable, "-m", "guidance.worlds.embedded.build.train", "all", "--config", "smoke", "--out", str(folder / "world"), "--workdir", str(folder / "work")]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return folder / "world"


@pytest.fixture(scope="session")
def app_url(world_path: Path, tmp_path_factory) -> Iterator[str]:
    """The app on the embedded world; its SD option points at a missing folder (weights unavailable)."""
    import app

    missing_sd = tmp_path_factory.mktemp("no_sd") / "stable-diffusion"
    demo = app.build_app(world_path, sd_model=str(missing_sd))
    _, url, _ = demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True)
    try:
        yield url
    finally:
        demo.close()

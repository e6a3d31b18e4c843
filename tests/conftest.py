"""Shared fixtures: a tiny Stable-Diffusion-layout repository and a tiny embedded world written and loaded offline; the
embedded world on disk and the app served from this process on a free port.

The app's world is $GUIDANCE_WORLD when set, else the committed assets/world when complete, else a smoke world trained
by `python -m guidance.worlds.embedded.build.train all --config smoke` in a temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spinning threads stall on a shared CPU
import torch  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
torch.set_num_threads(2)

from helpers import COMMITTED_WORLD, free_port, world_complete  # noqa: E402

from guidance.bench.tiny_pipelines import build_tiny_families, build_tiny_sd  # noqa: E402
from tiny_sd import build_tiny_world, tiny_autoencoder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_sd_folders(tmp_path_factory) -> tuple[Path, Path]:
    return build_tiny_sd(tmp_path_factory.mktemp("tiny_sd"))


@pytest.fixture(scope="session")
def tiny_sd(tiny_sd_folders):
    from guidance.worlds.sd15 import load_sd15

    sd, controlnet = tiny_sd_folders
    return load_sd15(str(sd), controlnet=str(controlnet), device="cpu", image_size=16)


@pytest.fixture(scope="session")
def tiny_families(tmp_path_factory) -> dict[str, Path]:
    """Tiny random pipeline folders of each family: "sd" (and its "controlnet"), "sdxl", "sd3"."""
    return build_tiny_families(tmp_path_factory.mktemp("families"))


@pytest.fixture(scope="module")
def sd_with_tiny_decoder(tiny_sd_folders, tmp_path_factory):
    """The tiny SD backbone loaded with a tiny AutoencoderTiny for the guidance path."""
    from guidance.worlds.sd15 import load_sd15

    folder = tmp_path_factory.mktemp("taesd")
    tiny_autoencoder().save_pretrained(folder)
    sd, controlnet = tiny_sd_folders
    return load_sd15(str(sd), controlnet=str(controlnet), device="cpu", image_size=16, tiny_vae=str(folder))


@pytest.fixture(scope="session")
def tiny_world_path(tmp_path_factory) -> Path:
    """An embedded-world folder with random tiny networks (tiny_sd.build_tiny_world)."""
    return build_tiny_world(tmp_path_factory.mktemp("tiny_world"))


@pytest.fixture(scope="session")
def world_path(tmp_path_factory) -> Path:
    if os.environ.get("GUIDANCE_WORLD"):
        return Path(os.environ["GUIDANCE_WORLD"])
    if world_complete(COMMITTED_WORLD):
        return COMMITTED_WORLD
    folder = tmp_path_factory.mktemp("smoke_world")
    command = [
        sys.executable,
        "-m",
        "guidance.worlds.embedded.build.train",
        "all",
        "--config",
        "smoke",
        "--out",
        str(folder / "world"),
        "--workdir",
        str(folder / "work"),
    ]
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

"""Shared fixtures: a tiny Stable-Diffusion-layout repository written and loaded offline."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spinning threads stall on a shared CPU
import torch  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(2)

from tiny_pipelines import build_tiny_families  # noqa: E402
from tiny_sd import build_tiny_sd  # noqa: E402


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

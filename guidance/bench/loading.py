"""The world a suite runs on: the embedded world, SD 1.5, SDXL or SD 3 with random weights, or the real SD 1.5."""

from __future__ import annotations

import torch

from guidance.bench.common import Options
from guidance.worlds import World

BACKBONES = ("embedded", "sd15-random", "sdxl-random", "sd3-random", "sd15")
FAMILY_RANDOM = {"sdxl-random": "sdxl", "sd3-random": "sd3"}  # guidance.bench.family_random's families
CONTROLNET = "lllyasviel/sd-controlnet-canny"


def image_size(opts: Options) -> int:
    """Pixels for the random-weight backbones: --size, else on CUDA their native size (SD 1.5 512, SDXL and SD 3
    1024), on a CPU 128 (SD 1.5) or 256 (SDXL, SD 3). Real SD 1.5: always 512."""
    if opts.image_size:
        return opts.image_size
    if opts.backbone in FAMILY_RANDOM:
        return 1024 if opts.device == "cuda" else 256
    return 512 if opts.device == "cuda" else 128


def load(opts: Options, needs: tuple[str, ...]) -> World:
    """The world a suite runs on.

    Args:
        opts: the data, backbone, device, image size and embedded world's folder.
        needs: the suite's NEEDS: the networks sd15-random builds besides the backbone (sdxl-random and sd3-random
            build none).

    Raises:
        WeightsUnavailableError: weights are missing (embedded, sd15).
    """
    if opts.data == "mixture":
        from guidance.worlds.mixture import mixture_world

        return mixture_world()
    if opts.backbone == "embedded":
        from guidance.worlds.embedded import ASSETS, load_world

        return load_world(opts.world or ASSETS, opts.device)
    dtype = torch.float16 if opts.device == "cuda" else torch.float32
    if opts.backbone == "sd15-random":
        from guidance.bench.sd15_random import build_world

        return build_world(image_size(opts), opts.device, dtype, needs)
    if opts.backbone in FAMILY_RANDOM:
        from guidance.bench import family_random

        return family_random.build_world(FAMILY_RANDOM[opts.backbone], image_size(opts), opts.device, dtype)
    from guidance.worlds import load_sd15_world

    return load_sd15_world(controlnet=CONTROLNET, device=opts.device)  # 512 px

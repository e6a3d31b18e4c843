"""The world a suite runs on: the embedded world, SD 1.5 with random weights, or the real SD 1.5."""
from __future__ import annotations

import torch

from guidance.bench.common import Options
from guidance.worlds import World

BACKBONES = ("embedded", "sd15-random", "sd15")
CONTROLNET = "lllyasviel/sd-controlnet-canny"


def image_size(opts: Options) -> int:
    """Pixels for sd15-random: --size, else 512 on CUDA and 128 on a CPU (real SD 1.5: always 512)."""
    return opts.image_size or (512 if opts.device == "cuda" else 128)


def load(opts: Options, needs: tuple[str, ...]) -> World:
    """The world a suite runs on.

    Args:
        opts: the data, backbone, device, image size and embedded world's folder.
        needs: the suite's NEEDS: the networks sd15-random builds besides the backbone.

    Raises:
        WeightsUnavailableError: weights are missing (embedded, sd15).
    """
    if opts.data == "mixture":
        from guidance.bench.mixture import mixture_world

        return mixture_world()
    if opts.backbone == "embedded":
        from guidance.worlds.embedded import ASSETS, load_world

        return load_world(opts.world or ASSETS, opts.device)
    dtype = torch.float16 if opts.device == "cuda" else torch.float32
    if opts.backbone == "sd15-random":
        from guidance.bench.sd15_random import build_world

        return build_world(image_size(opts), opts.device, dtype, needs)
    from guidance.worlds import load_sd15_world

    return load_sd15_world(controlnet=CONTROLNET, device=opts.device)  # 512 px

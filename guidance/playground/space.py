"""Running on a Hugging Face Space: how long to hold a ZeroGPU device for a run or a sweep.

`spaces.GPU(duration=...)` takes a function of the handler's arguments; `gpu_seconds` sizes it from the steps,
samples and methods requested. The per-step figure is [ours]: a guided SD 1.5 step at 512 px (UNet backward
included) on an A100-class GPU, with a 1.5x margin; loading the weights is counted once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

SECONDS_PER_STEP = 0.3  # one guided step of one 512 px sample on SD 1.5, UNet backward included
LOAD_SECONDS = 20
MAX_SECONDS = 300  # ZeroGPU refuses longer holds for most visitors


def gpu_seconds(steps: int, samples: int, runs: int, values: int = 1) -> int:
    """How long to hold a ZeroGPU device: loading plus 1.5x the sampling's estimate, at most MAX_SECONDS.

    Args:
        steps: sampling steps per run.
        samples: samples per run.
        runs: methods (or solvers) per value.
        values: sweep values (1 for a single run).

    Returns:
        Whole seconds.
    """
    work = SECONDS_PER_STEP * steps * max(1, samples) * max(1, runs) * max(1, values)
    return min(MAX_SECONDS, math.ceil(LOAD_SECONDS + 1.5 * work))


def on_gpu(handler: Callable, duration: Callable[..., int], spaces: Any | None) -> Callable:
    """`handler` under `spaces.GPU(duration=duration)` where the `spaces` package is there (a Space), else itself.

    Args:
        handler: the app's event handler.
        duration: from the handler's arguments to the seconds to hold the GPU (built on `gpu_seconds`).
        spaces: the imported `spaces` module, or None off a Space.
    """
    return handler if spaces is None else spaces.GPU(duration=duration)(handler)

"""Train the embedded world's models on rendered faces: seeded, resumable, logged.

    python -m guidance.worlds.embedded.build.train STAGE [--config full|gpu|smoke] [--out assets/world] [--workdir runs/world] [--resume] [--time-budget S]

STAGE is one of STAGES (or `all`, in that order). `data` renders the datasets once and caches them as .npy under
the workdir; `vae` trains the autoencoder and caches the training latents; `estimates` caches decoded clean
estimates x0_hat of noised training latents, which the guiding networks (classifier, face embedder, detector)
learn to read. Each model stage checkpoints to <workdir>/<model>/checkpoint.pt every `checkpoint_every` steps
(resumed with --resume), logs its loss to stdout and <workdir>/<model>/log.csv, writes its weights under --out
and records its parameter count, iterations and wall-clock seconds in <out>/manifest.json. Run it with the default
OpenMP wait policy: OMP_WAIT_POLICY=PASSIVE slows its multi-threaded training steps (docs/benchmark-notes.md).
GUIDANCE_TRAIN_THREADS sets torch's threads (default 2). Every batch and noise draw comes from a generator seeded by
(stage seed, step), so a resumed run continues exactly as an uninterrupted one.
The stages are named in stages.py, their configurations are in config.py, the training loop in training.py.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import fields, replace
from pathlib import Path

import torch

from .. import ASSETS
from .config import CONFIGS
from .stages import PARAM_FILES, STAGE_FUNCTIONS, STAGES, UNRECORDED
from .training import Loop, record


def _count_saved(out: Path, files: list[str]) -> int:
    from safetensors import safe_open

    total = 0
    for file in files:
        with safe_open(str(out / file), "pt") as f:
            total += sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    return total


def run_stage(
    stage: str,
    config: str = "full",
    out: Path = ASSETS,
    work: Path = Path("runs/world"),
    resume: bool = False,
    time_budget_s: float | None = None,
    device: str = "cpu",
) -> None:
    """Run one stage (or all, in order) and record each model stage in the manifest.

    `time_budget_s` replaces the configured wall-clock budget of every model stage run (e.g. to extend
    a resumed run; the budget counts the seconds already spent before the checkpoint).
    """
    torch.set_num_threads(int(os.environ.get("GUIDANCE_TRAIN_THREADS", "2")))
    out, work = Path(out), Path(work)
    out.mkdir(parents=True, exist_ok=True)
    cfg = replace(CONFIGS[config], device=device)
    if time_budget_s is not None:
        loops = [f.name for f in fields(cfg) if isinstance(getattr(cfg, f.name), Loop)]
        cfg = replace(cfg, **{s: replace(getattr(cfg, s), time_budget_s=time_budget_s) for s in loops})
    for name in STAGES if stage == "all" else (stage,):
        start = time.perf_counter()
        entry = STAGE_FUNCTIONS[name](cfg, out, work, resume)
        if name not in UNRECORDED:
            record(out, name, {"params": _count_saved(out, PARAM_FILES[name]), **entry, "config_name": config})
        print(f"{name}: done in {time.perf_counter() - start:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=(*STAGES, "all"))
    parser.add_argument("--config", choices=tuple(CONFIGS), default="full")
    parser.add_argument("--out", type=Path, default=ASSETS)
    parser.add_argument("--workdir", type=Path, default=Path("runs/world"))
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--time-budget", type=float, help="wall-clock seconds per model stage (overrides the config)")
    parser.add_argument("--device", default="cpu", help="where the models train, e.g. cuda (batches are drawn on the CPU)")
    args = parser.parse_args(argv)
    run_stage(args.stage, args.config, args.out, args.workdir, args.resume, args.time_budget, args.device)


if __name__ == "__main__":
    main()

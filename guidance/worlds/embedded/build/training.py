"""The generic training loop of the embedded world's models: seeded, resumable, logged.

`train_loop` runs AdamW on a stage's `loss_fn(step, generator)` under a `Loop` (iterations, batch, learning-rate
schedule, wall-clock budget), with an optional `EMA` and EMA snapshots. It checkpoints to
<workdir>/<model>/checkpoint.pt every `checkpoint_every` steps (resumed with resume=True) and logs its loss to
stdout and <workdir>/<model>/log.csv. Every batch and noise draw comes from a generator seeded by (stage seed,
step), so a resumed run continues exactly as an uninterrupted one. `record` merges a model's entry into
<out>/manifest.json; `save_half` saves a diffusers model in float16.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Loop:
    """Optimisation settings of one model stage; `time_budget_s` stops early (the manifest records it).

    The learning rate warms up linearly over `warmup` steps, then decays as 1 / sqrt(step / decay_from) past
    `decay_from` (EDM2's inverse-square-root schedule; a resumed or extended run continues the same curve).
    """

    iterations: int
    batch: int
    lr: float
    seed: int
    time_budget_s: float = math.inf
    checkpoint_every: int = 200
    warmup: int = 100
    decay_from: float = math.inf
    snapshot_every: int = 0  # EMA snapshots kept for the Autoguidance guide (0: none)

    def learning_rate(self, step: int) -> float:
        return self.lr * min(1.0, (step + 1) / self.warmup) / math.sqrt(max(step / self.decay_from, 1.0))


class EMA:
    """Exponential moving average of parameters with the usual warm-up, decay min(d, (1 + n) / (10 + n))."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in module.state_dict().items():
            self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d) if v.dtype.is_floating_point else self.shadow[k].copy_(v)

    def copy_to(self, module: nn.Module) -> None:
        module.load_state_dict(self.shadow)


def train_loop(name: str, model: nn.Module, loss_fn, loop: Loop, work: Path, resume: bool, ema: EMA | None = None) -> dict:
    """AdamW on `loss_fn(step, generator)`; checkpoints, CSV log, optional EMA and EMA snapshots; the run's record.

    The model is trained where its parameters are (the stage moves it to the config's device)."""
    folder = work / name
    (folder / "snapshots").mkdir(parents=True, exist_ok=True)
    ckpt_path = folder / "checkpoint.pt"
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=loop.lr, weight_decay=0.0)
    step, elapsed = 0, 0.0
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False, map_location=next(model.parameters()).device)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step, elapsed = ckpt["step"], ckpt["elapsed"]
        if ema is not None:
            ema.shadow = ckpt["ema"]
        print(f"{name}: resumed at step {step}", flush=True)
    log = (folder / "log.csv").open("a" if resume else "w", newline="")
    writer = csv.writer(log)
    if not resume or step == 0:
        writer.writerow(["step", "loss", "seconds", "lr"])

    def checkpoint() -> None:
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "elapsed": elapsed,
            "ema": ema.shadow if ema is not None else None,
        }
        torch.save(state, folder / "checkpoint.tmp")
        os.replace(folder / "checkpoint.tmp", ckpt_path)

    model.train()
    started, running = time.perf_counter() - elapsed, []
    while step < loop.iterations and elapsed < loop.time_budget_s:
        g = torch.Generator().manual_seed(loop.seed * 1_000_003 + step)
        for group in optimizer.param_groups:
            group["lr"] = loop.learning_rate(step)
        loss = loss_fn(step, g)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        if ema is not None:
            ema.update(model, step)
            if loop.snapshot_every and step % loop.snapshot_every == 0:
                torch.save(ema.shadow, folder / "snapshots" / f"{step:07d}.pt")
        elapsed = time.perf_counter() - started
        running.append(loss.item())
        if step % 25 == 0 or step == loop.iterations:
            writer.writerow([step, f"{np.mean(running):.5f}", f"{elapsed:.1f}", f"{loop.learning_rate(step):.2e}"])
            log.flush()
            print(f"{name}: step {step} loss {np.mean(running):.4f} ({elapsed:.0f} s)", flush=True)
            running = []
        if step % loop.checkpoint_every == 0:
            checkpoint()
    checkpoint()
    log.close()
    if ema is not None:
        ema.copy_to(model)
    model.eval()
    return {"iterations": step, "seconds": round(elapsed, 1), "batch": loop.batch}


def record(out: Path, name: str, entry: dict) -> None:
    """Merge one model's entry into <out>/manifest.json."""
    path = out / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {}
    manifest[name] = entry
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def save_half(model: nn.Module, folder: Path) -> None:
    """save_pretrained in float16 (half the asset size; the loaders read it back as float32)."""
    copy.deepcopy(model).to(torch.float16).save_pretrained(folder)

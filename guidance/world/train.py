"""Train the embedded world's models on rendered faces: seeded, resumable, logged.

    python -m guidance.world.train STAGE [--config full|smoke] [--out assets/world] [--workdir runs/world] [--resume] [--time-budget S]

STAGE is one of data, classifier, evaluator, face, detector, denoiser, guide, controlnet, all. `data`
renders the datasets once and caches them as .npy under the workdir. Each model stage checkpoints to
<workdir>/<model>/checkpoint.pt every `checkpoint_every` steps (resumed with --resume), logs its loss to
stdout and <workdir>/<model>/log.csv, writes its weights under --out and records its parameter count,
iterations and wall-clock seconds in <out>/manifest.json. On a shared CPU, run with OMP_WAIT_POLICY=PASSIVE
(spinning OpenMP threads stall badly when another process holds a core). Every batch and noise draw comes from a
generator seeded by (stage seed, step), so a resumed run continues exactly as an uninterrupted one.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import ASSETS, LABEL_EMBEDDING
from .nets import Classifier, Evaluator, FaceDetectorNet, FaceEmbedder, save_net
from .render import CLASS_NAMES, SUPERSAMPLE, _draw_body, _Pen, _pattern, _relight, identity_from_id, make_dataset, nuisance_from_seed

STAGES = ("data", "classifier", "evaluator", "face", "detector", "denoiser", "guide", "controlnet")
NULL_LABEL = len(CLASS_NAMES)
SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear", "prediction_type": "epsilon"}


@dataclass(frozen=True)
class Loop:
    """Optimisation settings of one model stage; `time_budget_s` stops early (the manifest records it)."""

    iterations: int
    batch: int
    lr: float
    seed: int
    time_budget_s: float = math.inf
    checkpoint_every: int = 200


def _unet_config(channels: tuple[int, ...], dim: int, heads: int, groups: int) -> dict:
    """UNet2DConditionModel arguments: 64x64x3 pixels, one layer per block, attention only at 16x16 and mid.

    diffusers' UNet2DConditionModel reads `attention_head_dim` as the NUMBER of heads (a known naming quirk).
    """
    depth = len(channels)
    down = ["DownBlock2D"] * depth
    down[min(2, depth - 1)] = "CrossAttnDownBlock2D"
    up = [b.replace("Down", "Up") for b in reversed(down)]
    return {
        "sample_size": 64, "in_channels": 3, "out_channels": 3, "layers_per_block": 1,
        "block_out_channels": list(channels), "down_block_types": down, "up_block_types": up,
        "cross_attention_dim": dim, "attention_head_dim": heads, "norm_num_groups": groups,
    }  # fmt: skip


@dataclass(frozen=True)
class Config:
    """Dataset sizes and per-stage settings."""

    n_train: int
    n_val: int
    n_face: int
    face_ids_per_class: int
    n_face_val: int
    n_negatives: int
    classifier: Loop
    evaluator: Loop
    face: Loop
    detector: Loop
    denoiser: Loop
    guide: Loop
    controlnet: Loop
    classifier_widths: tuple[int, ...] = (16, 32, 64, 128)
    evaluator_widths: tuple[int, ...] = (16, 32, 64, 128)
    face_widths: tuple[int, ...] = (16, 32, 64, 128)
    detector_widths: tuple[int, ...] = (16, 32, 64)
    unet: dict = field(default_factory=lambda: _unet_config((16, 32, 64, 128), 128, 2, 8))
    guide_unet: dict = field(default_factory=lambda: _unet_config((8, 16, 32, 64), 128, 1, 8))
    label_dropout: float = 0.12
    ema_decay: float = 0.995
    control_channels: tuple[int, ...] = (16,)


CONFIGS = {
    "full": Config(
        n_train=30000, n_val=1000, n_face=24000, face_ids_per_class=200, n_face_val=1000, n_negatives=6000,
        classifier=Loop(3000, 64, 2e-3, 1, time_budget_s=240), evaluator=Loop(3000, 64, 2e-3, 2, time_budget_s=240),
        face=Loop(4000, 64, 2e-3, 3, time_budget_s=300), detector=Loop(1000, 64, 2e-3, 4, time_budget_s=90),
        denoiser=Loop(100000, 16, 1e-3, 5, time_budget_s=2400), guide=Loop(100000, 16, 1e-3, 6, time_budget_s=400),
        controlnet=Loop(100000, 16, 1e-3, 7, time_budget_s=780),
    ),
    "smoke": Config(
        n_train=120, n_val=40, n_face=80, face_ids_per_class=2, n_face_val=40, n_negatives=40,
        classifier=Loop(3, 8, 1e-3, 1), evaluator=Loop(3, 8, 1e-3, 2), face=Loop(3, 8, 1e-3, 3),
        detector=Loop(3, 8, 1e-3, 4), denoiser=Loop(3, 4, 1e-3, 5, checkpoint_every=2), guide=Loop(32, 4, 1e-3, 6),
        controlnet=Loop(2, 4, 1e-3, 7), classifier_widths=(8, 16), evaluator_widths=(8, 16), face_widths=(8, 16),
        detector_widths=(8, 16), unet=_unet_config((8, 16, 16), 16, 1, 4), guide_unet=_unet_config((4, 8, 8), 16, 1, 4),
    ),
}


# ----------------------------------------------------------------------------- data


def _render_chunk(args: tuple[int, int, str, int | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, seed, split, per_class = args
    return make_dataset(n, seed=seed, split=split, identities_per_class=per_class)


def _render(n: int, seed: int, split: str, per_class: int | None, pool: Pool) -> dict[str, np.ndarray]:
    """make_dataset in two halves (seeds 2s, 2s+1) on two processes; halves share identities."""
    per_class = per_class or max(1, math.ceil(n / len(CLASS_NAMES) / 5))
    halves = pool.map(_render_chunk, [(n - n // 2, 2 * seed, split, per_class), (n // 2, 2 * seed + 1, split, per_class)])
    return {k: np.concatenate([h[i] for h in halves]) for i, k in enumerate(("images", "labels", "ids"))}


def _body_only(seed: int) -> np.ndarray:
    """A negative: the render's background and clothing (and neck) without a head (render internals, read-only)."""
    identity, nuisance = identity_from_id(seed), nuisance_from_seed(seed)
    canvas = _pattern(nuisance.background, (0, 0, 64 * SUPERSAMPLE, 64 * SUPERSAMPLE))
    if seed % 2:
        _draw_body(_Pen(canvas, nuisance, 64), identity, nuisance)
    return _relight(np.asarray(canvas.reduce(SUPERSAMPLE)), nuisance)


def _shuffled(image: np.ndarray, rng: np.random.Generator, patch: int) -> np.ndarray:
    """A negative: the image's patch x patch tiles in random order."""
    k = 64 // patch
    tiles = image.reshape(k, patch, k, patch, 3).transpose(0, 2, 1, 3, 4).reshape(k * k, patch, patch, 3)
    tiles = tiles[rng.permutation(k * k)].reshape(k, k, patch, patch, 3)
    return tiles.transpose(0, 2, 1, 3, 4).reshape(64, 64, 3)


def _negative(kind: int, rng: np.random.Generator, faces: np.ndarray) -> np.ndarray:
    """One of: background/clothing render, plain colour, linear gradient, uniform noise, shuffled render."""
    if kind == 0:
        return _body_only(int(rng.integers(2**40)))
    if kind == 1:
        return np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (64, 64, 3)).copy()
    if kind == 2:
        a, b = rng.integers(0, 256, (2, 3))
        w = np.linspace(0, 1, 64)[:, None] * math.cos(rng.uniform(0, 6.3)) + np.linspace(0, 1, 64)[None] * math.sin(rng.uniform(0, 6.3))
        w = ((w - w.min()) / max(w.max() - w.min(), 1e-6))[..., None]
        return (a * (1 - w) + b * w).astype(np.uint8)
    if kind == 3:
        return rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return _shuffled(faces[rng.integers(len(faces))], rng, int(rng.choice([8, 16])))


def _negatives(n: int, faces: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([_negative(i % 5, rng, faces) for i in range(n)])


def stage_data(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """Render and cache: train/val class sets, face-ID train/val sets, detector negatives, Canny maps."""
    from conditions.control import canny

    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with Pool(2) as pool:
        sets = {
            "train": _render(cfg.n_train, 0, "train", None, pool),
            "val": _render(cfg.n_val, 1, "heldout", None, pool),
            "face": _render(cfg.n_face, 2, "train", cfg.face_ids_per_class, pool),
            "face_val": _render(cfg.n_face_val, 3, "heldout", max(1, cfg.n_face_val // 50), pool),
        }
    for name, arrays in sets.items():
        for key, value in arrays.items():
            np.save(data / f"{name}_{key}.npy", value)
    np.save(data / "negatives.npy", _negatives(cfg.n_negatives, sets["train"]["images"], 0))
    pixels = torch.from_numpy(sets["train"]["images"]).permute(0, 3, 1, 2).float() / 127.5 - 1
    np.save(data / "train_canny.npy", canny(pixels)[:, 0].numpy())
    print(f"data: rendered in {time.perf_counter() - start:.0f} s -> {data}", flush=True)
    return {}


def load(work: Path, name: str) -> np.ndarray:
    path = work / "data" / f"{name}.npy"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run `python -m guidance.world.train data` first")
    return np.load(path, mmap_mode="r")


def to_pixels(images: np.ndarray) -> Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


# ----------------------------------------------------------------------------- augmentation


def blur(images: Tensor, sigma: Tensor) -> Tensor:
    """Separable Gaussian blur with a per-sample standard deviation (pixels; 0 leaves the sample as is)."""
    radius = 7
    x = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-(x[None] ** 2) / (2 * sigma.clamp(min=1e-3)[:, None] ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(images.shape[1], 0)
    b, c, h, w = images.shape
    flat = F.pad(images.reshape(1, b * c, h, w), (radius,) * 4, mode="replicate")
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=b * c)
    return F.conv2d(flat, kernel[:, None, :, None], groups=b * c).reshape(b, c, h, w)


def degrade(images: Tensor, g: torch.Generator, max_sigma: float, max_noise: float, p: float) -> Tensor:
    """With probability p per sample: blur of random strength, then additive Gaussian noise of random std.

    Makes a classifier robust on the blurry, noisy clean estimates x0_hat it sees during sampling.
    """
    b = images.shape[0]
    on = (torch.rand(b, generator=g) < p).float()
    sigma = torch.rand(b, generator=g) * max_sigma * on
    noise = torch.rand(b, generator=g) * max_noise * on
    return blur(images, sigma) + noise.view(b, 1, 1, 1) * torch.randn(images.shape, generator=g)


def flip(images: Tensor, g: torch.Generator) -> Tensor:
    """Random horizontal flips (class and identity are mirror-invariant)."""
    mask = torch.rand(images.shape[0], generator=g) < 0.5
    return torch.where(mask.view(-1, 1, 1, 1), images.flip(-1), images)


# ----------------------------------------------------------------------------- training loop


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
    """Adam on `loss_fn(step, generator)`; checkpoints, CSV log, optional EMA; returns the run's record."""
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    ckpt_path = folder / "checkpoint.pt"
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=loop.lr, weight_decay=0.0)
    step, elapsed = 0, 0.0
    if resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step, elapsed = ckpt["step"], ckpt["elapsed"]
        if ema is not None:
            ema.shadow = ckpt["ema"]
        print(f"{name}: resumed at step {step}", flush=True)
    log = (folder / "log.csv").open("a" if resume else "w", newline="")
    writer = csv.writer(log)
    if not resume or step == 0:
        writer.writerow(["step", "loss", "seconds"])

    def checkpoint() -> None:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "elapsed": elapsed,
                 "ema": ema.shadow if ema is not None else None}  # fmt: skip
        torch.save(state, folder / "checkpoint.tmp")
        os.replace(folder / "checkpoint.tmp", ckpt_path)

    model.train()
    started, running = time.perf_counter() - elapsed, []
    while step < loop.iterations and elapsed < loop.time_budget_s:
        g = torch.Generator().manual_seed(loop.seed * 1_000_003 + step)
        for group in optimizer.param_groups:
            group["lr"] = loop.lr * min(1.0, (step + 1) / 100)
        loss = loss_fn(step, g)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        if ema is not None:
            ema.update(model, step)
        elapsed = time.perf_counter() - started
        running.append(loss.item())
        if step % 25 == 0 or step == loop.iterations:
            writer.writerow([step, f"{np.mean(running):.5f}", f"{elapsed:.1f}"])
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


# ----------------------------------------------------------------------------- small nets


def _classifier_stage(name: str, net: nn.Module, loop: Loop, out: Path, work: Path, resume: bool, robust: bool) -> dict:
    images, labels = load(work, "train_images"), torch.from_numpy(np.array(load(work, "train_labels")))

    def loss_fn(step: int, g: torch.Generator) -> Tensor:
        idx = torch.randint(len(labels), (loop.batch,), generator=g)
        x = flip(to_pixels(images[idx.numpy()]), g)
        if robust:
            x = degrade(x, g, max_sigma=3.0, max_noise=0.4, p=0.75)
        return F.cross_entropy(net.logits(x), labels[idx])

    entry = train_loop(name, net, loss_fn, loop, work, resume)
    save_net(net, out / f"{name}.safetensors")
    return entry


def stage_classifier(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """GFCG guide classifier, trained with blur + noise augmentation."""
    torch.manual_seed(cfg.classifier.seed)
    return _classifier_stage("classifier", Classifier(cfg.classifier_widths), cfg.classifier, out, work, resume, True)


def stage_evaluator(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """Metrics-only classifier on clean renders (different architecture and seed)."""
    torch.manual_seed(cfg.evaluator.seed)
    return _classifier_stage("evaluator", Evaluator(cfg.evaluator_widths), cfg.evaluator, out, work, resume, False)


def supcon_loss(embeddings: Tensor, targets: Tensor, temperature: float = 0.1) -> Tensor:
    """Supervised contrastive loss (Khosla et al. 2020): each anchor's same-identity views against the batch."""
    logits = embeddings @ embeddings.T / temperature
    self_mask = torch.eye(len(targets), dtype=torch.bool)
    log_prob = logits.masked_fill(self_mask, -math.inf).log_softmax(1)
    positive = (targets[:, None] == targets[None]) & ~self_mask
    return -(log_prob.masked_fill(~positive, 0).sum(1) / positive.sum(1).clamp(min=1)).mean()


def identity_batch(groups: list[np.ndarray], batch: int, views: int, g: torch.Generator) -> np.ndarray:
    """Image indices: `views` random images of each of batch // views random identities (P x K sampling)."""
    people = torch.randperm(len(groups), generator=g)[: batch // views].tolist()
    return np.concatenate([groups[p][torch.randint(len(groups[p]), (views,), generator=g).numpy()] for p in people])


def stage_face(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """Face embedder: supervised contrastive loss on P x K identity batches of training identities.

    Mild blur and noise augmentation, so that crops of blurry clean estimates x0_hat embed sensibly.
    """
    torch.manual_seed(cfg.face.seed)
    images = load(work, "face_images")
    _, targets = np.unique(np.asarray(load(work, "face_ids")), return_inverse=True)
    groups = [np.flatnonzero(targets == k) for k in range(targets.max() + 1)]
    targets = torch.from_numpy(targets)
    net = FaceEmbedder(cfg.face_widths)

    def loss_fn(step: int, g: torch.Generator) -> Tensor:
        idx = identity_batch(groups, cfg.face.batch, 4, g)
        x = degrade(to_pixels(images[idx]), g, max_sigma=1.5, max_noise=0.15, p=0.5)
        return supcon_loss(net(x), targets[idx])

    entry = train_loop("face", net, loss_fn, cfg.face, work, resume)
    save_net(net, out / "face_embedder.safetensors")
    return {**entry, "identities": len(groups)}


def stage_detector(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """Face / no-face classifier: half renders, half negatives per batch."""
    torch.manual_seed(cfg.detector.seed)
    faces, negatives = load(work, "train_images"), load(work, "negatives")
    net = FaceDetectorNet(cfg.detector_widths)
    half = cfg.detector.batch // 2

    def loss_fn(step: int, g: torch.Generator) -> Tensor:
        pos = torch.randint(len(faces), (half,), generator=g).numpy()
        neg = torch.randint(len(negatives), (half,), generator=g).numpy()
        x = flip(to_pixels(np.concatenate([faces[pos], negatives[neg]])), g)
        y = torch.cat([torch.ones(half), torch.zeros(half)])
        return F.binary_cross_entropy_with_logits(net(x), y)

    entry = train_loop("detector", net, loss_fn, cfg.detector, work, resume)
    save_net(net, out / "face_detector.safetensors")
    return entry


# ----------------------------------------------------------------------------- diffusion


class LabelledUNet(nn.Module):
    """A UNet2DConditionModel with its label table ((classes + 1) x D; the last row is the null label)."""

    def __init__(self, unet: nn.Module, embedding: nn.Embedding):
        super().__init__()
        self.unet, self.embedding = unet, embedding

    def forward(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        return self.unet(x, t, encoder_hidden_states=self.embedding(labels)[:, None]).sample


@lru_cache(maxsize=1)
def alphas_cumprod() -> Tensor:
    from diffusers import DDPMScheduler

    return DDPMScheduler(**SCHEDULE).alphas_cumprod.float()


def noisy_batch(work_images: np.ndarray, labels: Tensor, batch: int, dropout: float, g: torch.Generator):
    """(x_t, t, eps, labels with dropout to the null label, indices) for the epsilon-prediction loss."""
    idx = torch.randint(len(labels), (batch,), generator=g)
    x0 = to_pixels(work_images[idx.numpy()])
    t = torch.randint(0, SCHEDULE["num_train_timesteps"], (batch,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    a = alphas_cumprod()[t].view(-1, 1, 1, 1)
    y = torch.where(torch.rand(batch, generator=g) < dropout, torch.full_like(labels[idx], NULL_LABEL), labels[idx])
    return a.sqrt() * x0 + (1 - a).sqrt() * eps, t, eps, y, idx


def save_unet(model: LabelledUNet, folder: Path) -> None:
    from safetensors.torch import save_file

    model.unet.save_pretrained(folder)
    save_file({"weight": model.embedding.weight.detach().contiguous()}, str(folder / LABEL_EMBEDDING))


def _diffusion_stage(name: str, unet_config: dict, loop: Loop, cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    from diffusers import DDPMScheduler, UNet2DConditionModel

    torch.manual_seed(loop.seed)
    images, labels = load(work, "train_images"), torch.from_numpy(np.array(load(work, "train_labels")))
    model = LabelledUNet(UNet2DConditionModel(**unet_config), nn.Embedding(NULL_LABEL + 1, unet_config["cross_attention_dim"]))
    ema = EMA(model, cfg.ema_decay)

    def loss_fn(step: int, g: torch.Generator) -> Tensor:
        x_t, t, eps, y, _ = noisy_batch(images, labels, loop.batch, cfg.label_dropout, g)
        return F.mse_loss(model(x_t, t, y), eps)

    entry = train_loop(name, model, loss_fn, loop, work, resume, ema)
    folder = out / ("unet" if name == "denoiser" else "guide_unet")
    save_unet(model, folder)
    DDPMScheduler(**SCHEDULE).save_pretrained(out / "scheduler")
    return {**entry, "ema_decay": cfg.ema_decay, "config": {k: unet_config[k] for k in ("block_out_channels", "cross_attention_dim")}}


def stage_denoiser(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """The class-conditional pixel UNet (epsilon, DDPM linear betas, label dropout for CFG), EMA weights saved."""
    return _diffusion_stage("denoiser", cfg.unet, cfg.denoiser, cfg, out, work, resume)


def stage_guide(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """The Autoguidance guide: a smaller UNet trained for 1/16 of the denoiser's recorded iterations."""
    manifest = out / "manifest.json"
    denoiser_steps = json.loads(manifest.read_text()).get("denoiser", {}).get("iterations") if manifest.exists() else None
    loop = replace(cfg.guide, iterations=max(1, denoiser_steps // 16)) if denoiser_steps else cfg.guide
    return _diffusion_stage("guide", cfg.guide_unet, loop, cfg, out, work, resume)


def stage_controlnet(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """ControlNet on Canny maps of renders, the denoiser and its label table frozen; 64x64 maps not downsampled."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    from . import load_label_embedding

    loop = cfg.controlnet
    torch.manual_seed(loop.seed)
    unet = UNet2DConditionModel.from_pretrained(out / "unet").eval().requires_grad_(False)
    embedding = load_label_embedding(out / "unet", "cpu")
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=cfg.control_channels)
    images, labels = load(work, "train_images"), torch.from_numpy(np.array(load(work, "train_labels")))
    maps = load(work, "train_canny")

    def loss_fn(step: int, g: torch.Generator) -> Tensor:
        x_t, t, eps, y, idx = noisy_batch(images, labels, loop.batch, cfg.label_dropout, g)
        cond = torch.from_numpy(np.ascontiguousarray(maps[idx.numpy()])).float()[:, None].expand(-1, 3, -1, -1)
        states = embedding(y)[:, None]
        down, mid = controlnet(x_t, t, encoder_hidden_states=states, controlnet_cond=cond, return_dict=False)
        pred = unet(x_t, t, encoder_hidden_states=states, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
        return F.mse_loss(pred, eps)

    entry = train_loop("controlnet", controlnet, loss_fn, loop, work, resume)
    controlnet.save_pretrained(out / "controlnet")
    return entry


# ----------------------------------------------------------------------------- CLI

STAGE_FUNCTIONS = {
    "data": stage_data, "classifier": stage_classifier, "evaluator": stage_evaluator, "face": stage_face,
    "detector": stage_detector, "denoiser": stage_denoiser, "guide": stage_guide, "controlnet": stage_controlnet,
}  # fmt: skip
PARAM_FILES = {
    "classifier": ["classifier.safetensors"], "evaluator": ["evaluator.safetensors"],
    "face": ["face_embedder.safetensors"], "detector": ["face_detector.safetensors"],
    "denoiser": ["unet/diffusion_pytorch_model.safetensors", f"unet/{LABEL_EMBEDDING}"],
    "guide": ["guide_unet/diffusion_pytorch_model.safetensors", f"guide_unet/{LABEL_EMBEDDING}"],
    "controlnet": ["controlnet/diffusion_pytorch_model.safetensors"],
}  # fmt: skip


def _count_saved(out: Path, files: list[str]) -> int:
    from safetensors import safe_open

    total = 0
    for file in files:
        with safe_open(str(out / file), "pt") as f:
            total += sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    return total


def run_stage(stage: str, config: str = "full", out: Path = ASSETS, work: Path = Path("runs/world"), resume: bool = False,
              time_budget_s: float | None = None) -> None:  # fmt: skip
    """Run one stage (or all, in order) and record each model stage in the manifest.

    `time_budget_s` replaces the configured wall-clock budget of every model stage run (e.g. to extend
    a resumed run; the budget counts the seconds already spent before the checkpoint).
    """
    torch.set_num_threads(2)
    out, work = Path(out), Path(work)
    out.mkdir(parents=True, exist_ok=True)
    cfg = CONFIGS[config]
    if time_budget_s is not None:
        cfg = replace(cfg, **{s: replace(getattr(cfg, s), time_budget_s=time_budget_s) for s in STAGES if s != "data"})
    for name in STAGES if stage == "all" else (stage,):
        start = time.perf_counter()
        entry = STAGE_FUNCTIONS[name](cfg, out, work, resume)
        if name != "data":
            entry = {"params": _count_saved(out, PARAM_FILES[name]), **entry, "config_name": config}
            record(out, name, entry)
        print(f"{name}: done in {time.perf_counter() - start:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=(*STAGES, "all"))
    parser.add_argument("--config", choices=tuple(CONFIGS), default="full")
    parser.add_argument("--out", type=Path, default=ASSETS)
    parser.add_argument("--workdir", type=Path, default=Path("runs/world"))
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--time-budget", type=float, help="wall-clock seconds per model stage (overrides the config)")
    args = parser.parse_args(argv)
    run_stage(args.stage, args.config, args.out, args.workdir, args.resume, args.time_budget)


if __name__ == "__main__":
    main()

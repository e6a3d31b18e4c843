"""Quality figures of the embedded world on held-out renders, and its sample grid.

    python -m guidance.world.evaluate [--out assets/world] [--workdir runs/world] [--samples PNG] [--only NAME ...] [--record]

Figures: classifier / evaluator accuracy (held-out identities), face-ID verification ROC-AUC (held-out
identities, all pairs), detector accuracy (held-out renders vs. fresh negatives), ControlNet edge F1
(Canny of samples vs. the held-out map; and without the ControlNet, its chance level), sampling seconds
for 4 samples x 25 DDIM steps. They are printed, and with --record stored under "metrics" in <out>/manifest.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from guidance.backbone import Control
from guidance.worlds import World

from . import ASSETS, load_world
from .render import CLASS_NAMES
from .train import _negatives, load, to_pixels


@torch.no_grad()
def ddim_sample(world: World, classes: list[str], steps: int = 25, scale: float = 2.5, seed: int = 0,
                control: Control | None = None) -> Tensor:  # fmt: skip
    """CFG + deterministic DDIM (diffusers' DDIMScheduler on the backbone's schedule); pixels in [-1, 1]."""
    from diffusers import DDIMScheduler

    backbone = world.backbone
    scheduler = DDIMScheduler.from_config(backbone.scheduler_config)
    scheduler.set_timesteps(steps)
    x = backbone.initial_noise(len(classes), torch.Generator().manual_seed(seed))
    cond, null = backbone.embed(classes), backbone.embed([None] * len(classes))
    both = torch.cat([cond, null])
    pair = None if control is None else Control(torch.cat([control.image, control.image]), control.scale)
    for t in scheduler.timesteps:
        eps_c, eps_u = backbone.predict(torch.cat([x, x]), t, both, pair).chunk(2)
        x = scheduler.step(eps_u + scale * (eps_c - eps_u), t, x).prev_sample
    return backbone.decode(x).clamp(-1, 1)


@torch.no_grad()
def accuracy(net, images: np.ndarray, labels: np.ndarray, batch: int = 200) -> float:
    """Top-1 accuracy of a probability-returning classifier."""
    preds = np.concatenate([net(to_pixels(images[i : i + batch])).argmax(1).numpy() for i in range(0, len(images), batch)])
    return float((preds == labels).mean())


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    order = scores.argsort()
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores[np.diff(np.sort(scores), prepend=np.nan) == 0]):
        ranks[scores == value] = ranks[scores == value].mean()
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@torch.no_grad()
def face_auc(embedder, images: np.ndarray, ids: np.ndarray) -> float:
    """Verification ROC-AUC over all pairs: same identity should have higher cosine similarity."""
    e = torch.nn.functional.normalize(embedder(to_pixels(images)), dim=1)
    similarity = (e @ e.T).numpy()
    upper = np.triu_indices(len(ids), 1)
    return roc_auc(similarity[upper], (ids[:, None] == ids[None])[upper])


def detector_accuracy(world: World, faces: np.ndarray, negatives: np.ndarray) -> float:
    """Fraction of renders boxed and negatives rejected, through the PIL-facing detector."""
    hits = [world.face_detector.box(Image.fromarray(f)) is not None for f in faces]
    hits += [world.face_detector.box(Image.fromarray(n)) is None for n in negatives]
    return float(np.mean(hits))


def control_f1(world: World, images: np.ndarray, labels: np.ndarray, steps: int = 25, scale: float = 2.5,
               use_control: bool = True) -> float:  # fmt: skip
    """Mean edge F1 between Canny of samples and the Canny map of a held-out render.

    With use_control=False the same seeds are sampled without the ControlNet: the chance level of the F1.
    """
    from conditions.control import canny, edge_f1

    maps = canny(to_pixels(images))
    control = world.backbone.prepare_control(maps.float().expand(-1, 3, -1, -1)) if use_control else None
    samples = ddim_sample(world, [CLASS_NAMES[y] for y in labels], steps, scale, seed=1, control=control)
    return float(edge_f1(samples, maps).mean())


def sampling_seconds(world: World, steps: int = 25) -> float:
    """Wall-clock seconds for 4 unguided class-conditional samples: `steps` DDIM steps, one batch-4 UNet call each."""
    from diffusers import DDIMScheduler

    backbone = world.backbone
    scheduler = DDIMScheduler.from_config(backbone.scheduler_config)
    scheduler.set_timesteps(steps)
    start = time.perf_counter()
    with torch.no_grad():
        x = backbone.initial_noise(4, torch.Generator().manual_seed(0))
        embeddings = backbone.embed([CLASS_NAMES[0]] * 4)
        for t in scheduler.timesteps:
            x = scheduler.step(backbone.predict(x, t, embeddings), t, x).prev_sample
    return time.perf_counter() - start


def sample_grid(world: World, path: Path, per_class: int = 8, steps: int = 50, scale: float = 2.5) -> None:
    """One row per class, `per_class` samples each (CFG `scale`, DDIM `steps`), saved as a PNG."""
    rows = [ddim_sample(world, [name] * per_class, steps, scale, seed=c) for c, name in enumerate(CLASS_NAMES)]
    grid = torch.cat([torch.cat(list(row), 2) for row in rows], 1)
    Image.fromarray(((grid.permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()).save(path)


def evaluate(world: World, work: Path, only: set[str] | None = None) -> dict:
    """The figures named in `only` (all by default)."""
    wanted = lambda name: only is None or name in only  # noqa: E731
    val, labels = load(work, "val_images"), np.asarray(load(work, "val_labels"))
    figures = {}
    if wanted("classifier"):
        figures["classifier_accuracy"] = accuracy(world.classifier, val, labels)
    if wanted("evaluator"):
        figures["evaluator_accuracy"] = accuracy(world.evaluator, val, labels)
    if wanted("face"):
        figures["face_auc"] = face_auc(world.face_embedder, load(work, "face_val_images"), np.asarray(load(work, "face_val_ids")))
    if wanted("detector"):
        figures["detector_accuracy"] = detector_accuracy(world, val[:500], _negatives(500, np.asarray(val), 12345))
    if wanted("controlnet") and world.backbone.has_controlnet:
        figures["control_edge_f1"] = control_f1(world, val[:16], labels[:16])
        figures["control_edge_f1_without_controlnet"] = control_f1(world, val[:16], labels[:16], use_control=False)
    if wanted("speed"):
        figures["sampling_s_4x25"] = sampling_seconds(world)
    return {k: round(v, 4) for k, v in figures.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ASSETS)
    parser.add_argument("--workdir", type=Path, default=Path("runs/world"))
    parser.add_argument("--samples", type=Path, help="write the per-class sample grid here")
    parser.add_argument("--only", nargs="*", help="classifier evaluator face detector controlnet speed")
    parser.add_argument("--record", action="store_true", help='store the figures under "metrics" in the manifest')
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    world = load_world(args.out)
    if args.samples:
        sample_grid(world, args.samples)
    figures = evaluate(world, args.workdir, set(args.only) if args.only else None)
    print(json.dumps(figures, indent=2))
    if not args.record:
        return
    manifest_path = args.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest["metrics"] = {**manifest.get("metrics", {}), **figures}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Quality figures of the embedded world's networks on held-out renders, and its sample grid.

    python -m guidance.worlds.embedded.build.evaluate [--out assets/world] [--workdir runs/world] [--samples PNG] [--only NAME ...] [--record]

Figures: VAE reconstruction PSNR; evaluator class and attribute accuracy; guide-classifier accuracy; face-ID
verification ROC-AUC (held-out identities, all pairs); detector accuracy (held-out renders vs fresh negatives) and
its verdict on scikit-image's photographs; ControlNet edge F1 (with and without the ControlNet, same seeds);
seconds for 4 samples x 25 DDIM steps. Every sample is drawn through guidance.sampling.sample. The figures are
printed, and with --record stored under "metrics" in <out>/manifest.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from conditions.images import pixels_from_uint8, uint8_from_pixels
from guidance.methods import Settings, build_method
from guidance.sampling import sample
from guidance.statistics import roc_auc

from ...base import World
from .. import ASSETS, load_world
from ..vocabulary import ATTRIBUTES, CLASS_NAMES, UNSEEN
from .autoencoder import vae_psnr
from .data import load, negatives

TEST_PHOTOS = ("astronaut", "coffee", "chelsea")  # kept out of the detector's training


def cfg_samples(
    world: World, classes: list[str | None], steps: int = 25, scale: float = 2.5, seed: int = 0, control=None
) -> torch.Tensor:
    """CFG (or plain, for scale 1) + deterministic DDIM through the library's sampling loop; pixels in [-1, 1]."""
    method = build_method("cfg" if scale != 1 else "plain", Settings(cfg_scale=scale))
    return sample(world.backbone, method, classes, steps=steps, seed=seed, control=control).images


@torch.no_grad()
def accuracy(net, images: np.ndarray, labels: np.ndarray, batch: int = 200) -> float:
    """Top-1 accuracy of a probability-returning classifier."""
    preds = np.concatenate(
        [net(pixels_from_uint8(images[i : i + batch])).argmax(1).numpy() for i in range(0, len(images), batch)]
    )
    return float((preds == labels).mean())


@torch.no_grad()
def attribute_accuracy(evaluator, images: np.ndarray, attributes: np.ndarray) -> dict[str, float]:
    """Per-attribute accuracy of the evaluator's heads (UNSEEN ground truth skipped)."""
    predicted = torch.cat(
        [evaluator.attributes(pixels_from_uint8(images[i : i + 250])) for i in range(0, len(images), 250)]
    ).numpy()
    return {
        name: float((predicted[:, k] == attributes[:, k])[attributes[:, k] != UNSEEN].mean()) for k, name in enumerate(ATTRIBUTES)
    }


@torch.no_grad()
def face_auc(embedder, images: np.ndarray, ids: np.ndarray) -> float:
    """Verification ROC-AUC over all pairs: same identity should have higher cosine similarity.

    Args:
        embedder: the face embedder.
        images: (N, 64, 64, 3) uint8 renders.
        ids: (N,) their identity ids.

    Returns:
        The ROC-AUC of the pairs' cosine similarities at telling same-identity pairs from the others.
    """
    e = torch.nn.functional.normalize(embedder(pixels_from_uint8(images)), dim=1)
    upper = np.triu_indices(len(ids), 1)
    return roc_auc((e @ e.T).numpy()[upper], (ids[:, None] == ids[None])[upper])


def detector_accuracy(world: World, faces: np.ndarray, fakes: np.ndarray) -> float:
    """Fraction of renders boxed and negatives rejected, through the PIL-facing detector."""
    hits = [world.face_detector.box(Image.fromarray(f)) is not None for f in faces]
    hits += [world.face_detector.box(Image.fromarray(n)) is None for n in fakes]
    return float(np.mean(hits))


def photos_rejected(world: World) -> float:
    """Fraction of scikit-image's test photographs (a person, a cup, a cat) that the detector calls no face."""
    from skimage import data

    return float(np.mean([world.face_detector.box(Image.fromarray(getattr(data, name)())) is None for name in TEST_PHOTOS]))


def control_f1(world: World, images: np.ndarray, labels: np.ndarray, use_control: bool = True) -> float:
    """Mean edge F1 between Canny of CFG samples and the Canny map of a held-out render (without the ControlNet:
    the same seeds unconditioned on the map, the F1's chance level)."""
    from conditions.control import canny, edge_f1

    maps = canny(pixels_from_uint8(images))
    control = world.backbone.prepare_control(maps.float().expand(-1, 3, -1, -1)) if use_control else None
    samples = cfg_samples(world, [CLASS_NAMES[y] for y in labels], seed=1, control=control)
    return float(edge_f1(samples, maps).mean())


def sampling_seconds(world: World, steps: int = 25) -> float:
    """Seconds of the sampling steps for 4 unguided class-conditional samples (one batch-4 UNet call a step)."""
    method = build_method("plain", Settings())
    sample(world.backbone, method, list(CLASS_NAMES[:4]), steps=2)  # warm-up
    return sample(world.backbone, method, list(CLASS_NAMES[:4]), steps=steps).seconds


def sample_grid(world: World, path: Path, per_class: int = 8, steps: int = 25, scale: float = 2.5) -> None:
    """One row per class, `per_class` samples each (CFG `scale`, DDIM `steps`), saved as a PNG."""
    rows = [cfg_samples(world, [name] * per_class, steps, scale, seed=c) for c, name in enumerate(CLASS_NAMES)]
    grid = torch.cat([torch.cat(list(row), 2) for row in rows], 1)
    Image.fromarray(uint8_from_pixels(grid[None])[0]).save(path)


def evaluate(world: World, work: Path, only: set[str] | None = None) -> dict:
    """The figures named in `only` (all by default)."""
    wanted = lambda name: only is None or name in only  # noqa: E731
    val, labels = load(work, "val_images"), np.asarray(load(work, "val_labels"))
    figures = {}
    if wanted("vae"):
        figures["vae_psnr_db"] = vae_psnr(world.backbone.vae, val)
    if wanted("classifier"):
        figures["classifier_accuracy"] = accuracy(world.classifier, val, labels)
    if wanted("evaluator"):
        figures["evaluator_accuracy"] = accuracy(world.evaluator, val, labels)
        attributes = attribute_accuracy(world.evaluator, val, np.asarray(load(work, "val_attributes")))
        figures |= {f"evaluator_{name}_accuracy": value for name, value in attributes.items()}
    if wanted("face"):
        figures["face_auc"] = face_auc(world.face_embedder, load(work, "face_val_images"), np.asarray(load(work, "face_val_ids")))
    if wanted("detector"):
        figures["detector_accuracy"] = detector_accuracy(world, val[:500], negatives(560, np.asarray(val), 12345))
        figures["detector_photos_rejected"] = photos_rejected(world)
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
    parser.add_argument("--only", nargs="*", help="vae classifier evaluator face detector controlnet speed")
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

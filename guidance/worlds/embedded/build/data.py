"""The build pipeline's data: the `data` stage (rendered datasets and detector negatives, cached as .npy under the
workdir; `load` reads them), the negatives (pictures that are not faces of this world) and the augmentations of
training batches (blur, degrade, flip) with `moved`, which puts a batch on the config's device."""

from __future__ import annotations

import math
import time
from functools import lru_cache
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from conditions.images import pixels_from_uint8

from ..vocabulary import CLASS_NAMES
from .config import Config
from ..renderer.dataset import identity_from_id, make_dataset, nuisance_from_seed
from ..renderer.render import SUPERSAMPLE, Pen, draw_body, pattern, relight


def _render_chunk(args: tuple[int, int, str, int | None]) -> tuple[np.ndarray, ...]:
    n, seed, split, per_class = args
    return make_dataset(n, seed=seed, split=split, identities_per_class=per_class)


def _render(n: int, seed: int, split: str, per_class: int | None, pool: Pool) -> dict[str, np.ndarray]:
    """make_dataset in two halves (seeds 2s, 2s+1) on two processes; halves share identities."""
    per_class = per_class or max(1, math.ceil(n / len(CLASS_NAMES) / 5))
    halves = pool.map(_render_chunk, [(n - n // 2, 2 * seed, split, per_class), (n // 2, 2 * seed + 1, split, per_class)])
    return {k: np.concatenate([h[i] for h in halves]) for i, k in enumerate(("images", "labels", "ids", "attributes"))}


def _body_only(seed: int) -> np.ndarray:
    """A negative: the render's background and clothing (and neck) without a head, drawn with the renderer's
    pattern, body and lighting."""
    identity, nuisance = identity_from_id(seed), nuisance_from_seed(seed)
    canvas = pattern(nuisance.background, (0, 0, 64 * SUPERSAMPLE, 64 * SUPERSAMPLE))
    if seed % 2:
        draw_body(Pen(canvas, nuisance, 64), identity, nuisance)
    return relight(np.asarray(canvas.reduce(SUPERSAMPLE)), nuisance)


def _shuffled(image: np.ndarray, rng: np.random.Generator, patch: int) -> np.ndarray:
    """A negative: the image's patch x patch tiles in random order."""
    k = 64 // patch
    tiles = image.reshape(k, patch, k, patch, 3).transpose(0, 2, 1, 3, 4).reshape(k * k, patch, patch, 3)
    tiles = tiles[rng.permutation(k * k)].reshape(k, k, patch, patch, 3)
    return tiles.transpose(0, 2, 1, 3, 4).reshape(64, 64, 3)


def _blob(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A negative: a render blurred past recognition (what a failed guided sample looks like)."""
    from PIL import Image, ImageFilter

    blurred = Image.fromarray(image).filter(ImageFilter.GaussianBlur(float(rng.uniform(4.0, 8.0))))
    return np.asarray(blurred)


# Photographs shipped inside scikit-image's wheel, used as "not one of this world's faces". astronaut, coffee and
# chelsea are kept out: the tests use them.
TRAINING_PHOTOS = (
    "camera",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "text",
    "coins",
    "clock",
    "brick",
    "grass",
    "gravel",
    "colorwheel",
    "logo",
    "horse",
    "microaneurysms",
)


@lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    from skimage import data

    photos = []
    for name in TRAINING_PHOTOS:
        try:
            image = np.asarray(getattr(data, name)())
        except Exception:  # noqa: BLE001 - a photo that this scikit-image cannot load offline is skipped
            continue
        image = image.astype(np.uint8) if image.dtype != bool else image.astype(np.uint8) * 255
        image = np.repeat(image[..., None], 3, 2) if image.ndim == 2 else image[..., :3]
        photos.append(image)
    return tuple(photos)


def _photo_crop(rng: np.random.Generator) -> np.ndarray:
    """A negative: a random square crop of a photograph, resized to 64 px, most of them recoloured by a random
    channel mix (most of the bundled photographs are grey; the photographs people upload are not)."""
    from PIL import Image

    photo = _photos()[rng.integers(len(_photos()))]
    h, w = photo.shape[:2]
    side = int(rng.uniform(0.3, 1.0) * min(h, w))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = np.asarray(Image.fromarray(photo[y : y + side, x : x + side]).resize((64, 64), Image.BILINEAR), np.float32)
    if rng.random() < 0.75:
        mix = rng.uniform(0.0, 1.0, (3, 3))
        crop = crop @ (mix / mix.sum(1, keepdims=True)).T * rng.uniform(0.6, 1.4, 3)
    return crop.clip(0, 255).astype(np.uint8)


NEGATIVE_KINDS = 7


def _negative(kind: int, rng: np.random.Generator, faces: np.ndarray) -> np.ndarray:
    """Background/clothing render, plain colour, gradient, uniform noise, shuffled render, blurred blob, photo crop."""
    if kind == 0:
        return _body_only(int(rng.integers(2**40)))
    if kind == 1:
        return np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (64, 64, 3)).copy()
    if kind == 2:
        a, b = rng.integers(0, 256, (2, 3))
        w = np.linspace(0, 1, 64)[:, None] * math.cos(rng.uniform(0, 6.3)) + np.linspace(0, 1, 64)[None] * math.sin(
            rng.uniform(0, 6.3)
        )
        w = ((w - w.min()) / max(w.max() - w.min(), 1e-6))[..., None]
        return (a * (1 - w) + b * w).astype(np.uint8)
    if kind == 3:
        return rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    face = faces[rng.integers(len(faces))]
    if kind == 4:
        return _shuffled(face, rng, int(rng.choice([8, 16])))
    if kind == 5:
        return _blob(face, rng)
    return _photo_crop(rng)


def negatives(n: int, faces: np.ndarray, seed: int) -> np.ndarray:
    """n pictures that are not faces of this world, cycling through the kinds of `_negative` (photo crops twice).

    Args:
        n: how many.
        faces: (N, 64, 64, 3) uint8 renders, the source of the shuffled and blurred kinds.
        seed: the seed of every random draw.

    Returns:
        (n, 64, 64, 3) uint8 pictures.
    """
    rng = np.random.default_rng(seed)
    kinds = [i % (NEGATIVE_KINDS + 1) for i in range(n)]
    return np.stack([_negative(min(k, NEGATIVE_KINDS - 1), rng, faces) for k in kinds])


def stage_data(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """Render and cache: train/val class sets, face-ID train/val sets, detector negatives, Canny maps.

    Returns:
        An empty entry (the stage is not recorded).
    """
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
    np.save(data / "negatives.npy", negatives(cfg.n_negatives, sets["train"]["images"], 0))
    np.save(data / "train_canny.npy", canny(pixels_from_uint8(sets["train"]["images"]))[:, 0].numpy().astype(np.uint8))
    print(f"data: rendered in {time.perf_counter() - start:.0f} s -> {data}", flush=True)
    return {}


def load(work: Path, name: str) -> np.ndarray:
    """A dataset that the `data` (or another) stage cached under the work folder, memory-mapped.

    Args:
        work: the work folder.
        name: the array's name, e.g. "train_images".

    Returns:
        The array, read-only.

    Raises:
        FileNotFoundError: naming the stage to run first, when the file is missing.
    """
    path = work / "data" / f"{name}.npy"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing; run the stage that writes it first (`python -m guidance.worlds.embedded.build.train data`)"
        )
    return np.load(path, mmap_mode="r")


# ----------------------------------------------------------------------------- augmentation


def blur(images: Tensor, sigma: Tensor) -> Tensor:
    """Separable Gaussian blur with a per-sample standard deviation; differentiable.

    Args:
        images: (B, C, H, W) pixels.
        sigma: (B,) standard deviations in pixels (0 leaves the sample as is).

    Returns:
        The blurred (B, C, H, W) pixels, borders replicated.
    """
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

    Args:
        images: (B, C, H, W) pixels in [-1, 1].
        g: the batch's seeded generator.
        max_sigma: blur standard deviations are uniform in [0, max_sigma) pixels.
        max_noise: noise standard deviations are uniform in [0, max_noise).
        p: the probability that a sample is degraded.

    Returns:
        The (B, C, H, W) pixels.
    """
    b = images.shape[0]
    on = (torch.rand(b, generator=g) < p).float()
    sigma = torch.rand(b, generator=g) * max_sigma * on
    noise = torch.rand(b, generator=g) * max_noise * on
    return blur(images, sigma) + noise.view(b, 1, 1, 1) * torch.randn(images.shape, generator=g)


def flip(images: Tensor, g: torch.Generator) -> Tensor:
    """Random horizontal flips (class, identity and attributes are mirror-invariant).

    Args:
        images: (B, C, H, W) pixels.
        g: the batch's seeded generator.

    Returns:
        The pixels, each flipped with probability 1/2.
    """
    mask = torch.rand(images.shape[0], generator=g) < 0.5
    return torch.where(mask.view(-1, 1, 1, 1), images.flip(-1), images)


def moved(cfg: Config, *tensors: Tensor) -> list[Tensor]:
    """The tensors of a batch (drawn on the CPU from seeded generators) on the config's device.

    Args:
        cfg: the configuration, whose `device` they go to.
        *tensors: the batch's tensors.

    Returns:
        The tensors on that device, in order.
    """
    return [t.to(cfg.device) for t in tensors]

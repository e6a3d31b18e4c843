"""The embedded world's dataset: people and pictures sampled from integer seeds, their classes and attributes.

A picture is ``render(identity, nuisance)`` (scene.py holds what it shows, render.py draws it):

* an :class:`Identity` (``identity_from_id``) fixes who is shown: face shape,
  skin, hair style and colour, eyes, brows, nose, glasses, beard;
* a :class:`Nuisance` (``nuisance_from_seed``) fixes everything that does not
  change who it is: expression, pose jitter, lighting, background pattern,
  clothing colour and texture.

Class labels (``CLASS_NAMES`` of vocabulary.py, ``class_of``) depend on identity
attributes only; ``ATTRIBUTES`` and ``attributes_of`` give the ground truth the
evaluator reads.  Identity ids are plain integers; ``SPLIT_ID_RANGES`` reserves
``[0, 1_000_000)`` for training identities and ``[1_000_000, 2_000_000)`` for
held-out identities, so the two splits never share a person.
``identity_for_class(c, i, split)`` is the ``i``-th id of the split's range
(in increasing order) whose identity has class ``c``; ``make_dataset`` renders
class-balanced sets.  Everything is a pure function of integer seeds.

    python -m guidance.worlds.embedded.renderer.dataset [preview.png]   # render speed and a preview grid
"""

from __future__ import annotations

import colorsys
import math
import random
import sys
import time

import numpy as np
from PIL import Image

from ..vocabulary import (
    ATTRIBUTES,
    BG_PATTERNS,
    CLASS_NAMES,
    CLOTH_TEXTURES,
    GLASSES,
    HAIR_COLOURS,
    HAIR_STYLES,
    UNSEEN,
)
from .render import render, shade
from .scene import RGB, Identity, Nuisance, Texture

IMAGES_PER_IDENTITY = 5

HAIR_RGB: dict[str, RGB] = dict(
    zip(
        HAIR_COLOURS,
        (  # the colour of each of HAIR_COLOURS
            (26, 22, 24),
            (112, 62, 28),
            (236, 204, 112),
            (206, 96, 34),
            (172, 172, 178),
            (48, 92, 210),
        ),
    )
)
HAIR_STYLE_WEIGHTS = (0.12, 0.30, 0.25, 0.13, 0.20)
SKIN_TONES: tuple[RGB, ...] = (
    (255, 226, 200),
    (243, 198, 164),
    (226, 174, 128),
    (196, 136, 96),
    (150, 98, 68),
    (112, 74, 54),
)
EYE_COLOURS: tuple[RGB, ...] = (
    (92, 56, 30),
    (58, 112, 196),
    (56, 142, 78),
    (118, 128, 140),
    (146, 112, 48),
    (36, 28, 24),
)
EYE_SHAPES = ("round", "almond", "narrow")
NOSE_TYPES = ("button", "pointed", "wide", "line")
GLASSES_WEIGHTS = (0.8, 0.1, 0.1)
BEARD_PROBABILITY = 0.15

MOUTHS = ("neutral", "smile", "open")
SPLIT_ID_RANGES: dict[str, tuple[int, int]] = {
    "train": (0, 1_000_000),
    "heldout": (1_000_000, 2_000_000),
}


# ----------------------------------------------------------------------------
# Seeded sampling


def _rng(kind: str, seed: int) -> random.Random:
    """Independent stream per (kind, seed); string seeding is version-stable."""
    return random.Random(f"{kind}:{seed}")


def _uniform(r: random.Random, lo: float, hi: float) -> float:
    return lo + (hi - lo) * r.random()


def _choice(r: random.Random, options: tuple, weights: tuple[float, ...] | None = None):
    """Pick an option using only ``random()``, whose sequence Python guarantees."""
    u = r.random()
    if weights is None:
        return options[min(int(u * len(options)), len(options) - 1)]
    acc = 0.0
    for option, weight in zip(options, weights):
        acc += weight
        if u < acc:
            return option
    return options[-1]


def _hsv(h: float, s: float, v: float) -> RGB:
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def identity_from_id(identity_id: int) -> Identity:
    """The person with this id (deterministic).

    Args:
        identity_id: the id; SPLIT_ID_RANGES tells which split it belongs to.

    Returns:
        The Identity.
    """
    r = _rng("identity", identity_id)
    glasses = _choice(r, GLASSES, GLASSES_WEIGHTS)
    beard = r.random() < BEARD_PROBABILITY
    hair_style = _choice(r, HAIR_STYLES, HAIR_STYLE_WEIGHTS)
    hair_colour = _choice(r, HAIR_COLOURS)
    return Identity(
        identity_id=identity_id,
        head_size=_uniform(r, 0.23, 0.27),
        face_width=_uniform(r, 0.72, 0.9),
        jaw=_uniform(r, -0.3, 0.9),
        skin=_choice(r, SKIN_TONES),
        hair_style=hair_style,
        hair_colour=hair_colour,
        hair_rgb=shade(HAIR_RGB[hair_colour], _uniform(r, 0.9, 1.08)),
        hairline=_uniform(r, 0.3, 0.45),
        parting=_uniform(r, -0.2, 0.2),
        eye_rgb=_choice(r, EYE_COLOURS),
        eye_shape=_choice(r, EYE_SHAPES),
        eye_spacing=_uniform(r, 0.36, 0.46),
        brow_thickness=_uniform(r, 0.012, 0.03),
        nose=_choice(r, NOSE_TYPES),
        mouth_width=_uniform(r, 0.24, 0.42),
        glasses=glasses,
        beard=beard,
        shoulder_width=_uniform(r, 0.34, 0.44),
    )


def _pattern_colours(r: random.Random, s_range: tuple[float, float]) -> tuple[RGB, RGB]:
    """Two colours of clearly different value for a pattern."""
    hue = r.random()
    v = _uniform(r, 0.45, 0.9)
    v2 = v - 0.3 if v > 0.65 else v + 0.3
    hue2 = hue + _uniform(r, -0.15, 0.15)
    return _hsv(hue, _uniform(r, *s_range), v), _hsv(hue2, _uniform(r, *s_range), v2)


def nuisance_from_seed(seed: int) -> Nuisance:
    """Expression, pose, lighting, background and clothing for one picture."""
    r = _rng("nuisance", seed)
    return Nuisance(
        mouth=_choice(r, MOUTHS),
        brow_raise=r.random() ** 2,
        gaze=_uniform(r, -1.0, 1.0),
        shift=(_uniform(r, -3.0, 3.0), _uniform(r, -3.0, 3.0)),
        scale=_uniform(r, 0.92, 1.08),
        angle=_uniform(r, -8.0, 8.0),
        brightness=_uniform(r, 0.85, 1.12),
        contrast=_uniform(r, 0.8, 1.15),
        light_angle=_uniform(r, 0.0, 2 * math.pi),
        light_strength=_uniform(r, 0.0, 0.35),
        background=Texture(
            kind=_choice(r, BG_PATTERNS),
            colours=_pattern_colours(r, (0.15, 0.55)),
            period=_uniform(r, 8.0, 14.0),
            angle=_choice(r, (0.0, 0.25, 0.5, 0.75)) * math.pi,
            phase=r.random(),
        ),
        clothing=Texture(
            kind=_choice(r, CLOTH_TEXTURES),
            colours=_pattern_colours(r, (0.35, 0.85)),
            period=_uniform(r, 6.0, 9.0),
            angle=_choice(r, (0.0, 0.25, 0.5)) * math.pi,
            phase=r.random(),
        ),
    )


# ----------------------------------------------------------------------------
# Classes and datasets


def class_of(identity: Identity) -> int:
    """Class label; a decision list over identity attributes."""
    if identity.glasses == "sun":
        return CLASS_NAMES.index("sunglasses")
    if identity.glasses == "round":
        return CLASS_NAMES.index("round glasses")
    if identity.beard:
        return CLASS_NAMES.index("beard")
    if identity.hair_style == "none":
        return CLASS_NAMES.index("bald")
    return CLASS_NAMES.index(f"{identity.hair_colour} hair")


def attributes_of(identity: Identity, nuisance: Nuisance) -> tuple[int, ...]:
    """Ground-truth attribute indices in ``ATTRIBUTES`` order (``UNSEEN`` for a bald person's hair colour).

    Args:
        identity: who is shown.
        nuisance: the rest of the picture (its background and clothing patterns).

    Returns:
        One value index per attribute of ``ATTRIBUTES``.
    """
    bald = identity.hair_style == "none"
    return (
        UNSEEN if bald else HAIR_COLOURS.index(identity.hair_colour),
        HAIR_STYLES.index(identity.hair_style),
        SKIN_TONES.index(identity.skin) // 2,  # SKIN_BUCKETS: the tones in pairs
        GLASSES.index(identity.glasses),
        int(identity.beard),
        BG_PATTERNS.index(nuisance.background.kind),
        CLOTH_TEXTURES.index(nuisance.clothing.kind),
    )


_POOLS: dict[str, list[list[int]]] = {}
_NEXT_ID: dict[str, int] = {}


def identity_for_class(class_id: int, index: int, split: str = "train") -> Identity:
    """The ``index``-th identity of class ``class_id`` in ``split``'s id range."""
    if not 0 <= class_id < len(CLASS_NAMES):
        raise ValueError(f"class_id {class_id} out of range")
    lo, hi = SPLIT_ID_RANGES[split]
    pools = _POOLS.setdefault(split, [[] for _ in CLASS_NAMES])
    while len(pools[class_id]) <= index:
        candidate = _NEXT_ID.get(split, lo)
        if candidate >= hi:
            raise ValueError(f"split {split!r} has no identity #{index} of class {class_id}")
        _NEXT_ID[split] = candidate + 1
        pools[class_of(identity_from_id(candidate))].append(candidate)
    return identity_from_id(pools[class_id][index])


def make_dataset(
    n: int, seed: int = 0, split: str = "train", identities_per_class: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Class-balanced images, labels, identity ids and attributes ((n, len(ATTRIBUTES)), ``attributes_of``).

    Class ``c`` uses the first ``identities_per_class`` identities of the
    split (default: one per ``IMAGES_PER_IDENTITY`` images), each shown with
    several nuisances; ``seed`` picks the nuisances and the order only.
    """
    k = len(CLASS_NAMES)
    counts = [n // k + (c < n % k) for c in range(k)]
    per_class = identities_per_class or max(1, math.ceil(counts[0] / IMAGES_PER_IDENTITY))
    identities = [identity_for_class(c, j % per_class, split) for c in range(k) for j in range(counts[c])]
    rng = np.random.default_rng([seed, list(SPLIT_ID_RANGES).index(split)])
    order = rng.permutation(n)
    nuisance_seeds = rng.integers(0, 2**62, size=n)
    images = np.empty((n, 64, 64, 3), np.uint8)
    labels = np.empty(n, np.int64)
    ids = np.empty(n, np.int64)
    attributes = np.empty((n, len(ATTRIBUTES)), np.int64)
    for i, src in enumerate(order):
        identity, nuisance = identities[src], nuisance_from_seed(int(nuisance_seeds[i]))
        images[i] = render(identity, nuisance)
        labels[i] = class_of(identity)
        ids[i] = identity.identity_id
        attributes[i] = attributes_of(identity, nuisance)
    return images, labels, ids, attributes


# ----------------------------------------------------------------------------
# Preview and timing


def preview_grid(samples_per_class: int = 8, split: str = "train") -> np.ndarray:
    """One row per class: distinct identities, each under its own nuisance."""
    rows = [
        np.concatenate(
            [render(identity_for_class(c, j, split), nuisance_from_seed(1000 * c + j)) for j in range(samples_per_class)], axis=1
        )
        for c in range(len(CLASS_NAMES))
    ]
    return np.concatenate(rows, axis=0)


def _benchmark(count: int = 500) -> float:
    """Milliseconds per rendered image."""
    pairs = [(identity_from_id(i), nuisance_from_seed(i)) for i in range(count)]
    start = time.perf_counter()
    for identity, nuisance in pairs:
        render(identity, nuisance)
    return 1000.0 * (time.perf_counter() - start) / count


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/render_preview.png"
    print(f"render: {_benchmark():.2f} ms/image (one core)")
    Image.fromarray(preview_grid()).resize((8 * 64 * 3, 10 * 64 * 3), Image.NEAREST).save(out)
    print(f"preview written to {out}")

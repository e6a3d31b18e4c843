"""Procedural cartoon-face renderer of the embedded world.

A picture is ``render(identity, nuisance)``:

* an :class:`Identity` (``identity_from_id``) fixes who is shown: face shape,
  skin, hair style and colour, eyes, brows, nose, glasses, beard;
* a :class:`Nuisance` (``nuisance_from_seed``) fixes everything that does not
  change who it is: expression, pose jitter, lighting, background pattern,
  clothing colour and texture.

Class labels (``CLASS_NAMES``, ``class_of``) depend on identity attributes
only.  Identity ids are plain integers; ``SPLIT_ID_RANGES`` reserves
``[0, 1_000_000)`` for training identities and ``[1_000_000, 2_000_000)`` for
held-out identities, so the two splits never share a person.
``identity_for_class(c, i, split)`` is the ``i``-th id of the split's range
(in increasing order) whose identity has class ``c``.

Drawing is done with polygons at ``SUPERSAMPLE`` times the output size and
box-filtered down, which anti-aliases every edge.  Everything is a pure
function of integer seeds.
"""

from __future__ import annotations

import colorsys
import math
import random
import sys
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

RGB = tuple[int, int, int]

SUPERSAMPLE = 4
IMAGES_PER_IDENTITY = 5

HAIR_COLOURS: dict[str, RGB] = {
    "black": (26, 22, 24),
    "brown": (112, 62, 28),
    "blond": (236, 204, 112),
    "ginger": (206, 96, 34),
    "grey": (172, 172, 178),
    "blue": (48, 92, 210),
}
HAIR_STYLES = ("none", "short", "long", "bun", "curly")
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
GLASSES = ("none", "round", "sun")
GLASSES_WEIGHTS = (0.8, 0.1, 0.1)
BEARD_PROBABILITY = 0.15

MOUTHS = ("neutral", "smile", "open")
BG_PATTERNS = ("plain", "stripes", "dots", "checker")
CLOTH_TEXTURES = ("plain", "stripes", "dots")

CLASS_NAMES: tuple[str, ...] = (
    "black hair",
    "brown hair",
    "blond hair",
    "ginger hair",
    "grey hair",
    "blue hair",
    "bald",
    "beard",
    "round glasses",
    "sunglasses",
)
# Pairs of classes that differ by one subtle attribute.
CONFUSABLE_PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (2, 3), (8, 9))
SPLIT_ID_RANGES: dict[str, tuple[int, int]] = {
    "train": (0, 1_000_000),
    "heldout": (1_000_000, 2_000_000),
}

FACE_CX, FACE_CY = 0.5, 0.44
POSE_CENTRE = (0.5, 0.55)
INK: RGB = (34, 26, 26)


@dataclass(frozen=True)
class Identity:
    """Attributes that define a person (and its class)."""

    identity_id: int
    head_size: float  # face half-height, in image widths
    face_width: float  # half-width / half-height of the face
    jaw: float  # < 0 square jaw, > 0 pointed chin
    skin: RGB
    hair_style: str
    hair_colour: str
    hair_rgb: RGB
    hairline: float  # fraction of the upper face covered by hair
    parting: float  # sideways offset of the fringe, in face half-widths
    eye_rgb: RGB
    eye_shape: str
    eye_spacing: float  # eye offset from the centre, in face half-widths
    brow_thickness: float
    nose: str
    mouth_width: float  # mouth half-width, in face half-widths
    glasses: str
    beard: bool
    shoulder_width: float


@dataclass(frozen=True)
class Texture:
    """A two-colour pattern; ``period`` in output pixels, ``angle`` in radians."""

    kind: str  # plain / stripes / dots / checker
    colours: tuple[RGB, RGB]
    period: float
    angle: float
    phase: float


@dataclass(frozen=True)
class Nuisance:
    """Everything in a picture that does not change the identity."""

    mouth: str
    brow_raise: float  # 0 relaxed .. 1 raised
    gaze: float  # -1 left .. 1 right
    shift: tuple[float, float]  # output pixels
    scale: float
    angle: float  # degrees
    brightness: float
    contrast: float
    light_angle: float  # radians
    light_strength: float
    background: Texture
    clothing: Texture


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


def _shade(rgb: RGB, factor: float) -> RGB:
    return tuple(min(255, int(c * factor)) for c in rgb)


def identity_from_id(identity_id: int) -> Identity:
    """The person with this id (deterministic)."""
    r = _rng("identity", identity_id)
    glasses = _choice(r, GLASSES, GLASSES_WEIGHTS)
    beard = r.random() < BEARD_PROBABILITY
    hair_style = _choice(r, HAIR_STYLES, HAIR_STYLE_WEIGHTS)
    hair_colour = _choice(r, tuple(HAIR_COLOURS))
    return Identity(
        identity_id=identity_id,
        head_size=_uniform(r, 0.23, 0.27),
        face_width=_uniform(r, 0.72, 0.9),
        jaw=_uniform(r, -0.3, 0.9),
        skin=_choice(r, SKIN_TONES),
        hair_style=hair_style,
        hair_colour=hair_colour,
        hair_rgb=_shade(HAIR_COLOURS[hair_colour], _uniform(r, 0.9, 1.08)),
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


SKIN_BUCKETS = ("light", "medium", "dark")  # SKIN_TONES in pairs
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "hair_colour": tuple(HAIR_COLOURS),
    "hair_style": HAIR_STYLES,
    "skin": SKIN_BUCKETS,
    "glasses": GLASSES,
    "beard": ("no", "yes"),
    "background": BG_PATTERNS,
    "clothing": CLOTH_TEXTURES,
}
IDENTITY_ATTRIBUTES = ("hair_colour", "hair_style", "skin", "glasses", "beard")  # who it is; the rest is nuisance
UNSEEN = -1  # an attribute that the picture does not show: the hair colour of a bald person


def attributes_of(identity: Identity, nuisance: Nuisance) -> tuple[int, ...]:
    """Ground-truth attribute indices in ``ATTRIBUTES`` order (``UNSEEN`` for a bald person's hair colour)."""
    bald = identity.hair_style == "none"
    return (
        UNSEEN if bald else tuple(HAIR_COLOURS).index(identity.hair_colour),
        HAIR_STYLES.index(identity.hair_style),
        SKIN_TONES.index(identity.skin) // 2,
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
    identities = [
        identity_for_class(c, j % per_class, split) for c in range(k) for j in range(counts[c])
    ]
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
# Geometry


@lru_cache(maxsize=256)
def _unit_arc(a0: float, a1: float, n: int) -> np.ndarray:
    """(cos, sin) of ``n`` angles from ``a0`` to ``a1`` (a closed ring if a full turn)."""
    t = np.linspace(a0, a1, n, endpoint=(a1 - a0) < 2 * math.pi - 1e-9)
    unit = np.stack([np.cos(t), np.sin(t)], axis=1)
    unit.flags.writeable = False
    return unit


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float = 0.0,
         a1: float = 2 * math.pi, n: int = 32) -> np.ndarray:
    """Points on an ellipse (y down), angles in radians."""
    return _unit_arc(a0, a1, n) * (rx, ry) + (cx, cy)


def _face_box(identity: Identity) -> tuple[float, float, float, float]:
    ry = identity.head_size
    return FACE_CX, FACE_CY, ry * identity.face_width, ry


class _Pen:
    """Draws polygons given in unit coordinates through the pose transform."""

    def __init__(self, canvas: Image.Image, nuisance: Nuisance, size: int):
        self.canvas = canvas
        self.draw = ImageDraw.Draw(canvas)
        self.px = canvas.size[0]
        a = math.radians(nuisance.angle)
        s = nuisance.scale
        rotation = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        self.matrix = self.px * s * rotation
        centre = np.array(POSE_CENTRE)
        self.offset = self.px * (centre + np.array(nuisance.shift) / size) - self.matrix @ centre
        self.unit = self.px * s

    def _xy(self, points: np.ndarray) -> list[float]:
        return (points @ self.matrix.T + self.offset).ravel().tolist()

    def poly(self, points: np.ndarray, fill: RGB | None, outline: RGB | None = None,
             width: float = 0.0) -> None:
        self.draw.polygon(self._xy(points), fill=fill, outline=outline,
                          width=max(1, round(width * self.unit)))

    def line(self, points: np.ndarray, fill: RGB, width: float) -> None:
        self.draw.line(self._xy(points), fill=fill, width=max(1, round(width * self.unit)),
                       joint="curve")

    def textured(self, points: np.ndarray, texture: Texture) -> None:
        """Fill a polygon with a pattern, computed only over its bounding box."""
        xy = points @ self.matrix.T + self.offset
        x0, y0 = np.floor(xy.min(0)).clip(0, self.px).astype(int)
        x1, y1 = np.ceil(xy.max(0)).clip(0, self.px).astype(int)
        if x1 <= x0 or y1 <= y0:
            return
        mask = Image.new("L", (x1 - x0, y1 - y0), 0)
        ImageDraw.Draw(mask).polygon((xy - (x0, y0)).ravel().tolist(), fill=255)
        self.canvas.paste(_pattern(texture, (x0, y0, x1, y1)), (x0, y0), mask)


# ----------------------------------------------------------------------------
# Textures and lighting


def _pattern(texture: Texture, box: tuple[int, int, int, int]) -> Image.Image:
    """The part of an infinite canvas-aligned pattern inside ``box`` (canvas pixels)."""
    x0, y0, x1, y1 = box
    if texture.kind == "plain":
        return Image.new("RGB", (x1 - x0, y1 - y0), texture.colours[0])
    scale = 1.0 / (SUPERSAMPLE * texture.period)
    u = (np.arange(x0, x1, dtype=np.float32) + 0.5) * scale + texture.phase
    v = (np.arange(y0, y1, dtype=np.float32) + 0.5) * scale + texture.phase
    if texture.kind == "stripes":
        w = np.add.outer(v * math.sin(texture.angle), u * math.cos(texture.angle))
        mask = np.floor(2.0 * w).astype(np.int32) & 1
    elif texture.kind == "dots":
        mask = np.add.outer((v % 1.0 - 0.5) ** 2, (u % 1.0 - 0.5) ** 2) < 0.09
    else:
        mask = np.bitwise_xor.outer(np.floor(v).astype(np.int32) & 1,
                                    np.floor(u).astype(np.int32) & 1)
    image = Image.frombytes("P", (x1 - x0, y1 - y0), mask.astype(np.uint8).tobytes())
    image.putpalette(texture.colours[0] + texture.colours[1])
    return image.convert("RGB")


@lru_cache(maxsize=8)
def _centred_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    return c[None, :].repeat(size, 0), c[:, None].repeat(size, 1)


def _relight(image: np.ndarray, nuisance: Nuisance) -> np.ndarray:
    """Contrast change and a linear brightness gradient."""
    x, y = _centred_grid(image.shape[0])
    gain = nuisance.brightness + nuisance.light_strength * (
        x * math.cos(nuisance.light_angle) + y * math.sin(nuisance.light_angle))
    out = (image.astype(np.float32) - 128.0) * nuisance.contrast + 128.0
    out *= gain[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------
# Body parts


def _draw_back_hair(pen: _Pen, ident: Identity) -> None:
    """Long hair falling behind the head onto the shoulders."""
    cx, cy, rx, ry = _face_box(ident)
    top = _arc(cx, cy, rx * 1.16, ry * 1.12, math.pi, 2 * math.pi, 20)
    fall = np.array([
        [cx + rx * 1.3, cy + ry * 1.0],
        [cx + rx * 1.4, cy + ry * 1.5],
        [cx, cy + ry * 1.6],
        [cx - rx * 1.4, cy + ry * 1.5],
        [cx - rx * 1.3, cy + ry * 1.0],
    ])
    pen.poly(np.concatenate([top, fall]), ident.hair_rgb, _shade(ident.hair_rgb, 0.7), 0.008)


def _draw_body(pen: _Pen, ident: Identity, nuis: Nuisance) -> None:
    """Textured shoulders, neck and neckline."""
    cx, cy, rx, ry = _face_box(ident)
    w = ident.shoulder_width
    torso = np.concatenate([_arc(0.5, 1.02, w, 0.26, math.pi, 2 * math.pi, 24),
                            [[0.5 + w, 1.4], [0.5 - w, 1.4]]])
    pen.textured(torso, nuis.clothing)
    neck_rgb = _shade(ident.skin, 0.86)
    nw = rx * 0.34
    pen.poly(np.array([[cx - nw, cy + ry * 0.6], [cx + nw, cy + ry * 0.6],
                       [cx + nw, 0.8], [cx - nw, 0.8]]), neck_rgb)
    pen.poly(_arc(cx, 0.78, nw * 1.25, 0.045, 0.0, math.pi, 12), neck_rgb)


def _draw_head(pen: _Pen, ident: Identity) -> None:
    """Ears and the face outline."""
    cx, cy, rx, ry = _face_box(ident)
    if ident.hair_style != "long":
        for side in (-1, 1):
            pen.poly(_arc(cx + side * rx * 0.97, cy + ry * 0.02, rx * 0.17, ry * 0.2, n=16),
                     _shade(ident.skin, 0.93), _shade(ident.skin, 0.75), 0.005)
    unit = _unit_arc(0.0, 2 * math.pi, 48)
    narrow = 1.0 - ident.jaw * 0.32 * np.clip(unit[:, 1], 0, None) ** 2
    face = unit * (rx, ry) * np.stack([narrow, np.ones_like(narrow)], 1) + (cx, cy)
    pen.poly(face, ident.skin, _shade(ident.skin, 0.8), 0.005)


def _draw_beard(pen: _Pen, ident: Identity) -> None:
    """Full beard from the cheeks around the mouth."""
    cx, cy, rx, ry = _face_box(ident)
    unit = _unit_arc(0.12, math.pi - 0.12, 20)
    narrow = 1.0 - ident.jaw * 0.32 * unit[:, 1] ** 2
    chin = unit * (1.04 * rx, 1.06 * ry) * np.stack([narrow, np.ones_like(narrow)], 1) + (cx, cy)
    upper = np.array([
        [cx - rx * 0.9, cy + ry * 0.15],
        [cx - rx * 0.45, cy + ry * 0.36],
        [cx, cy + ry * 0.38],
        [cx + rx * 0.45, cy + ry * 0.36],
        [cx + rx * 0.9, cy + ry * 0.15],
    ])
    pen.poly(np.concatenate([chin, upper]), ident.hair_rgb, _shade(ident.hair_rgb, 0.7), 0.006)


def _draw_nose(pen: _Pen, ident: Identity) -> None:
    cx, cy, rx, ry = _face_box(ident)
    dark = _shade(ident.skin, 0.72)
    ny = cy + ry * 0.24
    if ident.nose == "button":
        pen.poly(_arc(cx, ny, rx * 0.1, ry * 0.07, n=14), _shade(ident.skin, 0.85), dark, 0.004)
    elif ident.nose == "pointed":
        pen.poly(np.array([[cx, cy], [cx + rx * 0.12, ny + ry * 0.04],
                           [cx - rx * 0.08, ny + ry * 0.04]]), _shade(ident.skin, 0.84))
    elif ident.nose == "wide":
        for side in (-1, 1):
            pen.poly(_arc(cx + side * rx * 0.1, ny + ry * 0.03, rx * 0.05, ry * 0.03, n=10), dark)
    else:
        pen.line(np.array([[cx + rx * 0.02, cy + ry * 0.02], [cx + rx * 0.06, ny + ry * 0.04],
                           [cx - rx * 0.06, ny + ry * 0.04]]), dark, 0.01)


def _draw_mouth(pen: _Pen, ident: Identity, nuis: Nuisance) -> None:
    cx, cy, rx, ry = _face_box(ident)
    my = cy + ry * 0.55
    half = ident.mouth_width * rx
    lips = (150, 48, 52)
    if nuis.mouth == "open":
        pen.poly(_arc(cx, my + ry * 0.03, half * 0.7, ry * 0.12, n=20), (70, 18, 24), lips, 0.008)
        pen.poly(np.array([[cx - half * 0.45, my - ry * 0.06], [cx + half * 0.45, my - ry * 0.06],
                           [cx + half * 0.4, my - ry * 0.02], [cx - half * 0.4, my - ry * 0.02]]),
                 (240, 240, 232))
        return
    t = np.linspace(-1.0, 1.0, 12)
    bend = 1.0 - t * t
    if nuis.mouth == "smile":
        upper, lower = my - ry * 0.02 + ry * 0.05 * bend, my + ry * 0.16 * bend
    else:
        upper, lower = my - ry * 0.015 + ry * 0.01 * bend, my + ry * 0.02 + ry * 0.02 * bend
    pts = np.concatenate([np.stack([cx + half * t, upper], 1),
                          np.stack([cx - half * t, lower[::-1]], 1)])
    pen.poly(pts, lips, (110, 30, 36), 0.006)


def _eye_half_height(ident: Identity, rx: float) -> float:
    return rx * 0.2 * {"round": 0.75, "almond": 0.52, "narrow": 0.34}[ident.eye_shape]


def _draw_eyes(pen: _Pen, ident: Identity, nuis: Nuisance) -> None:
    """Sclera, iris, pupil and brows."""
    cx, cy, rx, ry = _face_box(ident)
    ew, eh = rx * 0.2, _eye_half_height(ident, rx)
    ey = cy - ry * 0.05
    unit = _unit_arc(0.0, 2 * math.pi, 24)
    sharp = 0.0 if ident.eye_shape == "round" else 0.5
    lid = unit * (ew, eh) * np.stack([np.ones(24), np.abs(unit[:, 1]) ** sharp], 1)
    brow_rgb = _shade(ident.hair_rgb if ident.hair_style != "none" else (80, 60, 50), 0.8)
    for side in (-1, 1):
        ex = cx + side * ident.eye_spacing * rx
        pen.poly(lid + (ex, ey), (246, 244, 238), INK, 0.006)
        ix = ex + nuis.gaze * ew * 0.35
        ir = min(ew * 0.5, eh * 0.95)
        pen.poly(_arc(ix, ey, ew * 0.5, ir, n=16), ident.eye_rgb)
        pen.poly(_arc(ix, ey, ew * 0.22, ir * 0.45, n=10), (12, 10, 10))
        _draw_brow(pen, ident, ex, ey - eh - ry * (0.1 + 0.1 * nuis.brow_raise), ew, side, brow_rgb)


def _draw_brow(pen: _Pen, ident: Identity, ex: float, by: float, ew: float, side: int,
               rgb: RGB) -> None:
    t = np.linspace(-1.0, 1.0, 8)
    x = ex + ew * 1.15 * t
    y = by - ew * 0.25 * (1 - t * t) + side * ew * 0.08 * t
    thick = ident.brow_thickness * (1.0 - 0.3 * (side * t > 0.3))
    pts = np.concatenate([np.stack([x, y - thick / 2], 1),
                          np.stack([x[::-1], (y + thick / 2)[::-1]], 1)])
    pen.poly(pts, rgb)


def _draw_hair(pen: _Pen, ident: Identity) -> None:
    """Hair on top of the head (the cap), with style-specific extras."""
    style = ident.hair_style
    if style == "none":
        return
    cx, cy, rx, ry = _face_box(ident)
    rgb, edge = ident.hair_rgb, _shade(ident.hair_rgb, 0.7)
    if style == "bun":
        pen.poly(_arc(cx, cy - ry * 1.12, rx * 0.38, ry * 0.26, n=20), rgb, edge, 0.008)
    grow = {"short": (1.06, 1.08, 0.18), "bun": (1.05, 1.06, 0.15),
            "long": (1.12, 1.1, 0.3), "curly": (1.1, 1.1, 0.25)}[style]
    ox, oy, drop = grow
    outer = _arc(cx, cy, rx * ox, ry * oy, math.pi - drop, 2 * math.pi + drop, 28)
    inner_ry = ry * (1.0 - ident.hairline - 0.05)
    inner = _arc(cx + ident.parting * rx, cy - ry * 0.05, rx * 0.97, inner_ry,
                 2 * math.pi + drop, math.pi - drop, 24)
    pen.poly(np.concatenate([outer, inner]), rgb, edge, 0.008)
    if style == "curly":
        for a in np.linspace(math.pi - 0.35, 2 * math.pi + 0.35, 13):
            pen.poly(_arc(cx + rx * 1.08 * math.cos(a), cy + ry * 1.06 * math.sin(a),
                          rx * 0.2, rx * 0.2, n=12), rgb, edge, 0.006)


def _draw_glasses(pen: _Pen, ident: Identity) -> None:
    cx, cy, rx, ry = _face_box(ident)
    ey = cy - ry * 0.05
    sun = ident.glasses == "sun"
    lr, lh = (rx * 0.31, rx * 0.25) if sun else (rx * 0.28, rx * 0.28)
    frame = (20, 20, 24)
    for side in (-1, 1):
        ex = cx + side * ident.eye_spacing * rx
        temple = [[ex + side * lr, ey - lh * 0.3], [cx + side * rx * 0.98, ey - lh * 0.2]]
        pen.line(np.array(temple), frame, 0.009)
        lens = _arc(ex, ey, lr, lh, n=28)
        if sun:
            pen.poly(lens, (28, 30, 40), frame, 0.012)
            pen.line(_arc(ex, ey, lr * 0.6, lh * 0.6, 3.6, 4.4, 5), (92, 96, 120), 0.012)
        else:
            pen.poly(lens, None, frame, 0.011)
    bridge = ident.eye_spacing * rx - lr
    pen.line(_arc(cx, ey - lh * 0.1, bridge, lh * 0.3, math.pi, 2 * math.pi, 7), frame, 0.01)


def render(identity: Identity, nuisance: Nuisance, size: int = 64) -> np.ndarray:
    """Picture of ``identity`` under ``nuisance`` as a (size, size, 3) uint8 array."""
    px = size * SUPERSAMPLE
    canvas = _pattern(nuisance.background, (0, 0, px, px))
    pen = _Pen(canvas, nuisance, size)
    if identity.hair_style == "long":
        _draw_back_hair(pen, identity)
    _draw_body(pen, identity, nuisance)
    _draw_head(pen, identity)
    if identity.beard:
        _draw_beard(pen, identity)
    _draw_nose(pen, identity)
    _draw_mouth(pen, identity, nuisance)
    _draw_eyes(pen, identity, nuisance)
    _draw_hair(pen, identity)
    if identity.glasses != "none":
        _draw_glasses(pen, identity)
    return _relight(np.asarray(canvas.reduce(SUPERSAMPLE)), nuisance)


# ----------------------------------------------------------------------------
# Preview and timing


def preview_grid(samples_per_class: int = 8, split: str = "train") -> np.ndarray:
    """One row per class: distinct identities, each under its own nuisance."""
    rows = [
        np.concatenate([render(identity_for_class(c, j, split), nuisance_from_seed(1000 * c + j))
                        for j in range(samples_per_class)], axis=1)
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

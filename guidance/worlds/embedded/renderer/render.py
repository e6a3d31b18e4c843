"""Drawing of the embedded world's cartoon faces: ``render(identity, nuisance)`` as a 64 px picture.

What a picture shows (Identity, Nuisance, Texture) is in scene.py, the seeded dataset in dataset.py.
Drawing is done with polygons at ``SUPERSAMPLE`` times the output size and
box-filtered down, which anti-aliases every edge: faces, the textured background
and clothing (``pattern``), and lighting (``relight``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from .scene import RGB, Identity, Nuisance, Texture

SUPERSAMPLE = 4
FACE_CX, FACE_CY = 0.5, 0.44
POSE_CENTRE = (0.5, 0.55)
INK: RGB = (34, 26, 26)


def shade(rgb: RGB, factor: float) -> RGB:
    """A colour darkened (factor < 1) or lightened (> 1), each channel clipped at 255.

    Args:
        rgb: the colour.
        factor: what each channel is multiplied by (then truncated to an integer).

    Returns:
        The shaded colour.
    """
    return tuple(min(255, int(c * factor)) for c in rgb)


# ----------------------------------------------------------------------------
# Geometry


@lru_cache(maxsize=256)
def _unit_arc(a0: float, a1: float, n: int) -> np.ndarray:
    """(cos, sin) of ``n`` angles from ``a0`` to ``a1`` (a closed ring if a full turn)."""
    t = np.linspace(a0, a1, n, endpoint=(a1 - a0) < 2 * math.pi - 1e-9)
    unit = np.stack([np.cos(t), np.sin(t)], axis=1)
    unit.flags.writeable = False
    return unit


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float = 0.0, a1: float = 2 * math.pi, n: int = 32) -> np.ndarray:
    """Points on an ellipse (y down), angles in radians."""
    return _unit_arc(a0, a1, n) * (rx, ry) + (cx, cy)


def _face_box(identity: Identity) -> tuple[float, float, float, float]:
    ry = identity.head_size
    return FACE_CX, FACE_CY, ry * identity.face_width, ry


class Pen:
    """Draws polygons given in unit coordinates (the picture is [0, 1]^2, y down) through the pose transform.

    Args:
        canvas: the supersampled RGB canvas drawn on, in place.
        nuisance: its pose (angle, scale, shift) maps unit coordinates to canvas pixels.
        size: the output size in pixels the canvas is reduced to (the shift is in output pixels).
    """

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

    def poly(self, points: np.ndarray, fill: RGB | None, outline: RGB | None = None, width: float = 0.0) -> None:
        self.draw.polygon(self._xy(points), fill=fill, outline=outline, width=max(1, round(width * self.unit)))

    def line(self, points: np.ndarray, fill: RGB, width: float) -> None:
        self.draw.line(self._xy(points), fill=fill, width=max(1, round(width * self.unit)), joint="curve")

    def textured(self, points: np.ndarray, texture: Texture) -> None:
        """Fill a polygon with a pattern, computed only over its bounding box."""
        xy = points @ self.matrix.T + self.offset
        x0, y0 = np.floor(xy.min(0)).clip(0, self.px).astype(int)
        x1, y1 = np.ceil(xy.max(0)).clip(0, self.px).astype(int)
        if x1 <= x0 or y1 <= y0:
            return
        mask = Image.new("L", (x1 - x0, y1 - y0), 0)
        ImageDraw.Draw(mask).polygon((xy - (x0, y0)).ravel().tolist(), fill=255)
        self.canvas.paste(pattern(texture, (x0, y0, x1, y1)), (x0, y0), mask)


# ----------------------------------------------------------------------------
# Textures and lighting


def pattern(texture: Texture, box: tuple[int, int, int, int]) -> Image.Image:
    """The part of an infinite canvas-aligned two-colour pattern inside a box of the canvas.

    Args:
        texture: the pattern (kind, colours, period in output pixels, angle, phase).
        box: (x0, y0, x1, y1) in supersampled canvas pixels.

    Returns:
        An RGB image of the box's size.
    """
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
        mask = np.bitwise_xor.outer(np.floor(v).astype(np.int32) & 1, np.floor(u).astype(np.int32) & 1)
    image = Image.frombytes("P", (x1 - x0, y1 - y0), mask.astype(np.uint8).tobytes())
    image.putpalette(texture.colours[0] + texture.colours[1])
    return image.convert("RGB")


@lru_cache(maxsize=8)
def _centred_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    return c[None, :].repeat(size, 0), c[:, None].repeat(size, 1)


def relight(image: np.ndarray, nuisance: Nuisance) -> np.ndarray:
    """A picture under the nuisance's lighting: contrast change and a linear brightness gradient.

    Args:
        image: (size, size, 3) uint8 pixels.
        nuisance: its contrast, brightness, light angle and strength.

    Returns:
        The relit (size, size, 3) uint8 pixels.
    """
    x, y = _centred_grid(image.shape[0])
    gain = nuisance.brightness + nuisance.light_strength * (
        x * math.cos(nuisance.light_angle) + y * math.sin(nuisance.light_angle)
    )
    out = (image.astype(np.float32) - 128.0) * nuisance.contrast + 128.0
    out *= gain[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------
# Body parts


def _draw_back_hair(pen: Pen, ident: Identity) -> None:
    """Long hair falling behind the head onto the shoulders."""
    cx, cy, rx, ry = _face_box(ident)
    top = _arc(cx, cy, rx * 1.16, ry * 1.12, math.pi, 2 * math.pi, 20)
    fall = np.array(
        [
            [cx + rx * 1.3, cy + ry * 1.0],
            [cx + rx * 1.4, cy + ry * 1.5],
            [cx, cy + ry * 1.6],
            [cx - rx * 1.4, cy + ry * 1.5],
            [cx - rx * 1.3, cy + ry * 1.0],
        ]
    )
    pen.poly(np.concatenate([top, fall]), ident.hair_rgb, shade(ident.hair_rgb, 0.7), 0.008)


def draw_body(pen: Pen, ident: Identity, nuis: Nuisance) -> None:
    """Draws the textured shoulders (the nuisance's clothing), neck and neckline.

    Args:
        pen: the pen of the picture's canvas and pose.
        ident: the person (skin, face box, shoulder width).
        nuis: the picture's nuisance (its clothing texture).
    """
    cx, cy, rx, ry = _face_box(ident)
    w = ident.shoulder_width
    torso = np.concatenate([_arc(0.5, 1.02, w, 0.26, math.pi, 2 * math.pi, 24), [[0.5 + w, 1.4], [0.5 - w, 1.4]]])
    pen.textured(torso, nuis.clothing)
    neck_rgb = shade(ident.skin, 0.86)
    nw = rx * 0.34
    pen.poly(np.array([[cx - nw, cy + ry * 0.6], [cx + nw, cy + ry * 0.6], [cx + nw, 0.8], [cx - nw, 0.8]]), neck_rgb)
    pen.poly(_arc(cx, 0.78, nw * 1.25, 0.045, 0.0, math.pi, 12), neck_rgb)


def _draw_head(pen: Pen, ident: Identity) -> None:
    """Ears and the face outline."""
    cx, cy, rx, ry = _face_box(ident)
    if ident.hair_style != "long":
        for side in (-1, 1):
            pen.poly(
                _arc(cx + side * rx * 0.97, cy + ry * 0.02, rx * 0.17, ry * 0.2, n=16),
                shade(ident.skin, 0.93),
                shade(ident.skin, 0.75),
                0.005,
            )
    unit = _unit_arc(0.0, 2 * math.pi, 48)
    narrow = 1.0 - ident.jaw * 0.32 * np.clip(unit[:, 1], 0, None) ** 2
    face = unit * (rx, ry) * np.stack([narrow, np.ones_like(narrow)], 1) + (cx, cy)
    pen.poly(face, ident.skin, shade(ident.skin, 0.8), 0.005)


def _draw_beard(pen: Pen, ident: Identity) -> None:
    """Full beard from the cheeks around the mouth."""
    cx, cy, rx, ry = _face_box(ident)
    unit = _unit_arc(0.12, math.pi - 0.12, 20)
    narrow = 1.0 - ident.jaw * 0.32 * unit[:, 1] ** 2
    chin = unit * (1.04 * rx, 1.06 * ry) * np.stack([narrow, np.ones_like(narrow)], 1) + (cx, cy)
    upper = np.array(
        [
            [cx - rx * 0.9, cy + ry * 0.15],
            [cx - rx * 0.45, cy + ry * 0.36],
            [cx, cy + ry * 0.38],
            [cx + rx * 0.45, cy + ry * 0.36],
            [cx + rx * 0.9, cy + ry * 0.15],
        ]
    )
    pen.poly(np.concatenate([chin, upper]), ident.hair_rgb, shade(ident.hair_rgb, 0.7), 0.006)


def _draw_nose(pen: Pen, ident: Identity) -> None:
    cx, cy, rx, ry = _face_box(ident)
    dark = shade(ident.skin, 0.72)
    ny = cy + ry * 0.24
    if ident.nose == "button":
        pen.poly(_arc(cx, ny, rx * 0.1, ry * 0.07, n=14), shade(ident.skin, 0.85), dark, 0.004)
    elif ident.nose == "pointed":
        pen.poly(
            np.array([[cx, cy], [cx + rx * 0.12, ny + ry * 0.04], [cx - rx * 0.08, ny + ry * 0.04]]), shade(ident.skin, 0.84)
        )
    elif ident.nose == "wide":
        for side in (-1, 1):
            pen.poly(_arc(cx + side * rx * 0.1, ny + ry * 0.03, rx * 0.05, ry * 0.03, n=10), dark)
    else:
        pen.line(
            np.array([[cx + rx * 0.02, cy + ry * 0.02], [cx + rx * 0.06, ny + ry * 0.04], [cx - rx * 0.06, ny + ry * 0.04]]),
            dark,
            0.01,
        )


def _draw_mouth(pen: Pen, ident: Identity, nuis: Nuisance) -> None:
    cx, cy, rx, ry = _face_box(ident)
    my = cy + ry * 0.55
    half = ident.mouth_width * rx
    lips = (150, 48, 52)
    if nuis.mouth == "open":
        pen.poly(_arc(cx, my + ry * 0.03, half * 0.7, ry * 0.12, n=20), (70, 18, 24), lips, 0.008)
        pen.poly(
            np.array(
                [
                    [cx - half * 0.45, my - ry * 0.06],
                    [cx + half * 0.45, my - ry * 0.06],
                    [cx + half * 0.4, my - ry * 0.02],
                    [cx - half * 0.4, my - ry * 0.02],
                ]
            ),
            (240, 240, 232),
        )
        return
    t = np.linspace(-1.0, 1.0, 12)
    bend = 1.0 - t * t
    if nuis.mouth == "smile":
        upper, lower = my - ry * 0.02 + ry * 0.05 * bend, my + ry * 0.16 * bend
    else:
        upper, lower = my - ry * 0.015 + ry * 0.01 * bend, my + ry * 0.02 + ry * 0.02 * bend
    pts = np.concatenate([np.stack([cx + half * t, upper], 1), np.stack([cx - half * t, lower[::-1]], 1)])
    pen.poly(pts, lips, (110, 30, 36), 0.006)


def _eye_half_height(ident: Identity, rx: float) -> float:
    return rx * 0.2 * {"round": 0.75, "almond": 0.52, "narrow": 0.34}[ident.eye_shape]


def _draw_eyes(pen: Pen, ident: Identity, nuis: Nuisance) -> None:
    """Sclera, iris, pupil and brows."""
    cx, cy, rx, ry = _face_box(ident)
    ew, eh = rx * 0.2, _eye_half_height(ident, rx)
    ey = cy - ry * 0.05
    unit = _unit_arc(0.0, 2 * math.pi, 24)
    sharp = 0.0 if ident.eye_shape == "round" else 0.5
    lid = unit * (ew, eh) * np.stack([np.ones(24), np.abs(unit[:, 1]) ** sharp], 1)
    brow_rgb = shade(ident.hair_rgb if ident.hair_style != "none" else (80, 60, 50), 0.8)
    for side in (-1, 1):
        ex = cx + side * ident.eye_spacing * rx
        pen.poly(lid + (ex, ey), (246, 244, 238), INK, 0.006)
        ix = ex + nuis.gaze * ew * 0.35
        ir = min(ew * 0.5, eh * 0.95)
        pen.poly(_arc(ix, ey, ew * 0.5, ir, n=16), ident.eye_rgb)
        pen.poly(_arc(ix, ey, ew * 0.22, ir * 0.45, n=10), (12, 10, 10))
        _draw_brow(pen, ident, ex, ey - eh - ry * (0.1 + 0.1 * nuis.brow_raise), ew, side, brow_rgb)


def _draw_brow(pen: Pen, ident: Identity, ex: float, by: float, ew: float, side: int, rgb: RGB) -> None:
    t = np.linspace(-1.0, 1.0, 8)
    x = ex + ew * 1.15 * t
    y = by - ew * 0.25 * (1 - t * t) + side * ew * 0.08 * t
    thick = ident.brow_thickness * (1.0 - 0.3 * (side * t > 0.3))
    pts = np.concatenate([np.stack([x, y - thick / 2], 1), np.stack([x[::-1], (y + thick / 2)[::-1]], 1)])
    pen.poly(pts, rgb)


def _draw_hair(pen: Pen, ident: Identity) -> None:
    """Hair on top of the head (the cap), with style-specific extras."""
    style = ident.hair_style
    if style == "none":
        return
    cx, cy, rx, ry = _face_box(ident)
    rgb, edge = ident.hair_rgb, shade(ident.hair_rgb, 0.7)
    if style == "bun":
        pen.poly(_arc(cx, cy - ry * 1.12, rx * 0.38, ry * 0.26, n=20), rgb, edge, 0.008)
    grow = {"short": (1.06, 1.08, 0.18), "bun": (1.05, 1.06, 0.15), "long": (1.12, 1.1, 0.3), "curly": (1.1, 1.1, 0.25)}[style]
    ox, oy, drop = grow
    outer = _arc(cx, cy, rx * ox, ry * oy, math.pi - drop, 2 * math.pi + drop, 28)
    inner_ry = ry * (1.0 - ident.hairline - 0.05)
    inner = _arc(cx + ident.parting * rx, cy - ry * 0.05, rx * 0.97, inner_ry, 2 * math.pi + drop, math.pi - drop, 24)
    pen.poly(np.concatenate([outer, inner]), rgb, edge, 0.008)
    if style == "curly":
        for a in np.linspace(math.pi - 0.35, 2 * math.pi + 0.35, 13):
            pen.poly(_arc(cx + rx * 1.08 * math.cos(a), cy + ry * 1.06 * math.sin(a), rx * 0.2, rx * 0.2, n=12), rgb, edge, 0.006)


def _draw_glasses(pen: Pen, ident: Identity) -> None:
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
    canvas = pattern(nuisance.background, (0, 0, px, px))
    pen = Pen(canvas, nuisance, size)
    if identity.hair_style == "long":
        _draw_back_hair(pen, identity)
    draw_body(pen, identity, nuisance)
    _draw_head(pen, identity)
    if identity.beard:
        _draw_beard(pen, identity)
    _draw_nose(pen, identity)
    _draw_mouth(pen, identity, nuisance)
    _draw_eyes(pen, identity, nuisance)
    _draw_hair(pen, identity)
    if identity.glasses != "none":
        _draw_glasses(pen, identity)
    return relight(np.asarray(canvas.reduce(SUPERSAMPLE)), nuisance)

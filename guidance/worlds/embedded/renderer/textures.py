"""Full-frame style textures drawn by the renderer's pattern code: the app's style examples are the first three of
`style_references`, the benchmarks' held-out references the ones after them."""

from __future__ import annotations

import math

from PIL import Image

from .render import SUPERSAMPLE, pattern
from .scene import Texture

STYLE_KINDS = ("stripes", "checker", "dots")
STYLE_COLOURS = (((36, 52, 150), (240, 196, 60)), ((170, 30, 60), (245, 235, 220)), ((20, 110, 90), (250, 170, 190)))


def style_reference(kind: str, colours: tuple, period: float, angle: float, size: int = 128) -> Image.Image:
    """A full-frame two-colour texture drawn by the renderer's pattern code.

    Args:
        kind: a BG_PATTERNS kind (plain, stripes, dots, checker).
        colours: its two RGB colours.
        period: the pattern's period in pixels of a 64 px picture (scaled with `size`).
        angle: the stripes' angle in radians.
        size: the output size in pixels.

    Returns:
        The (size x size) RGB image.
    """
    texture = Texture(kind=kind, colours=colours, period=period * size / 64, angle=angle, phase=0.25)
    canvas = pattern(texture, (0, 0, size * SUPERSAMPLE, size * SUPERSAMPLE))
    return canvas.reduce(SUPERSAMPLE)


def style_references(n: int, first: int = 0) -> list[Image.Image]:
    """n style references cycling through the kinds, colour pairs, periods and angles (deterministic), from the
    `first`-th on: the app's examples are the first three, so first >= 3 gives references held out from them."""
    return [
        style_reference(STYLE_KINDS[k % 3], STYLE_COLOURS[(k // 3 + k) % 3], 9.0 + 2 * (k % 4), (k % 2) * math.pi / 4)
        for k in range(first, first + n)
    ]

"""The app's example inputs, drawn from held-out identities and the renderer's own patterns.

    python -m guidance.worlds.embedded.build.examples [--out assets/examples]

Faces are held-out renders (identity ids outside the training range), shown at 128 px; style references are
full-frame textures of the kinds the renderer draws on backgrounds and clothes (stripes, checks, dots); control
inputs are a held-out render (annotated by Canny in the app) and a ready Canny map of another one.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image

from .dataset import identity_for_class, nuisance_from_seed
from .render import SUPERSAMPLE, pattern, render
from .scene import Texture

EXAMPLES = Path(__file__).resolve().parents[4] / "assets" / "examples"
STYLE_KINDS = ("stripes", "checker", "dots")
# (file, class, index of the held-out identity of that class, nuisance seed); picked to show distinct people
FACES = (("face_blond.png", 2, 3, 11), ("face_ginger.png", 3, 0, 12), ("face_black_beard.png", 7, 2, 13))
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


def heldout_face(class_id: int, index: int, nuisance_seed: int, size: int = 128) -> Image.Image:
    image = render(identity_for_class(class_id, index, "heldout"), nuisance_from_seed(nuisance_seed))
    return Image.fromarray(image).resize((size, size), Image.BICUBIC)


def write_examples(out: Path = EXAMPLES) -> None:
    from conditions.control import canny
    from conditions.images import to_tensor

    out.mkdir(parents=True, exist_ok=True)
    for name, class_id, index, seed in FACES:
        heldout_face(class_id, index, seed).save(out / name)
    for kind, image in zip(STYLE_KINDS, style_references(3)):
        image.save(out / f"style_{kind}.png")
    Image.fromarray(render(identity_for_class(4, 1, "heldout"), nuisance_from_seed(14))).save(out / "control_face.png")
    source = render(identity_for_class(8, 1, "heldout"), nuisance_from_seed(15))
    edges = canny(to_tensor(Image.fromarray(source)))[0, 0].numpy()
    Image.fromarray((edges * 255).astype(np.uint8)).save(out / "control_canny.png")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=EXAMPLES)
    write_examples(parser.parse_args(argv).out)


if __name__ == "__main__":
    main()

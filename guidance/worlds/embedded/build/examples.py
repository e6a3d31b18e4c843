"""The app's example inputs, drawn from held-out identities and the renderer's own patterns.

    python -m guidance.worlds.embedded.build.examples [--out assets/examples]

Faces are held-out renders (identity ids outside the training range), shown at 128 px; style references are
full-frame textures of the kinds the renderer draws on backgrounds and clothes (stripes, checks, dots); control
inputs are three held-out renders (annotated by Canny in the app) and a ready Canny map of another one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from ..renderer.dataset import identity_for_class, nuisance_from_seed
from ..renderer.render import render
from ..renderer.textures import STYLE_KINDS, style_references

EXAMPLES = Path(__file__).resolve().parents[4] / "assets" / "examples"
# (file, class, index of the held-out identity of that class, nuisance seed); picked to show distinct people
FACES = (("face_blond.png", 2, 3, 11), ("face_ginger.png", 3, 0, 12), ("face_black_beard.png", 7, 2, 13))
# the control tab's source renders (annotated by Canny in the app), picked to give different edge maps
CONTROL_SOURCES = (("control_face.png", 4, 1, 14), ("control_face_bald.png", 6, 0, 16), ("control_face_glasses.png", 8, 2, 17))


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
    for name, class_id, index, seed in CONTROL_SOURCES:
        Image.fromarray(render(identity_for_class(class_id, index, "heldout"), nuisance_from_seed(seed))).save(out / name)
    source = render(identity_for_class(8, 1, "heldout"), nuisance_from_seed(15))
    edges = canny(to_tensor(Image.fromarray(source)))[0, 0].numpy()
    Image.fromarray((edges * 255).astype(np.uint8)).save(out / "control_canny.png")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=EXAMPLES)
    write_examples(parser.parse_args(argv).out)


if __name__ == "__main__":
    main()

"""What a picture of the embedded world shows: an Identity (who), a Nuisance (everything else) and the two-colour
Textures of its background and clothing.

dataset.py samples them from integer seeds; render.py draws them.
"""

from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[int, int, int]


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

"""The embedded world's vocabulary: its classes and the attributes its evaluator reads.

The renderer (renderer/dataset.py) draws people and scenes in these terms; the backbone names the classes, the
networks have one head per attribute. An attribute's value is an index into its tuple in ATTRIBUTES.
"""

from __future__ import annotations

HAIR_COLOURS = ("black", "brown", "blond", "ginger", "grey", "blue")
HAIR_STYLES = ("none", "short", "long", "bun", "curly")
SKIN_BUCKETS = ("light", "medium", "dark")  # the renderer's six skin tones, in pairs
GLASSES = ("none", "round", "sun")
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

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "hair_colour": HAIR_COLOURS,
    "hair_style": HAIR_STYLES,
    "skin": SKIN_BUCKETS,
    "glasses": GLASSES,
    "beard": ("no", "yes"),
    "background": BG_PATTERNS,
    "clothing": CLOTH_TEXTURES,
}
IDENTITY_ATTRIBUTES = ("hair_colour", "hair_style", "skin", "glasses", "beard")  # who it is; the rest is nuisance
STYLE_ATTRIBUTES = ("background", "clothing")  # the patterns and textures a style reference can carry
UNSEEN = -1  # an attribute that the picture does not show: the hair colour of a bald person

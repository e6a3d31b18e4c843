"""A model world: a backbone plus the networks its energies and metrics use, behind one dataclass.

The networks satisfy the protocols FaceDetector, FaceEmbedder, StyleFeatures and Classifier (class_names,
probabilities). They are declared in guidance.energy, the one guidance module that conditions/ (which uses them)
may import besides guidance.errors, and are importable from here too.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..backbone import Backbone
from ..energy import Classifier, FaceDetector, FaceEmbedder, StyleFeatures
from ..errors import WeightsUnavailableError

__all__ = ["Classifier", "FaceDetector", "FaceEmbedder", "StyleFeatures", "Unavailable", "World", "optional"]


@dataclass
class World:
    """What the tasks need from a world. `classifier` guides GFCG; `evaluator` only ever measures.

    A network whose weights could not be had is an `Unavailable` that raises its loading error when used.
    """

    backbone: Backbone
    face_detector: FaceDetector
    face_embedder: FaceEmbedder
    style_features: StyleFeatures
    classifier: Classifier
    evaluator: Classifier  # a different architecture or weights than `classifier`

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes its classifier and evaluator tell apart (the class tasks offer these)."""
        return tuple(self.backbone.class_names or ())


class Unavailable:
    """Stands in for a network whose weights could not be had: using it raises the loading error."""

    def __init__(self, error: WeightsUnavailableError):
        self.error = error

    def __getattr__(self, name: str):
        raise self.error

    def __call__(self, *args, **kwargs):
        raise self.error


def optional(factory, *args, **kwargs):
    """The network, or an `Unavailable` that raises its WeightsUnavailableError when a task uses it."""
    try:
        return factory(*args, **kwargs)
    except WeightsUnavailableError as error:
        return Unavailable(error)

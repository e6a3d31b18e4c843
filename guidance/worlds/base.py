"""A model world: a backbone plus the networks its energies and metrics use, behind one dataclass.

The networks satisfy the protocols FaceDetector, FaceEmbedder, StyleFeatures and Classifier (class_names,
probabilities). They are declared in guidance.energy, the one guidance module that conditions/ (which uses them)
may import besides guidance.errors, and are importable from here too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from guidance.backbone import Backbone
from guidance.energy import Classifier, FaceDetector, FaceEmbedder, PatternJudge, StyleFeatures
from guidance.errors import WeightsUnavailableError

__all__ = [
    "Classifier",
    "FaceDetector",
    "FaceEmbedder",
    "PatternJudge",
    "StyleFeatures",
    "Unavailable",
    "World",
    "for_inference",
    "optional",
    "realism",
]
REALISM = "the evaluator's top-class probability"  # what `realism` measures on a world without a realism score


@dataclass
class World:
    """What the tasks need from a world. `classifier` guides GFCG; `evaluator` and `pattern_judge` only ever measure.

    A network whose weights could not be had is an `Unavailable` that raises its loading error when used.
    """

    backbone: Backbone
    face_detector: FaceDetector
    face_embedder: FaceEmbedder
    style_features: StyleFeatures
    classifier: Classifier
    evaluator: Classifier  # a different architecture or weights than `classifier`
    pattern_judge: PatternJudge | None = None  # names a picture's background pattern (metrics only; None: not offered)
    realism_score: Callable[[Tensor], Tensor] | None = None  # per image, how real it looks to the world's evaluator

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes its classifier and evaluator tell apart (the class tasks offer these)."""
        return tuple(self.backbone.class_names or ())


@torch.no_grad()
def realism(world: World, images: Tensor, batch: int = 250) -> list[float]:
    """How real each image looks to the world's own judge (docs/methods.md, Realism).

    Args:
        world: the world: its `realism_score` where it has one (the embedded world: the k-NN realism score of the
            evaluator's features against held-out renders), else its `evaluator`'s top-class probability.
        images: (N, 3, H, W) pixels in [-1, 1].
        batch: images per evaluator call.

    Returns:
        Per image, its realism (higher is more real).
    """
    if world.realism_score is not None:
        return torch.cat([world.realism_score(chunk).float().cpu() for chunk in images.split(batch)]).tolist()
    from conditions.images import module_device

    device = module_device(world.evaluator)
    probabilities = torch.cat([world.evaluator(chunk.to(device)).float().cpu() for chunk in images.split(batch)])
    return probabilities.max(1).values.tolist()


class Unavailable:
    """Stands in for a network whose weights could not be had: using it raises the loading error.

    Args:
        error: what loading the network raised; any attribute access or call raises it again.
    """

    def __init__(self, error: WeightsUnavailableError):
        self.error = error

    def __getattr__(self, name: str):
        raise self.error

    def __call__(self, *args, **kwargs):
        raise self.error


def optional(factory, *args, **kwargs):
    """A network, or an `Unavailable` that raises its WeightsUnavailableError when a task uses it.

    Args:
        factory: what builds the network; called with `args` and `kwargs`.

    Returns:
        `factory(*args, **kwargs)`, or an `Unavailable` where it raised WeightsUnavailableError.
    """
    try:
        return factory(*args, **kwargs)
    except WeightsUnavailableError as error:
        return Unavailable(error)


def for_inference(module: nn.Module, device: str | torch.device, dtype: torch.dtype | None = None) -> nn.Module:
    """`module` on `device`, in eval mode, frozen, its 4-D weights in channels_last: the memory format in which
    convolutions run fastest on CPUs and GPUs alike (diffusers' speed-up guide; its
    measured effect is in docs/benchmark-notes.md). A no-op for weights of other ranks, so text encoders pass through it too.

    Args:
        module: the network, changed in place.
        device: where it goes.
        dtype: its floating-point type; None keeps it.

    Returns:
        `module`.
    """
    return module.to(device, dtype, memory_format=torch.channels_last).eval().requires_grad_(False)

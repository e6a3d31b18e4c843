"""The small interface every condition energy implements (conditions/ holds the energies, conditions/__init__.py says
how to add one; the methods read it).

An energy E(c, x0) >= 0 is small when the image x0 satisfies the condition c. It takes pixels
in [-1, 1], (B, 3, H, W), is differentiable in them, and returns one value per sample.

The networks that energies and predictors read are protocols here, so that conditions/, the methods and
the worlds (guidance.worlds.World, whose fields have these types) share one declaration: FaceDetector and
FaceEmbedder (conditions/face.py), StyleFeatures and PatternJudge (conditions/style.py), Classifier (guidance/methods/gfcg.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor, nn

from guidance.errors import EnergyShapeError

if TYPE_CHECKING:
    from PIL import Image

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of width and height


def checked(energy: "Energy", images: Tensor) -> Tensor:
    """The energy of images, checked to be one value per image.

    Args:
        energy: any Energy, a user's own included.
        images: (B, 3, H, W) pixels in [-1, 1].

    Returns:
        (B,) energies.

    Raises:
        EnergyShapeError: another shape.
    """
    values = energy(images)
    if values.shape != (images.shape[0],):
        raise EnergyShapeError(
            f"{type(energy).__name__} returned shape {tuple(values.shape)} for {images.shape[0]} images; an "
            "energy returns one value per image, shape (B,): reduce over the other dimensions in forward()"
        )
    return values


class Energy(nn.Module, ABC):
    """E(c, x0) per sample; `metric` gives the figure shown to users for a final image.

    Attributes:
        name: the energy's name in reports.
        metric_name: the name of `metric`'s figure.
    """

    name: str = "energy"
    metric_name: str = "energy"

    @abstractmethod
    def forward(self, images: Tensor) -> Tensor:
        """The energy of each image; differentiable in `images`.

        Args:
            images: pixels (B, 3, H, W) in [-1, 1].

        Returns:
            (B,) energies, small where the condition is met.
        """

    @torch.no_grad()
    def metric(self, images: Tensor) -> Tensor:
        """The user-facing metric of final images; by default the energy itself.

        Args:
            images: pixels (B, 3, H, W) in [-1, 1].

        Returns:
            (B,) values, named by `metric_name`.
        """
        return self.forward(images)

    @torch.no_grad()
    def extra_metrics(self, images: Tensor) -> dict[str, Tensor]:
        """Further user-facing figures of final images, shown beside `metric`; none by default.

        Args:
            images: pixels (B, 3, H, W) in [-1, 1].

        Returns:
            (B,) values by name.
        """
        return {}

    def reset(self) -> None:
        """Forget what earlier calls left behind (a detector's boxes and its call count), so that a run depends on
        its own images only; `guidance.sampling.sample` calls it before each run and before the final measure.
        Stateless energies have nothing to forget."""


class SumEnergy(Energy):
    """A weighted sum of energies (e.g. a control map with a face on top); the first one's metric.

    Args:
        energies: the terms; the first one's `metric` and `metric_name` are the sum's.
        weights: one weight per energy (default: all 1).
    """

    def __init__(self, energies: list[Energy], weights: list[float] | None = None):
        super().__init__()
        self.energies = nn.ModuleList(energies)
        self.weights = weights or [1.0] * len(energies)
        self.name = "+".join(e.name for e in energies)
        self.metric_name = energies[0].metric_name

    def forward(self, images: Tensor) -> Tensor:
        """The weighted sum of the energies."""
        return sum(w * e(images) for w, e in zip(self.weights, self.energies))

    @torch.no_grad()
    def metric(self, images: Tensor) -> Tensor:
        """The first energy's metric."""
        return self.energies[0].metric(images)

    @torch.no_grad()
    def extra_metrics(self, images: Tensor) -> dict[str, Tensor]:
        """Every energy's extra figures (a later name replaces an earlier one)."""
        return {name: values for energy in self.energies for name, values in energy.extra_metrics(images).items()}

    def reset(self) -> None:
        """Resets every energy."""
        for energy in self.energies:
            energy.reset()


# ----------------------------------------------------------------------------- the networks energies read


class FaceDetector(Protocol):
    """Finds the face in an image (conditions/face.py)."""

    no_face_hint: str  # what a person should do when no face is found
    fallback_box: Box  # where a generated image is cropped while no face is found in it

    def box(self, image: Image.Image) -> Box | None:
        """The most confident face's box.

        Args:
            image: the image to search.

        Returns:
            The box as fractions of width and height, or None when there is no face.
        """


class FaceEmbedder(Protocol):
    """Embeds face crops for identity comparison (conditions/face.py).

    Attributes:
        input_size: the side of the square crops it takes, in pixels.
    """

    input_size: int

    def __call__(self, crops: Tensor) -> Tensor:
        """(B, D) embeddings of face crops (B, 3, input_size, input_size) in [-1, 1]; differentiable."""


class StyleFeatures(Protocol):
    """Feature tokens whose statistics describe an image's style (conditions/style.py)."""

    def __call__(self, images: Tensor) -> Tensor:
        """(B, N, D) feature tokens of pixels (B, 3, H, W) in [-1, 1]; differentiable."""


class PatternJudge(Protocol):
    """Names the background pattern of an image (conditions/style.py)."""

    def __call__(self, images: Tensor) -> Tensor:
        """(B,) integer index of the background pattern it names in pixels (B, 3, H, W) in [-1, 1]."""


class Classifier(Protocol):
    """Class probabilities of pixels in [-1, 1]; used in inference mode only.

    Attributes:
        class_names: the K classes, in the order of the probabilities.
    """

    class_names: tuple[str, ...]

    def __call__(self, images: Tensor) -> Tensor:
        """(B, K) class probabilities of pixels (B, 3, H, W) in [-1, 1]."""

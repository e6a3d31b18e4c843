"""The small interface every condition energy implements (conditions/ builds on it; the methods read it).

An energy E(c, x0) >= 0 is small when the image x0 satisfies the condition c. It takes pixels
in [-1, 1], (B, 3, H, W), is differentiable in them, and returns one value per sample.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn


class Energy(nn.Module, ABC):
    """E(c, x0) per sample; `metric` gives the figure shown to users for a final image."""

    name: str = "energy"
    metric_name: str = "energy"

    @abstractmethod
    def forward(self, images: Tensor) -> Tensor:
        """(B,) energies of pixels (B, 3, H, W) in [-1, 1]."""

    @torch.no_grad()
    def metric(self, images: Tensor) -> Tensor:
        """(B,) values of the user-facing metric; by default the energy itself."""
        return self.forward(images)


class SumEnergy(Energy):
    """A weighted sum of energies (e.g. a control map with a face on top); the first one's metric."""

    def __init__(self, energies: list[Energy], weights: list[float] | None = None):
        super().__init__()
        self.energies = nn.ModuleList(energies)
        self.weights = weights or [1.0] * len(energies)
        self.name = "+".join(e.name for e in energies)
        self.metric_name = energies[0].metric_name

    def forward(self, images: Tensor) -> Tensor:
        return sum(w * e(images) for w, e in zip(self.weights, self.energies))

    @torch.no_grad()
    def metric(self, images: Tensor) -> Tensor:
        return self.energies[0].metric(images)

"""Control maps: controlnet-aux annotators, a training-free edge energy, and edge F1."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub.errors import HTTPError
from PIL import Image
from torch import Tensor

from guidance.energy import Energy
from guidance.errors import MethodConfigError, WeightsUnavailableError

from .images import resize, uint8_from_pixels

ANNOTATORS = ("canny", "hed", "lineart", "openpose", "midas")
ANNOTATOR_WEIGHTS = "lllyasviel/Annotators"


def annotate(image: Image.Image, annotator: str = "canny", low: int = 100, high: int = 200) -> Image.Image:
    """A control map from an image, as controlnet-aux draws it.

    Args:
        image: the picture to annotate.
        annotator: one of ANNOTATORS; canny needs no weights, the others load theirs from the hub.
        low, high: Canny's hysteresis thresholds (canny only).

    Returns:
        The map, RGB.

    Raises:
        MethodConfigError: an unknown annotator.
        WeightsUnavailableError: the annotator's weights cannot be loaded.
    """
    if annotator == "canny":
        from controlnet_aux import CannyDetector

        return CannyDetector()(
            image, low_threshold=low, high_threshold=high, detect_resolution=min(image.size), image_resolution=min(image.size)
        )
    if annotator not in ANNOTATORS:
        raise MethodConfigError(f"unknown annotator {annotator!r}; known: {ANNOTATORS}")
    import controlnet_aux

    cls = {"hed": "HEDdetector", "lineart": "LineartDetector", "openpose": "OpenposeDetector", "midas": "MidasDetector"}[
        annotator
    ]
    try:
        detector = getattr(controlnet_aux, cls).from_pretrained(ANNOTATOR_WEIGHTS)
    except (OSError, ValueError, ImportError, HTTPError) as error:  # missing or partial weights, offline hub, missing extras
        raise WeightsUnavailableError(
            f"the {annotator} annotator weights",
            f"hub id {ANNOTATOR_WEIGHTS!r} in the Hugging Face cache",
            "Download them once with network access, or use the canny annotator, which needs none.",
        ) from error
    return detector(image)


def map_tensor(control_map: Image.Image, size: int) -> Tensor:
    """A control map as ControlNets take their condition.

    Args:
        control_map: the map (any mode; converted to RGB).
        size: the side in pixels (nearest-neighbour resize to a square).

    Returns:
        (1, 3, size, size) in [0, 1].
    """
    square = control_map.convert("RGB").resize((size, size), Image.NEAREST)
    return torch.from_numpy(np.asarray(square, dtype=np.float32) / 255).permute(2, 0, 1)[None]


def soft_edges(images: Tensor, threshold: float = 0.4, sharpness: float = 10.0) -> Tensor:
    """Differentiable edge map in [0, 1], (B, 1, H, W): a soft threshold on the Sobel magnitude of luminance.

    The threshold (in [0, 1] grey units) sits near Canny's low threshold of 100 / 255, so texture
    noise stays dark, as it does in a Canny map.

    Args:
        images: (B, 3, H, W) in [-1, 1].
        threshold: the Sobel magnitude at which an edge is half on.
        sharpness: the slope of the sigmoid around the threshold.
    """
    weights = torch.tensor([0.299, 0.587, 0.114], device=images.device).view(1, 3, 1, 1)
    grey = ((images.clamp(-1, 1) * 0.5 + 0.5) * weights).sum(1, keepdim=True)
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=images.device).view(1, 1, 3, 3)
    gx, gy = F.conv2d(grey, kx, padding=1), F.conv2d(grey, kx.transpose(2, 3), padding=1)
    magnitude = (gx.square() + gy.square() + 1e-8).sqrt()
    return torch.sigmoid(sharpness * (magnitude - threshold))


class EdgeEnergy(Energy):
    """E = || blur(soft_edges(x0)) - blur(map) ||_2: follow a control map without a ControlNet [ours].

    The metric is edge F1 of Canny edges of the image against the map (higher is better).

    Args:
        control_map: (1, 3, H, W) in [0, 1] (`map_tensor`); white is edge.
        blur: the standard deviation, in pixels, of the Gaussian that softens both edge maps.
    """

    name, metric_name = "control", "edge_f1"

    def __init__(self, control_map: Tensor, blur: float = 1.0):
        super().__init__()
        self.blur = blur
        self.register_buffer("target", self._smooth(control_map.float().mean(1, keepdim=True)))

    def _smooth(self, edges: Tensor) -> Tensor:
        radius = max(1, round(2 * self.blur))
        x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=edges.device)
        kernel = torch.exp(-(x**2) / (2 * self.blur**2))
        kernel = (kernel / kernel.sum()).view(1, 1, 1, -1)
        edges = F.conv2d(edges, kernel, padding=(0, radius))
        return F.conv2d(edges, kernel.transpose(2, 3), padding=(radius, 0))

    def forward(self, images: Tensor) -> Tensor:
        edges = self._smooth(soft_edges(resize(images, self.target.shape[-1])))
        return (edges - self.target).flatten(1).norm(dim=1)

    @torch.no_grad()
    def metric(self, images: Tensor) -> Tensor:
        return edge_f1(images, self.target > 0.2)


def canny(images: Tensor, low: int = 100, high: int = 200) -> Tensor:
    """Canny edges (OpenCV, as controlnet-aux draws them).

    Args:
        images: (B, 3, H, W) in [-1, 1].
        low, high: the hysteresis thresholds on 0-255 grey levels.

    Returns:
        (B, 1, H, W) booleans.
    """
    import cv2

    return torch.from_numpy(np.stack([cv2.Canny(a, low, high) > 0 for a in uint8_from_pixels(images)]))[:, None]


def edge_f1(images: Tensor, target: Tensor, tolerance: int = 1) -> Tensor:
    """F1 between the Canny edges of images and an edge map.

    Args:
        images: (B, 3, H, W) in [-1, 1]; resized to the map's size.
        target: boolean edges (1 or B, 1, S, S).
        tolerance: how many pixels apart an edge and its match may be.

    Returns:
        (B,) F1 in [0, 1].
    """
    edges = canny(resize(images.float(), target.shape[-1]))
    target = target.cpu().bool().expand_as(edges)
    grow = lambda m: F.max_pool2d(m.float(), 2 * tolerance + 1, 1, tolerance) > 0  # noqa: E731
    precision = (edges & grow(target)).flatten(1).sum(1) / edges.flatten(1).sum(1).clamp(min=1)
    recall = (target & grow(edges)).flatten(1).sum(1) / target.flatten(1).sum(1).clamp(min=1)
    return 2 * precision * recall / (precision + recall).clamp(min=1e-12)

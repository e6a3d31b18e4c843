"""Measurements on samples: Frechet distance, evaluator accuracy and confidence, diversity, ROC-AUC, RMSE."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from conditions.images import module_device
from guidance.statistics import roc_auc  # noqa: F401 (the suites and guidance.bench name it here)


def _moments(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    return features.mean(0), np.atleast_2d(np.cov(features, rowvar=False))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues clipped)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(values.clip(min=0))) @ vectors.T


def frechet_from_moments(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """The Frechet distance between two Gaussians, in float64 via eigendecompositions.

    Args:
        mu1: (D,) the first mean.
        cov1: (D, D) its covariance.
        mu2: (D,) the second mean.
        cov2: (D, D) its covariance.

    Returns:
        ||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2), at least 0.
    """
    root = _psd_sqrt(cov1)
    cross = np.linalg.eigvalsh(root @ cov2 @ root).clip(min=0)
    value = np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * np.sqrt(cross).sum()
    return float(max(value, 0.0))


def frechet_distance(a: np.ndarray | Tensor, b: np.ndarray | Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets.

    Args:
        a: (N, D) features.
        b: (M, D) features.

    Returns:
        The distance (frechet_from_moments).
    """
    to_array = lambda x: x.detach().cpu().double().numpy() if isinstance(x, Tensor) else np.asarray(x, np.float64)  # noqa: E731
    return frechet_from_moments(*_moments(to_array(a)), *_moments(to_array(b)))


@torch.no_grad()
def features(evaluator, images: Tensor, batch: int = 250) -> Tensor:
    """The evaluator's feature vectors (its `.features`, or CLIP image embeddings).

    Args:
        evaluator: the world's evaluator.
        images: (N, 3, H, W) in [-1, 1].
        batch: images per call.

    Returns:
        (N, D) float32 on the CPU.
    """
    if hasattr(evaluator, "features"):
        embed = evaluator.features
    else:  # conditions.classes.CLIPZeroShot
        from conditions.clip import clip_pixels

        embed = lambda x: evaluator.clip.encode_image(clip_pixels(x, evaluator.size), normalize=True)  # noqa: E731
    device = module_device(evaluator)
    return torch.cat([embed(chunk.to(device)).float().cpu() for chunk in images.split(batch)])


@torch.no_grad()
def probabilities(evaluator, images: Tensor, batch: int = 250) -> Tensor:
    """Class probabilities from a classifier that returns softmax outputs.

    Args:
        evaluator: the classifier.
        images: (N, 3, H, W) in [-1, 1].
        batch: images per call.

    Returns:
        (N, K) float32 on the CPU.
    """
    device = module_device(evaluator)
    return torch.cat([evaluator(chunk.to(device)).float().cpu() for chunk in images.split(batch)])


def accuracy(probs: Tensor, targets: Tensor) -> float:
    """Fraction of samples whose most probable class is the requested one.

    Args:
        probs: (N, K) class probabilities.
        targets: (N,) the requested class indices.

    Returns:
        The fraction.
    """
    return float((probs.argmax(1) == targets).float().mean())


def confidence(probs: Tensor) -> float:
    """Mean probability of the most probable class: how clearly the evaluator recognises a sample.

    Args:
        probs: (N, K) class probabilities.

    Returns:
        The mean.
    """
    return float(probs.max(1).values.mean())


def diversity(feats: Tensor, labels: Tensor) -> float | None:
    """Mean pairwise feature distance between samples of the same class, averaged over classes.

    Args:
        feats: (N, D) features.
        labels: (N,) class indices.

    Returns:
        The mean, or None where no class has two samples.
    """
    per_class = []
    for label in labels.unique():
        group = feats[labels == label]
        if len(group) > 1:
            distances = torch.cdist(group, group)
            per_class.append(distances.sum() / (len(group) * (len(group) - 1)))
    return float(torch.stack(per_class).mean()) if per_class else None


def rmse(a: Tensor, b: Tensor) -> float:
    """Root mean squared difference over all pixels of two image batches.

    Args:
        a: (N, ...) images.
        b: the same shape.

    Returns:
        The RMSE.
    """
    return float((a.float() - b.float()).pow(2).mean().sqrt())


def per_sample_rmse(a: Tensor, b: Tensor) -> list[float]:
    """Each image's root mean squared difference over its pixels, for two batches of the same images (as `rmse`
    takes them).

    Returns:
        One RMSE per image, in order.
    """
    return (a.float() - b.float()).pow(2).flatten(1).mean(1).sqrt().tolist()

"""The stages of the small networks that read pictures: the metrics-only attribute evaluator (and the realism
score's reference), the GFCG guide classifier, the face embedder and the face detector (the style net: style.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from conditions.images import pixels_from_uint8

from .. import FILES
from ..nets import AttributeEvaluator, Classifier, FaceDetectorNet, FaceEmbedder, save_net
from ..vocabulary import ATTRIBUTES, IDENTITY_ATTRIBUTES, UNSEEN
from .config import Config
from .data import degrade, flip, load, moved
from .realism import write_realism_reference
from .training import train_loop


def stage_evaluator(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """Metrics-only attribute evaluator on clean renders (flips, mild noise): class head plus one head per attribute.
    The realism score's reference (realism.py) is written from it beside it.
    """
    loop = cfg.evaluator
    torch.manual_seed(loop.seed)
    images, labels = load(work, "train_images"), torch.from_numpy(np.array(load(work, "train_labels")))
    attributes = torch.from_numpy(np.array(load(work, "train_attributes")))
    net = AttributeEvaluator(cfg.evaluator_widths).to(cfg.device)

    def loss_fn(step: int, g: torch.Generator) -> Tensor:
        idx = torch.randint(len(labels), (loop.batch,), generator=g)
        x = degrade(flip(pixels_from_uint8(images[idx.numpy()]), g), g, max_sigma=0.8, max_noise=0.05, p=0.5)
        x, y, a = moved(cfg, x, labels[idx], attributes[idx])
        class_logits, heads = net.all_logits(x)
        return F.cross_entropy(class_logits, y) + attribute_loss(heads, a, ATTRIBUTES)

    entry = train_loop("evaluator", net, loss_fn, loop, work, resume)
    save_net(net, out / FILES["evaluator"])
    write_realism_reference(out, cfg.device)
    return entry


def attribute_loss(heads: dict[str, Tensor], targets: Tensor, names) -> Tensor:
    """Sum of per-attribute cross-entropies; UNSEEN targets (a bald person's hair colour) are ignored.

    Args:
        heads: logits per attribute name.
        targets: (B, len(ATTRIBUTES)) value indices, in ATTRIBUTES order.
        names: the attributes whose losses are summed.

    Returns:
        The summed loss.
    """
    columns = list(ATTRIBUTES)
    return sum(F.cross_entropy(heads[n], targets[:, columns.index(n)], ignore_index=UNSEEN) for n in names)


def mixed_batch(
    images: np.ndarray, estimates: np.ndarray, sources: np.ndarray, idx: np.ndarray, g: torch.Generator
) -> tuple[Tensor, np.ndarray]:
    """Half clean renders (blur and noise augmented), half decoded clean estimates x0_hat, flipped at random.

    Args:
        images: the (N, 64, 64, 3) uint8 renders.
        estimates: (M, 64, 64, 3) uint8 decoded clean estimates of some of them.
        sources: (M,) the render each estimate comes from.
        idx: (B,) indices of renders; the first half are used.
        g: the batch's seeded generator.

    Returns:
        (pixels (B, 3, 64, 64), the source render index of each).
    """
    half = len(idx) // 2
    pick = torch.randint(len(estimates), (len(idx) - half,), generator=g).numpy()
    clean = degrade(pixels_from_uint8(images[idx[:half]]), g, max_sigma=2.0, max_noise=0.2, p=0.5)
    x = flip(torch.cat([clean, pixels_from_uint8(estimates[pick])]), g)
    return x, np.concatenate([idx[:half], sources[pick]])


def stage_classifier(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """GFCG guide classifier (and the style features' trunk), on renders and decoded clean estimates x0_hat."""
    loop = cfg.classifier
    torch.manual_seed(loop.seed)
    images, labels = load(work, "train_images"), torch.from_numpy(np.array(load(work, "train_labels")))
    estimates, sources = load(work, "train_estimates"), np.asarray(load(work, "train_estimate_sources"))
    net = Classifier(cfg.classifier_widths).to(cfg.device)

    def loss_fn(step: int, g: torch.Generator) -> Tensor:
        x, idx = mixed_batch(images, estimates, sources, torch.randint(len(labels), (loop.batch,), generator=g).numpy(), g)
        x, y = moved(cfg, x, labels[idx])
        return F.cross_entropy(net.logits(x), y)

    entry = train_loop("classifier", net, loss_fn, loop, work, resume)
    save_net(net, out / FILES["classifier"])
    return entry


def supcon_loss(embeddings: Tensor, targets: Tensor, temperature: float = 0.1) -> Tensor:
    """Supervised contrastive loss (Khosla et al. 2020): each anchor's same-identity views against the batch.

    Args:
        embeddings: (B, D) unit embeddings.
        targets: (B,) identity indices.
        temperature: the softmax temperature.

    Returns:
        The mean loss over anchors.
    """
    logits = embeddings @ embeddings.T / temperature
    self_mask = torch.eye(len(targets), dtype=torch.bool, device=targets.device)
    log_prob = logits.masked_fill(self_mask, -math.inf).log_softmax(1)
    positive = (targets[:, None] == targets[None]) & ~self_mask
    return -(log_prob.masked_fill(~positive, 0).sum(1) / positive.sum(1).clamp(min=1)).mean()


def identity_batch(groups: list[np.ndarray], batch: int, views: int, g: torch.Generator) -> np.ndarray:
    """Image indices: `views` random images of each of batch // views random identities (P x K sampling).

    Args:
        groups: per identity, the indices of its images.
        batch: the batch size.
        views: images per identity.
        g: the batch's seeded generator.

    Returns:
        (batch // views * views,) image indices.
    """
    people = torch.randperm(len(groups), generator=g)[: batch // views].tolist()
    return np.concatenate([groups[p][torch.randint(len(groups[p]), (views,), generator=g).numpy()] for p in people])


def adversarial(loss_of, x: Tensor, radius: float, g: torch.Generator, steps: int = 2) -> Tensor:
    """Inputs moved within an L2 ball of `radius` per image to raise the loss (projected gradient ascent, Madry et al.
    2018). A network trained on them has gradients that change what a person sees (Santurkar et al. 2019), which
    face guidance follows (assets/world/README.md).

    Args:
        loss_of: the loss of a batch of inputs, differentiable in them.
        x: (B, C, H, W) inputs in [-1, 1].
        radius: the L2 radius per image.
        g: the batch's seeded generator (the random start).
        steps: gradient ascent steps.

    Returns:
        The moved inputs, clamped to [-1, 1] and detached.
    """
    delta = torch.randn(x.shape, generator=g).to(x.device)
    delta = 0.5 * radius * delta / delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    for _ in range(steps):
        delta.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_of(x + delta), delta)
        step = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        delta = delta.detach() + (radius / steps * 1.5) * step
        delta = delta * (radius / delta.flatten(1).norm(dim=1).clamp_min(radius)).view(-1, 1, 1, 1)
    return (x + delta.detach()).clamp(-1, 1)


def stage_face(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """Face embedder: supervised contrastive loss on P x K identity batches, plus identity-attribute heads.

    Half of each identity's views are decoded clean estimates x0_hat of its renders, so that the embedding (and
    its gradient) reads what a person sees on a blurry estimate: hair, glasses, beard, skin.

    Returns:
        The run's record with the number of identities.
    """
    loop = cfg.face
    torch.manual_seed(loop.seed)
    images, attributes = load(work, "face_images"), torch.from_numpy(np.array(load(work, "face_attributes")))
    estimates, sources = load(work, "face_estimates"), np.asarray(load(work, "face_estimate_sources"))
    _, targets = np.unique(np.asarray(load(work, "face_ids")), return_inverse=True)
    groups = [np.flatnonzero(targets == k) for k in range(targets.max() + 1)]
    estimate_of = {int(s): i for i, s in enumerate(sources)}
    targets = torch.from_numpy(targets)
    net = FaceEmbedder(cfg.face_widths).to(cfg.device)

    def loss_fn(step: int, g: torch.Generator) -> Tensor:
        idx = identity_batch(groups, loop.batch, 4, g)
        x = degrade(pixels_from_uint8(images[idx]), g, max_sigma=1.5, max_noise=0.15, p=0.5)
        swap = [k for k, i in enumerate(idx) if k % 2 and int(i) in estimate_of]
        if swap:
            x[swap] = pixels_from_uint8(estimates[[estimate_of[int(idx[k])] for k in swap]])
        x, ids, a = moved(cfg, flip(x, g), targets[idx], attributes[idx])

        def loss_of(inputs: Tensor) -> Tensor:
            embeddings, heads = net.with_attributes(inputs)
            return supcon_loss(embeddings, ids) + 0.5 * attribute_loss(heads, a, IDENTITY_ATTRIBUTES)

        if cfg.face_adversarial > 0:
            x = adversarial(loss_of, x, cfg.face_adversarial, g)
        return loss_of(x)

    entry = train_loop("face", net, loss_fn, loop, work, resume)
    save_net(net, out / FILES["face_embedder"])
    return {**entry, "identities": len(groups)}


def stage_detector(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """Face / no-face classifier: half faces (renders, and clean estimates of late steps), half negatives."""
    loop = cfg.detector
    torch.manual_seed(loop.seed)
    faces, negatives_ = load(work, "train_images"), load(work, "negatives")
    estimates, timesteps = load(work, "train_estimates"), np.asarray(load(work, "train_estimate_timesteps"))
    late = np.flatnonzero(timesteps < 300)
    net = FaceDetectorNet(cfg.detector_widths).to(cfg.device)
    half = loop.batch // 2

    def loss_fn(step: int, g: torch.Generator) -> Tensor:
        pos = torch.randint(len(faces), (half - half // 4,), generator=g).numpy()
        pos_estimates = late[torch.randint(len(late), (half // 4,), generator=g).numpy()]
        neg = torch.randint(len(negatives_), (half,), generator=g).numpy()
        x = flip(pixels_from_uint8(np.concatenate([faces[pos], estimates[pos_estimates], negatives_[neg]])), g)
        x, y = moved(cfg, x, torch.cat([torch.ones(half), torch.zeros(half)]))
        return F.binary_cross_entropy_with_logits(net(x), y)

    entry = train_loop("detector", net, loss_fn, loop, work, resume)
    save_net(net, out / FILES["face_detector"])
    return entry

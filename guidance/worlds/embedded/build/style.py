"""The `style` stage: the network whose early features the style energy reads, trained on renders and on
full-frame textures (what a style reference looks like), every input recoloured at random."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from conditions.images import pixels_from_uint8

from .. import FILES
from ..nets import StyleNet, save_net
from ..vocabulary import ATTRIBUTES, BG_PATTERNS, STYLE_ATTRIBUTES, UNSEEN
from .config import Config
from .data import degrade, flip, load, moved
from ..renderer.textures import style_reference
from .training import train_loop


def textures(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-frame two-colour textures of random kind, colours, period and angle: what a style reference looks like.

    Args:
        n: how many.
        seed: the seed of every random draw.

    Returns:
        ((n, 64, 64, 3) uint8 textures, (n,) their kinds as indices of BG_PATTERNS).
    """
    rng = np.random.default_rng(seed)
    kinds = rng.integers(len(BG_PATTERNS), size=n)
    images = [
        np.asarray(
            style_reference(
                BG_PATTERNS[k],
                tuple(tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(2)),
                float(rng.uniform(7.0, 15.0)),
                float(rng.choice([0.0, 0.25, 0.5, 0.75]) * math.pi),
                size=64,
            )
        )
        for k in kinds
    ]
    return np.stack(images), kinds


def recolour(images: Tensor, g: torch.Generator) -> Tensor:
    """Per sample: the colour channels in random order, each inverted with probability 1/2 and scaled by a random
    gain, so that a pattern is told apart by its shape, not its colours.

    Args:
        images: (B, 3, H, W) pixels in [-1, 1].
        g: the batch's seeded generator.

    Returns:
        The recoloured pixels, in [-1, 1].
    """
    b = images.shape[0]
    order = torch.stack([torch.randperm(3, generator=g) for _ in range(b)])
    mixed = images.gather(1, order.view(b, 3, 1, 1).expand_as(images))
    sign = torch.where(torch.rand(b, 3, generator=g) < 0.5, -1.0, 1.0)
    gain = 0.6 + 0.4 * torch.rand(b, 3, generator=g)
    return (mixed * (sign * gain).view(b, 3, 1, 1)).clamp(-1, 1)


def stage_style(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """The style net: background pattern and clothing texture of renders (blur and noise augmented) and background
    pattern of full-frame textures (a quarter of each batch), every input recoloured at random (`recolour`).
    """
    loop = cfg.style
    torch.manual_seed(loop.seed)
    images, attributes = load(work, "train_images"), torch.from_numpy(np.array(load(work, "train_attributes")))
    columns = [list(ATTRIBUTES).index(name) for name in STYLE_ATTRIBUTES]
    frames, kinds = textures(cfg.n_textures, loop.seed)
    frame_targets = torch.full((len(kinds), len(columns)), UNSEEN)
    frame_targets[:, STYLE_ATTRIBUTES.index("background")] = torch.from_numpy(kinds)
    net = StyleNet(cfg.style_widths).to(cfg.device)
    quarter = loop.batch // 4

    def loss_fn(step: int, g: torch.Generator) -> Tensor:
        idx = torch.randint(len(images), (loop.batch - quarter,), generator=g).numpy()
        pick = torch.randint(len(frames), (quarter,), generator=g).numpy()
        renders_ = degrade(pixels_from_uint8(images[idx]), g, max_sigma=2.0, max_noise=0.2, p=0.5)
        x = recolour(flip(torch.cat([renders_, pixels_from_uint8(frames[pick])]), g), g)
        targets = torch.cat([attributes[idx][:, columns], frame_targets[pick]])
        x, targets = moved(cfg, x, targets)
        logits = net(x)
        return sum(F.cross_entropy(logits[name], targets[:, k], ignore_index=UNSEEN) for k, name in enumerate(STYLE_ATTRIBUTES))

    entry = train_loop("style", net, loss_fn, loop, work, resume)
    save_net(net, out / FILES["style_net"])
    return entry

"""Class probabilities (for GFCG and for metrics) and the class energy."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from guidance.energy import Energy
from guidance.errors import MethodConfigError

from .clip import CLIP_MODEL, CLIP_WEIGHTS, clip_pixels, load_clip


class CLIPZeroShot(nn.Module):
    """OpenCLIP zero-shot probabilities over label prompts "a photo of a {name}".

    Args:
        class_names: the labels; `forward` returns their probabilities in this order.
        model, pretrained: the OpenCLIP model and weights (`pretrained=None`: random weights).
        template: the prompt each label is written into.
        device: where the model runs.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        model: str = CLIP_MODEL,
        pretrained: str | None = CLIP_WEIGHTS,
        template: str = "a photo of a {}",
        device="cpu",
    ):
        super().__init__()
        self.class_names = tuple(class_names)
        self.clip, tokenizer = load_clip(model, pretrained, device)
        self.size = (
            self.clip.visual.image_size[0] if isinstance(self.clip.visual.image_size, tuple) else self.clip.visual.image_size
        )
        with torch.no_grad():
            text = self.clip.encode_text(tokenizer([template.format(n) for n in self.class_names]).to(device), normalize=True)
        self.register_buffer("text_features", text)

    def forward(self, images: Tensor) -> Tensor:
        features = self.clip.encode_image(clip_pixels(images, self.size), normalize=True)
        return (self.clip.logit_scale.exp() * features @ self.text_features.T).softmax(-1)


class ClassEnergy(Energy):
    """E = -log p(c | x0) under a classifier; the metric is p(c | x0).

    Args:
        classifier: a `guidance.energy.Classifier` (class probabilities of [-1, 1] pixels, with `class_names`).
        targets: one class name per sample of the batch.

    Raises:
        MethodConfigError: a target the classifier does not know.
    """

    name, metric_name = "class", "class_probability"

    def __init__(self, classifier: nn.Module, targets: Sequence[str]):
        super().__init__()
        self.classifier = classifier
        known = tuple(classifier.class_names)
        unknown = [t for t in targets if t not in known]
        if unknown:
            raise MethodConfigError(f"unknown class {unknown[0]!r}; this world knows: {', '.join(known)}")
        self.register_buffer("targets", torch.tensor([known.index(t) for t in targets]))

    def probabilities(self, images: Tensor) -> Tensor:
        """(B,) probability of each sample's target class; images (B, 3, H, W) in [-1, 1]."""
        return self.classifier(images).gather(1, self.targets[:, None].to(images.device))[:, 0]

    def forward(self, images: Tensor) -> Tensor:
        return -self.probabilities(images).clamp(min=1e-12).log()

    @torch.no_grad()
    def metric(self, images: Tensor) -> Tensor:
        return self.probabilities(images)

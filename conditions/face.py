"""Face-identity energy: a detector finds the face in the reference, an embedder compares identities.

Real photos use facenet-pytorch, as Universal Guidance did: MTCNN boxes (no gradient) and
InceptionResnetV1 (vggface2) embeddings of a differentiable crop resized to 160. The embedded
world substitutes its own detector and embedder through the two protocols (guidance.energy).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor, nn

from guidance.energy import Box, Energy, FaceDetector, FaceEmbedder
from guidance.errors import MethodConfigError, NoFaceFoundError, WeightsUnavailableError

from .images import module_device, resize, to_pil, to_tensor

DISTANCES = ("l2", "l1", "cosine")


class MTCNNDetector:
    """facenet-pytorch's MTCNN (its weights ship in the wheel) as a `guidance.energy.FaceDetector`.

    Args:
        min_probability: the detection confidence below which `box` reports no face.
        margin: how much wider and taller than MTCNN's box the returned box is, as a share of its size.
        device: where MTCNN runs.
    """

    no_face_hint = "upload a clear, front-facing photo"
    fallback_box = (0.25, 0.15, 0.75, 0.75)  # [ours] a centred head-sized box: "a headshot photo" puts the face there

    def __init__(self, min_probability: float = 0.9, margin: float = 0.1, device: str | torch.device = "cpu"):
        from facenet_pytorch import MTCNN

        self.mtcnn = MTCNN(keep_all=False, device=device)
        self.min_probability, self.margin = min_probability, margin

    def box(self, image: Image.Image) -> Box | None:
        """The most confident face's box as fractions of the image's size, or None below `min_probability`."""
        boxes, probs = self.mtcnn.detect(image)
        if boxes is None or probs[0] is None or probs[0] < self.min_probability:
            return None
        x0, y0, x1, y1 = boxes[0].tolist()
        mx, my = self.margin * (x1 - x0) / 2, self.margin * (y1 - y0) / 2
        w, h = image.size
        return (max(0.0, (x0 - mx) / w), max(0.0, (y0 - my) / h), min(1.0, (x1 + mx) / w), min(1.0, (y1 + my) / h))


class FacenetEmbedder(nn.Module):
    """InceptionResnetV1 on 160x160 crops with facenet's standardisation (x - 127.5) / 128.

    Args:
        pretrained: facenet-pytorch's weights ("vggface2" or "casia-webface"); None gives random weights.

    Raises:
        WeightsUnavailableError: the weights are not in the torch cache.
    """

    input_size = 160

    def __init__(self, pretrained: str | None = "vggface2"):
        super().__init__()
        from facenet_pytorch import InceptionResnetV1

        if pretrained is not None and not _facenet_weights_cached(pretrained):
            raise WeightsUnavailableError(
                f"InceptionResnetV1 {pretrained} weights",
                str(_facenet_cache()),
                "facenet-pytorch downloads them on first use; run once with network access, or use the embedded world.",
            )
        self.net = InceptionResnetV1(pretrained=pretrained).eval().requires_grad_(False)

    def forward(self, crops: Tensor) -> Tensor:
        return self.net(crops * (127.5 / 128))


def _facenet_cache() -> Path:
    return Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "checkpoints"


def _facenet_weights_cached(pretrained: str) -> bool:
    return any(_facenet_cache().glob(f"*{pretrained}*")) if _facenet_cache().exists() else False


def crop(images: Tensor, box: Box, size: int) -> Tensor:
    """Differentiable crop of a box.

    Args:
        images: (B, 3, H, W).
        box: (x0, y0, x1, y1) as fractions of width and height.
        size: the side of the square output in pixels.

    Returns:
        (B, 3, size, size).
    """
    h, w = images.shape[-2:]
    x0, y0, x1, y1 = round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)
    return resize(images[..., y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)], size)


def distance(a: Tensor, b: Tensor, kind: str) -> Tensor:
    """Per-sample distance between embeddings and a reference embedding.

    Args:
        a: (B, D) embeddings.
        b: (1, D) reference.
        kind: "l2", "l1" or "cosine" (1 - cosine similarity).

    Returns:
        (B,) distances.
    """
    if kind == "l2":
        return (a - b).norm(dim=1)
    if kind == "l1":
        return (a - b).abs().sum(1)
    return 1 - torch.cosine_similarity(a, b.expand_as(a), dim=1)


class FaceIDEnergy(Energy):
    """E = distance(embed(crop(x0, box of x0)), embed(crop(reference, box of reference))).

    The reference is cropped at the face its detector finds. Each generated sample is cropped at the face found
    in it, as Universal Guidance does: the detector (no gradient) runs on the decoded clean estimates every
    `redetect_every` calls, counted from the last `reset` (the sampler resets before each run and before measuring
    the final images), and a sample is cropped at the detector's `fallback_box` until a face is found in it
    (docs/methods.md, Face ID steps 1-3).

    Args:
        reference: the face to match.
        embedder: a `guidance.energy.FaceEmbedder`.
        detector: a `guidance.energy.FaceDetector`.
        distance: "l2" (FreeDoM, default), "l1" (Universal Guidance) or "cosine".
        redetect_every: how many calls the detected boxes of the samples are kept for.

    Raises:
        MethodConfigError: an unknown distance.
        NoFaceFoundError: the detector finds no face in the reference.
    """

    name, metric_name = "face", "id_distance"

    def __init__(
        self,
        reference: Image.Image,
        embedder: FaceEmbedder,
        detector: FaceDetector,
        distance: str = "l2",
        redetect_every: int = 5,
    ):
        super().__init__()
        if distance not in DISTANCES:
            raise MethodConfigError(f"distance must be one of {DISTANCES}, not {distance!r}")
        box = detector.box(reference)
        if box is None:
            raise NoFaceFoundError(f"no face was found in the reference image; {detector.no_face_hint}")
        self.embedder, self.detector, self.box, self.distance = embedder, detector, box, distance
        self.redetect_every = redetect_every
        self.reset()
        with torch.no_grad():
            self.reference_crop = crop(to_tensor(reference).to(module_device(embedder)), box, embedder.input_size)
            self.register_buffer("reference_embedding", embedder(self.reference_crop).detach())

    def reset(self) -> None:
        """No boxes and a call count of 0: the next call detects the face in the images it is given."""
        self.calls, self.sample_boxes = 0, []

    def boxes(self, images: Tensor) -> list[Box]:
        """Each sample's face box: re-detected every `redetect_every` calls (and for a new batch size)."""
        if self.calls % self.redetect_every == 0 or len(self.sample_boxes) != len(images):
            found = [self.detector.box(image) for image in to_pil(images.detach())]
            self.sample_boxes = [box or self.detector.fallback_box for box in found]
        self.calls += 1
        return self.sample_boxes

    def forward(self, images: Tensor) -> Tensor:
        size = self.embedder.input_size
        crops = torch.cat([crop(image[None], box, size) for image, box in zip(images, self.boxes(images))])
        return distance(self.embedder(crops), self.reference_embedding, self.distance)

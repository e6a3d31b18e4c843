"""Small CNNs of the embedded world: guide classifier, attribute evaluator, face embedder, face detector, style net.

Every network takes pixels (B, 3, 64, 64) in [-1, 1] (other sizes are resized to 64). Each is saved as
one safetensors file whose metadata holds its constructor arguments (`save_net` / `load_net`). A net's `widths` are
its channels: the stem's, then one stride-2 stage's per further width (ConvTrunk), the last one its feature size.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, safe_open, save_file
from torch import Tensor, nn

from conditions.images import pixels_from_uint8

from .vocabulary import ATTRIBUTES, CLASS_NAMES, IDENTITY_ATTRIBUTES, STYLE_ATTRIBUTES

SIZE = 64


def _fit(images: Tensor) -> Tensor:
    """Pixels resized (bilinear, antialiased when shrinking) to SIZE x SIZE."""
    if images.shape[-2:] == (SIZE, SIZE):
        return images
    return F.interpolate(images, size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=images.shape[-1] > SIZE)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution, GroupNorm (batch-independent, so batch 1 behaves like training), SiLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(min(8, cout // 4), cout), nn.SiLU())


class ConvTrunk(nn.Module):
    """A stem conv at full resolution, then one stride-2 stage per further width (two convs each).

    Args:
        widths: the stem's channels, then each stage's.
    """

    def __init__(self, widths: tuple[int, ...]):
        super().__init__()
        self.stem = _conv(3, widths[0])
        self.stages = nn.ModuleList(nn.Sequential(_conv(a, b, 2), _conv(b, b)) for a, b in zip(widths, widths[1:]))

    def forward(self, images: Tensor, stages: int | None = None) -> Tensor:
        """The feature map after some of the stages.

        Args:
            images: (B, 3, H, W) pixels in [-1, 1].
            stages: how many stages to run after the stem (None: all).

        Returns:
            (B, C, h, w) features.
        """
        x = self.stem(_fit(images))
        for stage in self.stages[:stages]:
            x = stage(x)
        return x


class Classifier(nn.Module):
    """The GFCG guide classifier: ConvTrunk, global average pool, linear head; returns softmax probabilities.

    Args:
        widths: its trunk's channels.
        classes: how many classes it tells apart (CLASS_NAMES).
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128), classes: int = len(CLASS_NAMES)):
        super().__init__()
        self.config = {"widths": list(widths), "classes": classes}
        self.class_names = CLASS_NAMES
        self.trunk = ConvTrunk(tuple(widths))
        self.head = nn.Linear(widths[-1], classes)

    def logits(self, images: Tensor) -> Tensor:
        """(B, classes) class logits of pixels."""
        return self.head(self.trunk(images).mean((2, 3)))

    def forward(self, images: Tensor) -> Tensor:
        """(B, classes) class probabilities of pixels."""
        return self.logits(images).softmax(-1)


class _ResBlock(nn.Module):
    """Pre-activation residual block with BatchNorm and ReLU."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, 1, 1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, 1, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class AttributeEvaluator(nn.Module):
    """The metrics-only evaluator: a different architecture from the guiding nets (5x5 stem, max-pooling, residual
    BatchNorm blocks), trained on clean renders only, never used for guidance.

    `forward` gives class probabilities, `features` the penultimate (B, widths[-1]) vector used for Frechet
    distances, and `attributes` the most probable value of each of the renderer's ATTRIBUTES.

    Args:
        widths: its channels, stage by stage.
        classes: how many classes it tells apart (CLASS_NAMES).
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128), classes: int = len(CLASS_NAMES)):
        super().__init__()
        self.config = {"widths": list(widths), "classes": classes}
        self.class_names = CLASS_NAMES
        layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 5, 1, 2), nn.MaxPool2d(2), _ResBlock(widths[0])]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.MaxPool2d(2), nn.Conv2d(a, b, 1), _ResBlock(b)]
        self.body = nn.Sequential(*layers, nn.BatchNorm2d(widths[-1]), nn.ReLU())
        self.head = nn.Linear(widths[-1], classes)
        self.attribute_heads = nn.ModuleDict({name: nn.Linear(widths[-1], len(values)) for name, values in ATTRIBUTES.items()})

    def features(self, images: Tensor) -> Tensor:
        """(B, widths[-1]) penultimate features of pixels."""
        return self.body(_fit(images)).mean((2, 3))

    def all_logits(self, images: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Class logits and per-attribute logits."""
        features = self.features(images)
        return self.head(features), {name: head(features) for name, head in self.attribute_heads.items()}

    def forward(self, images: Tensor) -> Tensor:
        """(B, classes) class probabilities of pixels."""
        return self.head(self.features(images)).softmax(-1)

    def attributes(self, images: Tensor) -> Tensor:
        """(B, len(ATTRIBUTES)) indices of the most probable value of each attribute, in ATTRIBUTES order."""
        _, heads = self.all_logits(images)
        return torch.stack([heads[name].argmax(1) for name in ATTRIBUTES], 1)

    def background(self, images: Tensor) -> Tensor:
        """(B,) index of the background pattern it reads (ATTRIBUTES["background"]): the world's PatternJudge."""
        return self.attribute_heads["background"](self.features(images)).argmax(1)


class FaceEmbedder(nn.Module):
    """Identity embedding of a face crop (conditions.face.FaceEmbedder): L2-normalised (B, dim) vectors.

    Trained with a supervised contrastive loss on identity batches and auxiliary heads for the identity attributes
    (hair colour and style, skin, glasses, beard), so that its distance weighs what a person sees.

    Args:
        widths: its trunk's channels.
        dim: the embedding's size.
    """

    input_size = SIZE

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128), dim: int = 128):
        super().__init__()
        self.config = {"widths": list(widths), "dim": dim}
        self.trunk = ConvTrunk(tuple(widths))
        self.head = nn.Linear(widths[-1], dim)
        self.attribute_heads = nn.ModuleDict({name: nn.Linear(dim, len(ATTRIBUTES[name])) for name in IDENTITY_ATTRIBUTES})

    def with_attributes(self, crops: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Unit embeddings and the identity-attribute logits read off them (training only)."""
        raw = self.head(self.trunk(crops).mean((2, 3)))
        return F.normalize(raw, dim=1), {name: head(raw) for name, head in self.attribute_heads.items()}

    def forward(self, crops: Tensor) -> Tensor:
        """(B, dim) unit embeddings of face crops (pixels)."""
        return F.normalize(self.head(self.trunk(crops).mean((2, 3))), dim=1)


class FaceDetectorNet(nn.Module):
    """Binary 'is there a rendered face' classifier; returns the logit (B,); `widths` as in the module docstring."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64)):
        super().__init__()
        self.config = {"widths": list(widths)}
        self.trunk = ConvTrunk(tuple(widths))
        self.head = nn.Linear(widths[-1], 1)

    def forward(self, images: Tensor) -> Tensor:
        """(B,) logits of p(face) of pixels."""
        return self.head(self.trunk(images).mean((2, 3)))[:, 0]


class FaceDetector:
    """conditions.face.FaceDetector: the whole picture is the face box when p(face) > threshold, else None.

    Rendered faces are always centred and fill the frame, so a classifier suffices as a detector. It is trained to
    reject photographs: this world knows only its own cartoon faces.

    Args:
        net: the trained FaceDetectorNet.
        threshold: the p(face) above which a picture holds a face.
    """

    fallback_box = (0.0, 0.0, 1.0, 1.0)  # a rendered face fills the frame
    no_face_hint = (
        "the embedded world knows only its own rendered cartoon faces (like the examples). "
        "For photographs, run the app on a Stable Diffusion model (--model, or GUIDANCE_MODEL)"
    )

    def __init__(self, net: FaceDetectorNet, threshold: float = 0.9):
        self.net, self.threshold = net, threshold

    @torch.no_grad()
    def probability(self, image: Image.Image) -> float:
        """p(face) of a picture, resized to 64 x 64.

        Args:
            image: the picture.

        Returns:
            The probability.
        """
        square = image.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
        pixels = pixels_from_uint8(np.asarray(square)[None])
        device = next(self.net.parameters()).device
        return float(torch.sigmoid(self.net(pixels.to(device)))[0])

    def box(self, image: Image.Image) -> tuple[float, float, float, float] | None:
        """The whole picture as (left, top, right, bottom) fractions where p(face) > threshold, else None."""
        return (0.0, 0.0, 1.0, 1.0) if self.probability(image) > self.threshold else None


class StyleNet(nn.Module):
    """The network behind the style features: a ConvTrunk trained to name the background pattern and the clothing
    texture (STYLE_ATTRIBUTES) of renders and of full-frame textures under random colours, so that its early
    features respond to pattern and texture rather than to colour or identity. It guides; the evaluator measures.
    `widths` as in the module docstring.
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64)):
        super().__init__()
        self.config = {"widths": list(widths)}
        self.trunk = ConvTrunk(tuple(widths))
        self.heads = nn.ModuleDict({name: nn.Linear(widths[-1], len(ATTRIBUTES[name])) for name in STYLE_ATTRIBUTES})

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Logits of each of STYLE_ATTRIBUTES (training and checks; guidance reads `StyleFeatures`)."""
        pooled = self.trunk(images).mean((2, 3))
        return {name: head(pooled) for name, head in self.heads.items()}


class StyleFeatures(nn.Module):
    """conditions.style.StyleFeatures: a trunk's stem and first `stages` stages as tokens (B, N, C), read from the
    picture turned by each of `angles` (radians), the tokens of every turn concatenated.

    The Gram of the concatenation is the sum of the turns' Grams, so a pattern counts alike at each of those
    orientations (docs/methods.md, Style, the embedded world's features). Images are resized to 64 and turned about
    their centre with reflected borders, so the token count is fixed: N = len(angles) * (64 / 2**stages)**2.

    Args:
        trunk: the trained trunk (StyleNet.trunk).
        stages: how many of its stages run after the stem.
        angles: the turns, in radians; 0 reads the picture as it is.
    """

    def __init__(self, trunk: ConvTrunk, stages: int = 1, angles: tuple[float, ...] = (0.0,)):
        super().__init__()
        self.trunk, self.stages, self.angles = trunk, stages, angles

    def forward(self, images: Tensor) -> Tensor:
        """(B, N, C) tokens of pixels, every turn's in `angles` order."""
        images = _fit(images)
        turns = [images if angle == 0 else rotate(images, angle) for angle in self.angles]
        return torch.cat([self.trunk(turn, self.stages).flatten(2).transpose(1, 2) for turn in turns], 1)


def rotate(images: Tensor, angle: float) -> Tensor:
    """Pixels turned about their centre (bilinear, reflected borders); differentiable.

    Args:
        images: (B, C, H, W) pixels.
        angle: the turn, in radians.

    Returns:
        The turned pixels, the same shape.
    """
    c, s = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[c, -s, 0.0], [s, c, 0.0]], dtype=images.dtype, device=images.device).expand(len(images), 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


@torch.no_grad()
def evaluator_features(evaluator: AttributeEvaluator, images: Tensor, batch: int = 250) -> Tensor:
    """The evaluator's feature vectors of pixels, computed where the evaluator is, in chunks.

    Args:
        evaluator: the world's AttributeEvaluator.
        images: (N, 3, H, W) pixels in [-1, 1], on any device.
        batch: images per evaluator call.

    Returns:
        (N, D) float32 features on the CPU.
    """
    device = next(evaluator.parameters()).device
    return torch.cat([evaluator.features(chunk.to(device)).float().cpu() for chunk in images.split(batch)])


class RealismScore:
    """Per image, how deep inside the held-out renders' cloud of evaluator features it lies: the k-NN realism
    score of Kynkäänniemi et al. (2019), max_i r_i / ||f(x) - f_i|| over real features f_i, r_i the distance from
    f_i to its k-th nearest real neighbour, over the reals whose radius is at most the median (as the paper does,
    so that outliers' wide balls do not admit anything). >= 1 where the image falls within some real's k-NN ball;
    a picture unlike any render scores below 1 (docs/methods.md, Realism).

    The reference (the kept reals' features and radii) is computed by the build pipeline
    (guidance.worlds.embedded.build.realism) and shipped with the world; `load` reads it.

    Args:
        evaluator: the world's AttributeEvaluator, whose features the reference holds.
        features: (R, D) features of the reals kept.
        radii: (R,) their k-NN radii.
    """

    def __init__(self, evaluator: AttributeEvaluator, features: Tensor, radii: Tensor):
        if features.ndim != 2 or radii.shape != features.shape[:1]:
            shapes = f"{tuple(features.shape)} and {tuple(radii.shape)}"
            raise ValueError(f"a realism reference holds (R, D) features and (R,) radii, not {shapes}")
        self.evaluator, self.features, self.radii = evaluator, features.float(), radii.float()

    @classmethod
    def load(cls, evaluator: AttributeEvaluator, path: str | Path) -> RealismScore:
        """The realism score of a reference file written by the build pipeline.

        Args:
            evaluator: the world's AttributeEvaluator.
            path: the safetensors file with "features" and "radii".

        Returns:
            The RealismScore.
        """
        reference = load_file(str(path))
        return cls(evaluator, reference["features"], reference["radii"])

    def __call__(self, images: Tensor) -> Tensor:
        """(B,) realism scores of pixels (B, 3, H, W) in [-1, 1], on the CPU."""
        distances = torch.cdist(evaluator_features(self.evaluator, images), self.features)
        return (self.radii[None] / distances.clamp(min=1e-12)).max(1).values


def save_net(net: nn.Module, path: str | Path) -> None:
    """Saves a network: its weights, with its class name and constructor arguments (`net.config`) as metadata.

    Args:
        net: one of the NETS classes.
        path: the safetensors file to write.
    """
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata={"class": type(net).__name__, "config": json.dumps(net.config)})


NETS = {cls.__name__: cls for cls in (Classifier, AttributeEvaluator, FaceEmbedder, FaceDetectorNet, StyleNet)}


def load_net(path: str | Path, device: str | torch.device = "cpu", expected: str | None = None) -> nn.Module:
    """A network saved by `save_net`, in eval mode with frozen parameters.

    Args:
        path: the safetensors file.
        device: where the network goes.
        expected: the class name it must hold (None: any of NETS).

    Returns:
        The network.

    Raises:
        ValueError: the file holds another class than `expected`.
    """
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    if expected is not None and meta["class"] != expected:
        raise ValueError(f"{Path(path).name} holds a {meta['class']}, not a {expected}")
    net = NETS[meta["class"]](**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(meta["config"]).items()})
    net.load_state_dict(load_file(str(path)))
    return net.to(device).eval().requires_grad_(False)

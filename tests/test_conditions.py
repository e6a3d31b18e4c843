"""Energies, annotators and image reading: offline, with random weights where real ones would download."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from conditions.classes import ClassEnergy, CLIPZeroShot
from conditions.clip import load_clip
from conditions.control import EdgeEnergy, annotate, canny, edge_f1, map_tensor
from conditions.face import FaceIDEnergy, FacenetEmbedder, MTCNNDetector
from conditions.images import load_image, to_tensor
from conditions.style import CLIPPatchTokens, StyleEnergy
from guidance.errors import ImageInputError, NoFaceFoundError, WeightsUnavailableError


def picture(seed=0, size=96) -> Image.Image:
    rng = np.random.default_rng(seed)
    array = np.zeros((size, size, 3), np.uint8)
    array[size // 4 : 3 * size // 4, size // 3 : 2 * size // 3] = rng.integers(0, 255, 3)
    array += rng.integers(0, 40, array.shape, dtype=np.uint8)
    return Image.fromarray(array)


def png_bytes(image: Image.Image, fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


class FixedBox:
    no_face_hint, fallback_box = "", (0.0, 0.0, 1.0, 1.0)

    def box(self, image):
        return (0.25, 0.25, 0.75, 0.75)


@pytest.fixture(scope="module")
def facenet():
    torch.manual_seed(0)
    return FacenetEmbedder(pretrained=None)


def test_face_energy_is_zero_for_the_reference_and_differentiable(facenet):
    reference = picture(1)
    energy = FaceIDEnergy(reference, facenet, FixedBox())
    same = to_tensor(reference).requires_grad_(True)
    other = to_tensor(picture(2))
    assert energy(same).item() < 1e-4 < energy(other).item()
    energy(other.requires_grad_(True)).sum().backward()
    assert other.grad.abs().sum() > 0


def test_no_face_in_the_reference_is_a_typed_error(facenet):
    with pytest.raises(NoFaceFoundError, match="no face"):
        FaceIDEnergy(Image.new("RGB", (160, 160), (90, 140, 200)), facenet, MTCNNDetector())


def test_facenet_weights_missing_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailableError, match="vggface2"):
        FacenetEmbedder("vggface2")


def test_clip_weights_missing_offline():
    with pytest.raises(WeightsUnavailableError, match="ViT-B-16"):
        load_clip("ViT-B-16", "openai")


@pytest.fixture(scope="module")
def clip_tokens():
    torch.manual_seed(0)
    return CLIPPatchTokens(pretrained=None)


def test_style_tokens_are_patch_tokens_after_block_three(clip_tokens):
    tokens = clip_tokens(torch.zeros(2, 3, 64, 64))
    assert tokens.shape == (2, 196, 768)
    assert len(clip_tokens.visual.transformer.resblocks) == 3


def test_style_energy_prefers_the_style_image(clip_tokens):
    style = picture(3)
    energy = StyleEnergy(style, clip_tokens)
    itself = to_tensor(style.resize((224, 224), Image.BILINEAR))  # as the reference is read
    assert energy(itself).item() < 1e-2 * energy(to_tensor(picture(4), 224)).item()


def test_style_reference_is_resized_whole_to_224_bilinearly():
    """FreeDoM squashes the whole reference to 224x224 (PIL bilinear); a centre crop would drop a wide image's sides."""
    array = np.zeros((100, 300, 3), np.uint8)
    array[:, :100] = (255, 0, 0)  # a red left third that a centre crop loses
    reference = Image.fromarray(array)
    energy = StyleEnergy(reference, lambda images: images.flatten(2).transpose(1, 2))  # pixels as tokens
    whole, centre = to_tensor(reference.resize((224, 224), Image.BILINEAR)), to_tensor(reference, 224)
    assert energy(whole).item() < 1e-3 * energy(centre).item()


def test_zero_shot_classifier_and_class_energy():
    torch.manual_seed(0)
    classifier = CLIPZeroShot(["cat", "dog", "owl"], model="ViT-B-32", pretrained=None)
    probs = classifier(torch.zeros(2, 3, 32, 32))
    assert probs.shape == (2, 3) and torch.allclose(probs.sum(1), torch.ones(2))
    energy = ClassEnergy(classifier, ["dog", "owl"])
    assert torch.allclose(energy(torch.zeros(2, 3, 32, 32)), -probs[:, [1, 2]].diagonal().log(), atol=1e-5)


def test_canny_map_and_edge_energy_follow_the_image():
    image = picture(5, 64)
    control_map = annotate(image, "canny")
    assert control_map.size == image.size
    target = map_tensor(control_map, 64)
    energy = EdgeEnergy(target)
    own, other = to_tensor(image), to_tensor(picture(6, 64).transpose(Image.ROTATE_90))
    assert energy(own).item() < energy(other).item()
    assert edge_f1(own, target[:, :1] > 0.5).item() > 0.95
    assert edge_f1(other, target[:, :1] > 0.5).item() < 0.5
    assert canny(own).shape == (1, 1, 64, 64)


def test_annotators_needing_weights_say_so():
    with pytest.raises(WeightsUnavailableError, match="hed"):
        annotate(picture(), "hed")


@pytest.mark.parametrize(
    "make",
    [
        lambda: picture().convert("L"),
        lambda: picture().convert("CMYK"),
        lambda: picture().convert("RGBA"),
        lambda: picture().convert("P"),
        lambda: picture().convert("I;16"),
        lambda: picture().convert("LA"),
    ],
)
def test_every_image_mode_becomes_rgb(make):
    fmt = "JPEG" if make().mode == "CMYK" else "PNG"
    image = load_image(png_bytes(make(), fmt))
    assert image.mode == "RGB" and image.size == (96, 96)


def test_transparency_is_laid_on_white():
    rgba = Image.new("RGBA", (40, 40), (255, 0, 0, 0))
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize(
    "source, message",
    [
        (b"definitely not an image", "could not read"),
        (png_bytes(Image.new("RGB", (8, 8))), "at least 32"),
        (png_bytes(Image.new("L", (7000, 6000))), "megapixels"),
        (png_bytes(picture())[:60], "could not read"),
        ("/no/such/file.png", "no image file"),
    ],
)
def test_bad_images_give_readable_errors(source, message):
    with pytest.raises(ImageInputError, match=message):
        load_image(source)


# ----------------------------------------------------------------------------- a real photograph (scikit-image, offline)


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def on_canvas(photo: Image.Image, scale: float, offset: tuple[int, int], size: int = 512) -> Image.Image:
    """The photo scaled and pasted into a larger grey canvas at `offset`."""
    canvas = Image.new("RGB", (size, size), (128, 128, 128))
    canvas.paste(photo.resize((round(photo.width * scale), round(photo.height * scale))), offset)
    return canvas


def test_mtcnn_finds_the_astronauts_face_and_finds_it_again_when_moved(astronaut):
    detector = MTCNNDetector()
    x0, y0, x1, y1 = detector.box(astronaut)
    assert 0.3 < x0 < x1 < 0.7 and 0.0 < y0 < y1 < 0.5  # her face: upper middle of the photo
    moved = detector.box(on_canvas(astronaut, 0.5, (200, 240)))
    # the same face, at half the size, shifted by (200, 240) px of 512
    expected = (200 / 512 + x0 * 0.5 * 512 / 512, 240 / 512 + y0 * 0.5 * 512 / 512)
    assert moved is not None and abs(moved[0] - expected[0]) < 0.03 and abs(moved[1] - expected[1]) < 0.03


def test_a_photo_without_a_face_is_a_typed_error(facenet):
    from skimage import data

    with pytest.raises(NoFaceFoundError, match="no face"):
        FaceIDEnergy(Image.fromarray(data.coffee()), facenet, MTCNNDetector())


def test_the_generated_image_is_cropped_where_its_own_face_is(astronaut, facenet):
    """Universal Guidance's crop: the face is found in the generated estimate, not at the reference's box."""
    energy = FaceIDEnergy(astronaut, facenet, MTCNNDetector(), redetect_every=1)
    shifted = to_tensor(on_canvas(astronaut, 0.5, (200, 240)))
    boxes = energy.boxes(shifted)
    assert abs(boxes[0][0] - energy.box[0]) > 0.1  # not the reference's box
    same_face = energy(shifted).item()
    at_reference_box = FaceIDEnergy(astronaut, facenet, FixedBoxAt(energy.box)).forward(shifted).item()
    assert same_face < at_reference_box  # the face is found again; the old fixed crop misses it
    blank = to_tensor(Image.new("RGB", (256, 256), (128, 128, 128)))
    assert energy.boxes(blank) == [MTCNNDetector.fallback_box]  # no face yet: the centred fallback


class FixedBoxAt(FixedBox):
    def __init__(self, box):
        self.fixed = box

    def box(self, image):
        return self.fixed


def test_style_energy_scores_pattern_agreement_where_a_judge_names_patterns():
    """1 where the judge names the reference's pattern in a sample, 0 elsewhere; no judge, no such figure."""
    tokens = lambda images: images.flatten(2).transpose(1, 2)  # noqa: E731
    judge = lambda images: (images.mean((1, 2, 3)) > 0).long()  # noqa: E731 - "pattern 1" for bright pictures
    bright = Image.new("RGB", (32, 32), (230, 230, 230))
    samples = torch.stack([torch.full((3, 32, 32), 0.8), torch.full((3, 32, 32), -0.8), torch.full((3, 32, 32), 0.1)])
    assert StyleEnergy(bright, tokens, judge).extra_metrics(samples)["pattern_agreement"].tolist() == [1.0, 0.0, 1.0]
    assert StyleEnergy(bright, tokens).extra_metrics(samples) == {}

"""Tests of the embedded world: the smoke training pipeline, load_world, the backbone interface, the assets."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from guidance.errors import MethodConfigError, WeightsUnavailableError
from guidance.world import ASSETS, REQUIRED, load_world
from guidance.world.render import CLASS_NAMES, make_dataset
from guidance.world.train import blur, run_stage


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The whole `all` pipeline with the smoke config, in a temporary folder."""
    root = tmp_path_factory.mktemp("world")
    run_stage("all", "smoke", root / "out", root / "work")
    return root


@pytest.fixture(scope="module")
def smoke_world(smoke):
    return load_world(smoke / "out")


def test_smoke_pipeline_writes_every_model(smoke):
    out = smoke / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest) == {"classifier", "evaluator", "face", "detector", "denoiser", "guide", "controlnet"}
    assert all(entry["params"] > 0 and entry["iterations"] > 0 for entry in manifest.values())
    for folder in ("unet", "guide_unet", "controlnet", "scheduler"):
        assert (out / folder).is_dir()
    assert (smoke / "work" / "denoiser" / "log.csv").read_text().startswith("step,loss,seconds")


def test_resume_continues_from_the_checkpoint(smoke, capsys):
    run_stage("detector", "smoke", smoke / "out", smoke / "work", resume=True)
    assert "detector: resumed at step 3" in capsys.readouterr().out
    assert json.loads((smoke / "out" / "manifest.json").read_text())["detector"]["iterations"] == 3


def test_backbone_interface(smoke_world):
    backbone = smoke_world.backbone
    assert backbone.name == "embedded" and backbone.class_names == CLASS_NAMES
    assert backbone.sample_shape == (3, 64, 64) and backbone.image_size == 64
    assert backbone.prediction_type == "epsilon" and backbone.alphas_cumprod.shape == (1000,)
    assert backbone.scheduler_config["beta_schedule"] == "linear"
    embeddings = backbone.embed(["black hair", None, "sunglasses"])
    assert embeddings.shape[:2] == (3, 2)  # one token for the denoiser, one for the guide model
    x = torch.randn(3, 3, 64, 64)
    t = torch.tensor(500)
    assert backbone.predict(x, t, embeddings).shape == x.shape
    assert backbone.predict(x, t, embeddings, guide=True).shape == x.shape
    control = backbone.prepare_control(torch.rand(1, 3, 64, 64))
    assert backbone.predict(x, t, embeddings, control=control).shape == x.shape
    assert backbone.evaluations == 9
    assert torch.equal(backbone.decode(x), x)


def test_unknown_class_is_a_config_error(smoke_world):
    with pytest.raises(MethodConfigError):
        smoke_world.backbone.embed(["a cat"])


def test_networks_follow_their_protocols(smoke_world):
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    probs = smoke_world.classifier(images)
    assert probs.shape == (2, len(CLASS_NAMES)) and torch.allclose(probs.sum(1), torch.ones(2))
    assert smoke_world.evaluator(images).shape == (2, len(CLASS_NAMES))
    assert smoke_world.evaluator.features(images).ndim == 2
    assert smoke_world.face_embedder.input_size == 64
    assert smoke_world.face_embedder(images).shape[0] == 2
    tokens = smoke_world.style_features(torch.rand(1, 3, 224, 224) * 2 - 1)
    assert tokens.ndim == 3 and tokens.shape[1] == 32 * 32
    assert all(not p.requires_grad for p in smoke_world.classifier.parameters())


def test_missing_weights_name_the_rebuild_command(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="guidance.world.train all"):
        load_world(tmp_path)


@pytest.mark.parametrize("damage", ["swapped", "garbage"])
def test_stale_or_damaged_weights_are_a_typed_error(smoke, tmp_path, damage):
    out = tmp_path / "out"
    shutil.copytree(smoke / "out", out)
    if damage == "swapped":  # weights of another net: shapes and keys do not fit
        shutil.copy(out / "evaluator.safetensors", out / "face_detector.safetensors")
    else:
        (out / "classifier.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsUnavailableError, match="do not load.*guidance.world.train all"):
        load_world(out)


def test_blur_with_zero_sigma_is_the_identity():
    images = torch.rand(2, 3, 16, 16)
    assert torch.allclose(blur(images, torch.zeros(2)), images, atol=1e-5)


committed = pytest.mark.skipif(not all((ASSETS / f).exists() for f in REQUIRED), reason="assets/world not built")


@pytest.fixture(scope="module")
def world():
    return load_world()


@committed
def test_detector_tells_faces_from_noise(world):
    face, _, _ = make_dataset(1, seed=5, split="heldout")
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert world.face_detector.box(Image.fromarray(face[0])) == (0.0, 0.0, 1.0, 1.0)
    assert world.face_detector.box(Image.fromarray(noise)) is None


@committed
def test_classifier_is_accurate_on_heldout_renders(world):
    images, labels, _ = make_dataset(100, seed=7, split="heldout")
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        accuracy = (world.classifier(pixels).argmax(1).numpy() == labels).mean()
    assert accuracy > 0.9

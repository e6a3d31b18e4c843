"""Tests of the embedded world: the smoke training pipeline, load_world, the backbone interface, the assets."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from guidance.errors import MethodConfigError, WeightsUnavailableError
from guidance.worlds.embedded import ASSETS, FILES, REQUIRED, STYLE_ANGLES, load_world
from guidance.worlds.embedded.renderer.dataset import make_dataset
from guidance.worlds.embedded.build.data import blur, negatives
from guidance.worlds.embedded.build.train import run_stage
from guidance.worlds.embedded.vocabulary import ATTRIBUTES, CLASS_NAMES


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
    assert set(manifest) == {
        "vae",
        "decoder",
        "classifier",
        "evaluator",
        "face",
        "detector",
        "denoiser",
        "guide",
        "controlnet",
        "style",
    }
    assert all(entry["params"] > 0 and entry["iterations"] > 0 for entry in manifest.values())
    for folder in ("vae", "unet", "guide_unet", "controlnet", "scheduler"):
        assert (out / folder).is_dir()
    assert (smoke / "work" / "denoiser" / "log.csv").read_text().startswith("step,loss,seconds")
    assert manifest["vae"]["psnr_db"] > 0 and manifest["vae"]["scaling_factor"] > 0 and manifest["decoder"]["psnr_db"] > 0


def test_decoder_fine_tuning_keeps_the_encoder_and_so_the_latent_space(smoke, tmp_path):
    """Stability's ft-MSE recipe: only the decoder (and post_quant_conv) train; every latent-space model stays valid."""
    root = tmp_path / "copy"
    shutil.copytree(smoke, root)
    before = load_file(str(root / "out" / "vae" / "diffusion_pytorch_model.safetensors"))
    run_stage("decoder", "smoke", root / "out", root / "work")
    after = load_file(str(root / "out" / "vae" / "diffusion_pytorch_model.safetensors"))
    frozen = [k for k in before if not k.startswith(("decoder.", "post_quant_conv."))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))


def test_guide_is_an_early_snapshot_of_the_denoiser(smoke):
    """EDM2's weaker guide: the EMA snapshot at guide_fraction of the main run, not the final weights."""
    manifest = json.loads((smoke / "out" / "manifest.json").read_text())
    assert manifest["guide"]["iterations"] < manifest["denoiser"]["iterations"]
    guide = load_file(str(smoke / "out" / "guide_unet" / "diffusion_pytorch_model.safetensors"))
    final = load_file(str(smoke / "out" / "unet" / "diffusion_pytorch_model.safetensors"))
    assert guide.keys() == final.keys() and any(not torch.equal(guide[k], final[k]) for k in guide)


def test_resume_continues_from_the_checkpoint(smoke, capsys):
    run_stage("detector", "smoke", smoke / "out", smoke / "work", resume=True)
    assert "detector: resumed at step 3" in capsys.readouterr().out
    assert json.loads((smoke / "out" / "manifest.json").read_text())["detector"]["iterations"] == 3


def test_backbone_is_a_latent_model_like_sd(smoke_world):
    backbone = smoke_world.backbone
    assert backbone.name == "embedded" and backbone.class_names == CLASS_NAMES
    assert backbone.sample_shape == (4, 16, 16) and backbone.image_size == 64
    assert backbone.prediction_type == "v_prediction" and backbone.alphas_cumprod.shape == (1000,)
    assert backbone.scheduler_config["beta_schedule"] == "scaled_linear"
    embeddings = backbone.embed(["black hair", None, "sunglasses"])
    assert embeddings.shape[:2] == (3, 2)  # one token for the denoiser, one for the guide model
    x = torch.randn(3, 4, 16, 16)
    t = torch.tensor(500)
    assert backbone.predict(x, t, embeddings).shape == x.shape
    assert backbone.predict(x, t, embeddings, guide=True).shape == x.shape
    control = backbone.prepare_control(torch.rand(1, 3, 64, 64))  # the map stays in pixels, as in SD
    assert backbone.predict(x, t, embeddings, control=control).shape == x.shape
    assert backbone.evaluations == 9
    pixels = backbone.decode(x.requires_grad_(True))
    assert pixels.shape == (3, 3, 64, 64)
    pixels.sum().backward()  # energies differentiate through the decoder
    assert x.grad.abs().sum() > 0
    assert backbone.encode(pixels.detach()).shape == (3, 4, 16, 16)


def test_unknown_class_is_a_config_error(smoke_world):
    with pytest.raises(MethodConfigError):
        smoke_world.backbone.embed(["a cat"])


def test_networks_follow_their_protocols(smoke_world):
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    probs = smoke_world.classifier(images)
    assert probs.shape == (2, len(CLASS_NAMES)) and torch.allclose(probs.sum(1), torch.ones(2))
    assert smoke_world.evaluator(images).shape == (2, len(CLASS_NAMES))
    assert smoke_world.evaluator.features(images).ndim == 2
    assert smoke_world.evaluator.attributes(images).shape == (2, len(ATTRIBUTES))
    assert smoke_world.face_embedder.input_size == 64
    assert smoke_world.face_embedder(images).shape[0] == 2
    tokens = smoke_world.style_features(torch.rand(1, 3, 224, 224) * 2 - 1)
    assert tokens.ndim == 3 and tokens.shape[1] == len(STYLE_ANGLES) * 16 * 16  # each turn's tokens after two stages
    assert all(not p.requires_grad for p in smoke_world.classifier.parameters())


def test_missing_weights_name_the_rebuild_command(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="guidance.worlds.embedded.build.train all"):
        load_world(tmp_path)


@pytest.mark.parametrize(
    "damage, message", [("swapped", "do not load"), ("garbage", "classifier.safetensors.*cut short or corrupted")]
)
def test_stale_or_damaged_weights_are_a_typed_error(smoke, tmp_path, damage, message):
    out = tmp_path / "out"
    shutil.copytree(smoke / "out", out)
    if damage == "swapped":  # weights of another net: shapes and keys do not fit
        shutil.copy(out / "evaluator.safetensors", out / "face_detector.safetensors")
    else:
        (out / "classifier.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsUnavailableError, match=f"{message}.*guidance.worlds.embedded.build.train all"):
        load_world(out)


def test_the_realism_reference_is_written_with_the_evaluator_and_loaded_with_the_world(smoke, smoke_world, tmp_path):
    from guidance.worlds.embedded.build.realism import realism_reference, write_realism_reference

    score = smoke_world.realism_score
    assert score.features.shape[1] == smoke_world.evaluator.features(torch.zeros(1, 3, 64, 64)).shape[1]
    assert score.radii.shape == score.features.shape[:1] and 500 <= len(score.radii) < 1000  # the denser half of 1 000 renders
    assert (score.radii > 0).all()
    out = tmp_path / "out"
    shutil.copytree(smoke / "out", out)
    write_realism_reference(out, renders=60)
    features, radii = realism_reference(smoke_world.evaluator, renders=60)
    loaded = load_world(out).realism_score
    assert torch.equal(loaded.features, features) and torch.equal(loaded.radii, radii)
    images = torch.rand(3, 3, 64, 64) * 2 - 1
    distances = torch.cdist(smoke_world.evaluator.features(images), features)
    assert torch.allclose(loaded(images), (radii[None] / distances).max(1).values, rtol=1e-5)
    (out / FILES["realism"]).unlink()
    with pytest.raises(WeightsUnavailableError, match="guidance.worlds.embedded.build.realism"):
        load_world(out)


def test_blur_with_zero_sigma_is_the_identity():
    images = torch.rand(2, 3, 16, 16)
    assert torch.allclose(blur(images, torch.zeros(2)), images, atol=1e-5)


committed = pytest.mark.skipif(not all((ASSETS / f).exists() for f in REQUIRED), reason="assets/world not built")


@pytest.fixture(scope="module")
def world():
    return load_world()


@committed
def test_detector_tells_faces_from_noise_blobs_and_photos(world):
    from skimage import data

    faces, _, _, _ = make_dataset(40, seed=5, split="heldout")
    assert np.mean([world.face_detector.box(Image.fromarray(f)) == (0.0, 0.0, 1.0, 1.0) for f in faces]) >= 0.95
    fakes = negatives(160, faces, seed=99)  # 20 of each kind: body, colour, gradient, noise, shuffled, blob, photo crop x2
    rejected = np.array([world.face_detector.box(Image.fromarray(f)) is None for f in fakes]).reshape(20, 8)
    assert rejected.mean(0).min() >= 0.9, rejected.mean(0)
    assert world.face_detector.box(Image.fromarray(data.coffee())) is None  # never seen in training; a cup is never a face


@committed
def test_a_photo_without_a_face_on_the_embedded_world_points_to_stable_diffusion(world):
    from skimage import data

    from conditions.face import FaceIDEnergy
    from guidance.errors import NoFaceFoundError

    with pytest.raises(NoFaceFoundError, match="Stable Diffusion model"):
        FaceIDEnergy(Image.fromarray(data.coffee()), world.face_embedder, world.face_detector)


@committed
def test_classifier_and_evaluator_are_accurate_on_heldout_renders(world):
    images, labels, _, attributes = make_dataset(100, seed=7, split="heldout")
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        assert (world.classifier(pixels).argmax(1).numpy() == labels).mean() > 0.9
        assert (world.evaluator(pixels).argmax(1).numpy() == labels).mean() > 0.9
        read = world.evaluator.attributes(pixels).numpy()
    seen = attributes != -1
    assert (read == attributes)[seen].mean() > 0.9


def test_adversarial_inputs_stay_in_their_ball_and_raise_the_loss():
    from guidance.worlds.embedded.build.recognisers import adversarial

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    x, y = torch.rand(6, 3, 16, 16) * 1.6 - 0.8, torch.randint(0, 2, (6,))
    loss_of = lambda inputs: torch.nn.functional.cross_entropy(net(inputs), y)  # noqa: E731
    moved = adversarial(loss_of, x, 0.5, torch.Generator().manual_seed(1))
    assert ((moved - x).flatten(1).norm(dim=1) <= 0.5 + 1e-5).all()
    assert loss_of(moved) > loss_of(x)

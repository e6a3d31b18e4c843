"""The stages that build the embedded world, their configurations (Config, CONFIGS) and their data.

STAGES run in order (train.py is the command line). `data` renders the datasets once and caches them as .npy under
the workdir; `vae` trains the autoencoder and caches the training latents; `decoder` fine-tunes its decoder on
them with the encoder frozen; `evaluator` trains the metrics-only
attribute evaluator; `denoiser` the class-conditional UNet (EMA snapshots kept); `guide` picks the Autoguidance
guide among the snapshots; `controlnet` trains a Canny ControlNet; `estimates` caches decoded clean estimates x0_hat
of noised training latents, which the guiding networks (classifier, face embedder, detector) learn to read; `style`
trains the network whose early features the style energy reads. Each model stage trains with training.train_loop and writes its weights under the output folder.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

from conditions.images import pixels_from_uint8, uint8_from_pixels

from .. import FILES, LABEL_EMBEDDING
from ..vocabulary import ATTRIBUTES, BG_PATTERNS, CLASS_NAMES, IDENTITY_ATTRIBUTES, STYLE_ATTRIBUTES, UNSEEN
from .dataset import identity_from_id, make_dataset, nuisance_from_seed
from .examples import style_reference
from ..nets import AttributeEvaluator, Classifier, FaceDetectorNet, FaceEmbedder, StyleNet, save_net
from .realism import write_realism_reference
from .render import SUPERSAMPLE, Pen, draw_body, pattern, relight
from .training import EMA, Loop, save_half, train_loop

STAGES = ("data", "vae", "decoder", "evaluator", "denoiser", "guide", "controlnet", "estimates", "classifier", "face", "detector", "style")
NULL_LABEL = len(CLASS_NAMES)
# Stable Diffusion 1.5's noise schedule (scaled-linear betas 0.00085..0.012), no x0 clipping in latent space.
SCHEDULE = {
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1,
}  # fmt: skip



def _unet_config(channels: tuple[int, ...], dim: int, heads: int, groups: int, size: int, in_channels: int, layers: int = 1) -> dict:
    """UNet2DConditionModel arguments; cross-attention (to the class token) in every block but the first.

    diffusers' UNet2DConditionModel reads `attention_head_dim` as the NUMBER of heads (a known naming quirk).
    """
    down = ["DownBlock2D"] + ["CrossAttnDownBlock2D"] * (len(channels) - 1)
    up = [b.replace("Down", "Up") for b in reversed(down)]
    return {
        "sample_size": size, "in_channels": in_channels, "out_channels": in_channels, "layers_per_block": layers,
        "block_out_channels": list(channels), "down_block_types": down, "up_block_types": up,
        "cross_attention_dim": dim, "attention_head_dim": heads, "norm_num_groups": groups,
    }  # fmt: skip


def _vae_config(channels: tuple[int, ...], latent_channels: int, groups: int) -> dict:
    """AutoencoderKL arguments: 64 px pixels, downsampling 2 ** (len(channels) - 1)."""
    return {
        "in_channels": 3, "out_channels": 3, "latent_channels": latent_channels, "sample_size": 64,
        "down_block_types": ["DownEncoderBlock2D"] * len(channels), "up_block_types": ["UpDecoderBlock2D"] * len(channels),
        "block_out_channels": list(channels), "layers_per_block": 1, "norm_num_groups": groups,
    }  # fmt: skip


@dataclass(frozen=True)
class Config:
    """Dataset sizes and per-stage settings."""

    n_train: int
    n_val: int
    n_face: int
    face_ids_per_class: int
    n_face_val: int
    n_negatives: int
    n_estimates: int
    vae: Loop
    decoder: Loop
    evaluator: Loop
    denoiser: Loop
    controlnet: Loop
    classifier: Loop
    face: Loop
    detector: Loop
    style: Loop
    vae_net: dict = field(default_factory=lambda: _vae_config((16, 32, 64), 8, 8))
    unet: dict = field(default_factory=lambda: _unet_config((48, 96, 144), 128, 4, 16, 16, 8))
    prediction_type: str = "v_prediction"
    min_snr_gamma: float | None = 5.0  # min-SNR loss weighting (Hang et al. 2023); None: uniform
    guide_fraction: float = 0.42  # the Autoguidance guide: the EMA snapshot at this fraction of the run (tuned, assets/world/README.md)
    classifier_widths: tuple[int, ...] = (16, 32, 64, 128)
    evaluator_widths: tuple[int, ...] = (24, 48, 96, 160)
    face_widths: tuple[int, ...] = (16, 32, 64, 128)
    face_adversarial: float = 0.0  # L2 radius of the face embedder's adversarial training inputs ([-1, 1] pixels); 0: off
    detector_widths: tuple[int, ...] = (16, 32, 64)
    style_widths: tuple[int, ...] = (16, 32, 64)
    n_textures: int = 4000  # full-frame textures beside the renders in the style net's training
    label_dropout: float = 0.12
    ema_decay: float = 0.999
    control_channels: tuple[int, ...] = (16, 32, 64)
    kl_weight: float = 1e-6
    device: str = "cpu"  # batches are drawn on the CPU (seeded) and moved here


def _loops() -> dict[str, Loop]:
    """The full configuration's stages; wall-clock budgets sized for 2 CPU cores (under 4 hours in all).

    The denoiser runs the shipped run's 2 805 steps; its budget only guards.
    """
    return {
        "vae": Loop(100000, 16, 1e-3, 8, time_budget_s=900, decay_from=2000),
        "decoder": Loop(100000, 32, 1e-3, 9, time_budget_s=4200, decay_from=500),
        "evaluator": Loop(4000, 64, 2e-3, 2, time_budget_s=300),
        "denoiser": Loop(2805, 64, 1e-3, 5, time_budget_s=7200, decay_from=4000, snapshot_every=250),
        "controlnet": Loop(100000, 32, 1e-3, 7, time_budget_s=540),
        "classifier": Loop(4000, 64, 2e-3, 1, time_budget_s=300),
        "face": Loop(6000, 64, 2e-3, 3, time_budget_s=720),  # adversarial inputs: 3 passes a step
        "detector": Loop(2000, 64, 2e-3, 4, time_budget_s=180),
        "style": Loop(600, 64, 2e-3, 10, time_budget_s=1200),
    }


GPU_BUDGETS = {"vae": 90, "decoder": 60, "evaluator": 30, "denoiser": 360, "controlnet": 90, "classifier": 40, "face": 50, "detector": 20, "style": 30}
FULL = Config(n_train=30000, n_val=1000, n_face=24000, face_ids_per_class=200, n_face_val=1000, n_negatives=8000,
              n_estimates=8000, face_adversarial=2.0, **_loops())  # fmt: skip
CONFIGS = {
    "full": FULL,
    # One call on one large GPU (`--device cuda`): 4x the batches, short budgets.
    "gpu": replace(
        FULL, **{name: replace(loop, batch=4 * loop.batch, time_budget_s=GPU_BUDGETS[name]) for name, loop in _loops().items()},
    ),  # fmt: skip
    "smoke": Config(
        n_train=120, n_val=40, n_face=80, face_ids_per_class=2, n_face_val=40, n_negatives=40, n_estimates=32,
        vae=Loop(3, 8, 1e-3, 8), decoder=Loop(2, 8, 1e-3, 9), evaluator=Loop(3, 8, 1e-3, 2), denoiser=Loop(8, 4, 1e-3, 5, checkpoint_every=2, snapshot_every=2),
        controlnet=Loop(2, 4, 1e-3, 7), classifier=Loop(3, 8, 1e-3, 1), face=Loop(3, 8, 1e-3, 3), detector=Loop(3, 8, 1e-3, 4), style=Loop(3, 8, 1e-3, 10),
        vae_net=_vae_config((8, 16, 16), 4, 4), unet=_unet_config((8, 16), 16, 1, 4, 16, 4),
        classifier_widths=(8, 16), evaluator_widths=(8, 16), face_widths=(8, 16), detector_widths=(8, 16), style_widths=(8, 16, 16),
        n_textures=16,
        control_channels=(4, 8, 8), face_adversarial=2.0,
    ),
}


# ----------------------------------------------------------------------------- data


def _render_chunk(args: tuple[int, int, str, int | None]) -> tuple[np.ndarray, ...]:
    n, seed, split, per_class = args
    return make_dataset(n, seed=seed, split=split, identities_per_class=per_class)


def _render(n: int, seed: int, split: str, per_class: int | None, pool: Pool) -> dict[str, np.ndarray]:
    """make_dataset in two halves (seeds 2s, 2s+1) on two processes; halves share identities."""
    per_class = per_class or max(1, math.ceil(n / len(CLASS_NAMES) / 5))
    halves = pool.map(_render_chunk, [(n - n // 2, 2 * seed, split, per_class), (n // 2, 2 * seed + 1, split, per_class)])
    return {k: np.concatenate([h[i] for h in halves]) for i, k in enumerate(("images", "labels", "ids", "attributes"))}


def _body_only(seed: int) -> np.ndarray:
    """A negative: the render's background and clothing (and neck) without a head, drawn with the renderer's
    pattern, body and lighting."""
    identity, nuisance = identity_from_id(seed), nuisance_from_seed(seed)
    canvas = pattern(nuisance.background, (0, 0, 64 * SUPERSAMPLE, 64 * SUPERSAMPLE))
    if seed % 2:
        draw_body(Pen(canvas, nuisance, 64), identity, nuisance)
    return relight(np.asarray(canvas.reduce(SUPERSAMPLE)), nuisance)


def _shuffled(image: np.ndarray, rng: np.random.Generator, patch: int) -> np.ndarray:
    """A negative: the image's patch x patch tiles in random order."""
    k = 64 // patch
    tiles = image.reshape(k, patch, k, patch, 3).transpose(0, 2, 1, 3, 4).reshape(k * k, patch, patch, 3)
    tiles = tiles[rng.permutation(k * k)].reshape(k, k, patch, patch, 3)
    return tiles.transpose(0, 2, 1, 3, 4).reshape(64, 64, 3)


def _blob(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A negative: a render blurred past recognition (what a failed guided sample looks like)."""
    from PIL import Image, ImageFilter

    blurred = Image.fromarray(image).filter(ImageFilter.GaussianBlur(float(rng.uniform(4.0, 8.0))))
    return np.asarray(blurred)


# Photographs shipped inside scikit-image's wheel, used as "not one of this world's faces". astronaut, coffee and
# chelsea are kept out: the tests use them.
TRAINING_PHOTOS = ("camera", "rocket", "hubble_deep_field", "immunohistochemistry", "moon", "page", "text", "coins",
                   "clock", "brick", "grass", "gravel", "colorwheel", "logo", "horse", "microaneurysms")  # fmt: skip


@lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    from skimage import data

    photos = []
    for name in TRAINING_PHOTOS:
        try:
            image = np.asarray(getattr(data, name)())
        except Exception:  # noqa: BLE001 - a photo that this scikit-image cannot load offline is skipped
            continue
        image = image.astype(np.uint8) if image.dtype != bool else image.astype(np.uint8) * 255
        image = np.repeat(image[..., None], 3, 2) if image.ndim == 2 else image[..., :3]
        photos.append(image)
    return tuple(photos)


def _photo_crop(rng: np.random.Generator) -> np.ndarray:
    """A negative: a random square crop of a photograph, resized to 64 px, most of them recoloured by a random
    channel mix (most of the bundled photographs are grey; the photographs people upload are not)."""
    from PIL import Image

    photo = _photos()[rng.integers(len(_photos()))]
    h, w = photo.shape[:2]
    side = int(rng.uniform(0.3, 1.0) * min(h, w))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = np.asarray(Image.fromarray(photo[y : y + side, x : x + side]).resize((64, 64), Image.BILINEAR), np.float32)
    if rng.random() < 0.75:
        mix = rng.uniform(0.0, 1.0, (3, 3))
        crop = crop @ (mix / mix.sum(1, keepdims=True)).T * rng.uniform(0.6, 1.4, 3)
    return crop.clip(0, 255).astype(np.uint8)


NEGATIVE_KINDS = 7


def _negative(kind: int, rng: np.random.Generator, faces: np.ndarray) -> np.ndarray:
    """Background/clothing render, plain colour, gradient, uniform noise, shuffled render, blurred blob, photo crop."""
    if kind == 0:
        return _body_only(int(rng.integers(2**40)))
    if kind == 1:
        return np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (64, 64, 3)).copy()
    if kind == 2:
        a, b = rng.integers(0, 256, (2, 3))
        w = np.linspace(0, 1, 64)[:, None] * math.cos(rng.uniform(0, 6.3)) + np.linspace(0, 1, 64)[None] * math.sin(rng.uniform(0, 6.3))
        w = ((w - w.min()) / max(w.max() - w.min(), 1e-6))[..., None]
        return (a * (1 - w) + b * w).astype(np.uint8)
    if kind == 3:
        return rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    face = faces[rng.integers(len(faces))]
    if kind == 4:
        return _shuffled(face, rng, int(rng.choice([8, 16])))
    if kind == 5:
        return _blob(face, rng)
    return _photo_crop(rng)


def negatives(n: int, faces: np.ndarray, seed: int) -> np.ndarray:
    """n pictures that are not faces of this world, cycling through the kinds of `_negative` (photo crops twice)."""
    rng = np.random.default_rng(seed)
    kinds = [i % (NEGATIVE_KINDS + 1) for i in range(n)]
    return np.stack([_negative(min(k, NEGATIVE_KINDS - 1), rng, faces) for k in kinds])


def stage_data(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """Render and cache: train/val class sets, face-ID train/val sets, detector negatives, Canny maps."""
    from conditions.control import canny

    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with Pool(2) as pool:
        sets = {
            "train": _render(cfg.n_train, 0, "train", None, pool),
            "val": _render(cfg.n_val, 1, "heldout", None, pool),
            "face": _render(cfg.n_face, 2, "train", cfg.face_ids_per_class, pool),
            "face_val": _render(cfg.n_face_val, 3, "heldout", max(1, cfg.n_face_val // 50), pool),
        }
    for name, arrays in sets.items():
        for key, value in arrays.items():
            np.save(data / f"{name}_{key}.npy", value)
    np.save(data / "negatives.npy", negatives(cfg.n_negatives, sets["train"]["images"], 0))
    np.save(data / "train_canny.npy", canny(pixels_from_uint8(sets["train"]["images"]))[:, 0].numpy().astype(np.uint8))
    print(f"data: rendered in {time.perf_counter() - start:.0f} s -> {data}", flush=True)
    return {}


def load(work: Path, name: str) -> np.ndarray:
    path = work / "data" / f"{name}.npy"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run the stage that writes it first (`python -m guidance.worlds.embedded.build.train data`)")
    return np.load(path, mmap_mode="r")


# ----------------------------------------------------------------------------- augmentation


def blur(images: Tensor, sigma: Tensor) -> Tensor:
    """Separable Gaussian blur with a per-sample standard deviation (pixels; 0 leaves the sample as is)."""
    radius = 7
    x = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-(x[None] ** 2) / (2 * sigma.clamp(min=1e-3)[:, None] ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(images.shape[1], 0)
    b, c, h, w = images.shape
    flat = F.pad(images.reshape(1, b * c, h, w), (radius,) * 4, mode="replicate")
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=b * c)
    return F.conv2d(flat, kernel[:, None, :, None], groups=b * c).reshape(b, c, h, w)


def degrade(images: Tensor, g: torch.Generator, max_sigma: float, max_noise: float, p: float) -> Tensor:
    """With probability p per sample: blur of random strength, then additive Gaussian noise of random std."""
    b = images.shape[0]
    on = (torch.rand(b, generator=g) < p).float()
    sigma = torch.rand(b, generator=g) * max_sigma * on
    noise = torch.rand(b, generator=g) * max_noise * on
    return blur(images, sigma) + noise.view(b, 1, 1, 1) * torch.randn(images.shape, generator=g)


def flip(images: Tensor, g: torch.Generator) -> Tensor:
    """Random horizontal flips (class, identity and attributes are mirror-invariant)."""
    mask = torch.rand(images.shape[0], generator=g) < 0.5
    return torch.where(mask.view(-1, 1, 1, 1), images.flip(-1), images)


# ----------------------------------------------------------------------------- autoencoder


def stage_vae(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """AutoencoderKL on the renders: L1 + MSE reconstruction with a tiny KL term (SD's recipe without its GAN).

    Afterwards the scaling factor (1 / std of the latents, SD's convention) is set, and the latent means of the
    training renders are cached for the denoiser.
    """
    from diffusers import AutoencoderKL

    loop = cfg.vae
    torch.manual_seed(loop.seed)
    images = load(work, "train_images")
    vae = AutoencoderKL(**cfg.vae_net).to(cfg.device)

    def loss_fn(step: int, g: torch.Generator) -> Tensor:
        x = flip(pixels_from_uint8(images[torch.randint(len(images), (loop.batch,), generator=g).numpy()]), g).to(cfg.device)
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=g).to(cfg.device)
        recon = vae.decode(z).sample
        return F.l1_loss(recon, x) + F.mse_loss(recon, x) + cfg.kl_weight * posterior.kl().mean()

    entry = train_loop("vae", vae, loss_fn, loop, work, resume)
    latents = encode_all(vae, images).cpu()
    vae.register_to_config(scaling_factor=float(1 / latents.float().std()))
    vae.save_pretrained(out / FILES["vae"])
    np.save(work / "data" / "train_latents.npy", (latents * vae.config.scaling_factor).numpy().astype(np.float16))
    return {**entry, "psnr_db": round(vae_psnr(vae, load(work, "val_images")), 2), "scaling_factor": vae.config.scaling_factor}


def stage_decoder(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """Fine-tune the VAE's decoder with its encoder frozen, as Stability's ft-MSE VAE was made for SD: the latent
    space, and so every model trained on it, stays as it is. The decoder reads the cached latent means of the
    training renders (what the denoiser learned to produce) and trains on the VAE stage's L1 + MSE loss."""
    from diffusers import AutoencoderKL

    loop = cfg.decoder
    torch.manual_seed(loop.seed)
    images, latents = load(work, "train_images"), load(work, "train_latents")
    folder = out / FILES["vae"]
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder))  # from_config: no local path in the saved config
    vae.load_state_dict(load_file(str(folder / "diffusion_pytorch_model.safetensors")))
    vae.to(cfg.device).requires_grad_(False)
    for part in (vae.post_quant_conv, vae.decoder):
        part.requires_grad_(True)

    def loss_fn(step: int, g: torch.Generator) -> Tensor:
        idx = torch.randint(len(images), (loop.batch,), generator=g).numpy()
        x, z = moved(cfg, pixels_from_uint8(images[idx]), torch.from_numpy(latents[idx]).float() / vae.config.scaling_factor)
        recon = vae.decode(z).sample
        return F.l1_loss(recon, x) + F.mse_loss(recon, x)

    entry = train_loop("decoder", vae, loss_fn, loop, work, resume)
    vae.save_pretrained(folder)
    return {**entry, "psnr_db": round(vae_psnr(vae, load(work, "val_images")), 2)}


def moved(cfg: Config, *tensors: Tensor) -> list[Tensor]:
    """The tensors of a batch (drawn on the CPU from seeded generators) on the config's device."""
    return [t.to(cfg.device) for t in tensors]


@torch.no_grad()
def encode_all(vae, images: np.ndarray, batch: int = 500) -> Tensor:
    """Unscaled latent means (N, C, h, w) of the images."""
    device = next(vae.parameters()).device
    return torch.cat([vae.encode(pixels_from_uint8(images[i : i + batch]).to(device)).latent_dist.mean for i in range(0, len(images), batch)])


@torch.no_grad()
def vae_psnr(vae, images: np.ndarray, batch: int = 250) -> float:
    """Mean PSNR (dB, pixels in [0, 1]) of reconstructions from the latent means."""
    values, device = [], next(vae.parameters()).device
    for i in range(0, len(images), batch):
        x = pixels_from_uint8(images[i : i + batch]).to(device)
        recon = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
        mse = ((recon - x) / 2).pow(2).flatten(1).mean(1)
        values.append(-10 * torch.log10(mse.clamp(min=1e-10)))
    return float(torch.cat(values).mean())


# ----------------------------------------------------------------------------- small nets


def stage_evaluator(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """Metrics-only attribute evaluator on clean renders (flips, mild noise): class head plus one head per attribute.
    The realism score's reference (realism.py) is written from it beside it."""
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
    """Sum of per-attribute cross-entropies; UNSEEN targets (a bald person's hair colour) are ignored."""
    columns = list(ATTRIBUTES)
    return sum(F.cross_entropy(heads[n], targets[:, columns.index(n)], ignore_index=UNSEEN) for n in names)


def mixed_batch(images: np.ndarray, estimates: np.ndarray, sources: np.ndarray, idx: np.ndarray, g: torch.Generator) -> tuple[Tensor, np.ndarray]:
    """Half clean renders (blur and noise augmented), half decoded clean estimates x0_hat; their source indices."""
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
    """Supervised contrastive loss (Khosla et al. 2020): each anchor's same-identity views against the batch."""
    logits = embeddings @ embeddings.T / temperature
    self_mask = torch.eye(len(targets), dtype=torch.bool, device=targets.device)
    log_prob = logits.masked_fill(self_mask, -math.inf).log_softmax(1)
    positive = (targets[:, None] == targets[None]) & ~self_mask
    return -(log_prob.masked_fill(~positive, 0).sum(1) / positive.sum(1).clamp(min=1)).mean()


def identity_batch(groups: list[np.ndarray], batch: int, views: int, g: torch.Generator) -> np.ndarray:
    """Image indices: `views` random images of each of batch // views random identities (P x K sampling)."""
    people = torch.randperm(len(groups), generator=g)[: batch // views].tolist()
    return np.concatenate([groups[p][torch.randint(len(groups[p]), (views,), generator=g).numpy()] for p in people])


def adversarial(loss_of, x: Tensor, radius: float, g: torch.Generator, steps: int = 2) -> Tensor:
    """Inputs moved within an L2 ball of `radius` per image to raise the loss (projected gradient ascent, Madry et al.
    2018). A network trained on them has gradients that change what a person sees (Santurkar et al. 2019), which
    face guidance follows (assets/world/README.md)."""
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


def textures(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n full-frame two-colour textures (uint8, 64 px) of random kind, colours, period and angle, and their kinds
    (indices of BG_PATTERNS): what a style reference looks like."""
    rng = np.random.default_rng(seed)
    kinds = rng.integers(len(BG_PATTERNS), size=n)
    images = [
        np.asarray(style_reference(BG_PATTERNS[k], tuple(tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(2)),
                                   float(rng.uniform(7.0, 15.0)), float(rng.choice([0.0, 0.25, 0.5, 0.75]) * math.pi), size=64))
        for k in kinds
    ]  # fmt: skip
    return np.stack(images), kinds


def recolour(images: Tensor, g: torch.Generator) -> Tensor:
    """Per sample: the colour channels in random order, each inverted with probability 1/2 and scaled by a random
    gain, so that a pattern is told apart by its shape, not its colours."""
    b = images.shape[0]
    order = torch.stack([torch.randperm(3, generator=g) for _ in range(b)])
    mixed = images.gather(1, order.view(b, 3, 1, 1).expand_as(images))
    sign = torch.where(torch.rand(b, 3, generator=g) < 0.5, -1.0, 1.0)
    gain = 0.6 + 0.4 * torch.rand(b, 3, generator=g)
    return (mixed * (sign * gain).view(b, 3, 1, 1)).clamp(-1, 1)


def stage_style(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """The style net: background pattern and clothing texture of renders (blur and noise augmented) and background
    pattern of full-frame textures (a quarter of each batch), every input recoloured at random (`recolour`)."""
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


# ----------------------------------------------------------------------------- diffusion


class LabelledUNet(nn.Module):
    """A UNet2DConditionModel with its label table ((classes + 1) x D; the last row is the null label)."""

    def __init__(self, unet: nn.Module, embedding: nn.Embedding):
        super().__init__()
        self.unet, self.embedding = unet, embedding

    def forward(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        return self.unet(x, t, encoder_hidden_states=self.embedding(labels)[:, None]).sample


@lru_cache(maxsize=1)
def alphas_cumprod() -> Tensor:
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SCHEDULE).alphas_cumprod.float()


def training_samples(work: Path) -> tuple[np.ndarray, Tensor]:
    """What the denoiser learns: the scaled VAE latents of the training renders, and their labels."""
    return load(work, "train_latents"), torch.from_numpy(np.array(load(work, "train_labels")))


def noisy_batch(cfg: Config, latents: np.ndarray, labels: Tensor, batch: int, g: torch.Generator):
    """(x_t, t, eps, x0, labels with dropout to the null label, indices)."""
    idx = torch.randint(len(labels), (batch,), generator=g)
    x0 = torch.from_numpy(np.array(latents[idx.numpy()])).float()
    t = torch.randint(0, SCHEDULE["num_train_timesteps"], (batch,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    a = alphas_cumprod()[t].view(-1, 1, 1, 1)
    y = torch.where(torch.rand(batch, generator=g) < cfg.label_dropout, torch.full_like(labels[idx], NULL_LABEL), labels[idx])
    return a.sqrt() * x0 + (1 - a).sqrt() * eps, t, eps, x0, y, idx


def diffusion_loss(cfg: Config, prediction: Tensor, x_t: Tensor, t: Tensor, eps: Tensor, x0: Tensor) -> Tensor:
    """MSE to the epsilon or v target, weighted per sample by min-SNR-gamma (Hang et al. 2023) when set.

    With SNR = a / (1 - a): the weight is min(SNR, gamma) / SNR for epsilon and min(SNR, gamma) / (SNR + 1) for v,
    i.e. min(SNR, gamma) times the x0-space error in both cases.
    """
    a = alphas_cumprod().to(t.device)[t].view(-1, 1, 1, 1)
    v = a.sqrt() * eps - (1 - a).sqrt() * x0
    target = eps if cfg.prediction_type == "epsilon" else v
    error = (prediction - target).pow(2).flatten(1).mean(1)
    if cfg.min_snr_gamma is None:
        return error.mean()
    snr = (a / (1 - a)).flatten()
    weight = snr.clamp(max=cfg.min_snr_gamma) / (snr if cfg.prediction_type == "epsilon" else snr + 1)
    return (weight * error).mean()


def save_unet(model: LabelledUNet, folder: Path) -> None:
    from safetensors.torch import save_file

    save_half(model.unet, folder)
    save_file({"weight": model.embedding.weight.detach().contiguous().cpu()}, str(folder / LABEL_EMBEDDING))


def new_denoiser(cfg: Config) -> LabelledUNet:
    from diffusers import UNet2DConditionModel

    return LabelledUNet(UNet2DConditionModel(**cfg.unet), nn.Embedding(NULL_LABEL + 1, cfg.unet["cross_attention_dim"]))


def stage_denoiser(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """The class-conditional UNet (label dropout for CFG), EMA weights saved; EMA snapshots kept for the guide."""
    from diffusers import DDIMScheduler

    loop = cfg.denoiser
    torch.manual_seed(loop.seed)
    samples, labels = training_samples(work)
    model = new_denoiser(cfg).to(cfg.device)
    ema = EMA(model, cfg.ema_decay)

    def loss_fn(step: int, g: torch.Generator) -> Tensor:
        x_t, t, eps, x0, y = moved(cfg, *noisy_batch(cfg, samples, labels, loop.batch, g)[:5])
        return diffusion_loss(cfg, model(x_t, t, y), x_t, t, eps, x0)

    entry = train_loop("denoiser", model, loss_fn, loop, work, resume, ema)
    save_unet(model, out / FILES["unet"])
    DDIMScheduler(**SCHEDULE, prediction_type=cfg.prediction_type).save_pretrained(out / FILES["scheduler"])
    return {**entry, "ema_decay": cfg.ema_decay, "prediction_type": cfg.prediction_type, "min_snr_gamma": cfg.min_snr_gamma,
            "config": {k: cfg.unet[k] for k in ("block_out_channels", "layers_per_block")}}  # fmt: skip


def stage_guide(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """The Autoguidance guide (EDM2's "shorter-trained" weaker model): the denoiser's EMA snapshot at `guide_fraction`
    of its recorded iterations (the nearest snapshot at or before it)."""
    manifest = json.loads((out / "manifest.json").read_text())
    wanted = max(1, round(manifest["denoiser"]["iterations"] * cfg.guide_fraction))
    snapshots = sorted((work / "denoiser" / "snapshots").glob("*.pt"))
    if not snapshots:
        raise FileNotFoundError(f"no EMA snapshots under {work / 'denoiser' / 'snapshots'}; train the denoiser first")
    chosen = max((s for s in snapshots if int(s.stem) <= wanted), default=snapshots[0], key=lambda s: int(s.stem))
    model = new_denoiser(cfg)
    model.load_state_dict(torch.load(chosen, weights_only=True))
    save_unet(model, out / FILES["guide_unet"])
    return {"iterations": int(chosen.stem), "fraction": round(int(chosen.stem) / manifest["denoiser"]["iterations"], 4)}


def stage_controlnet(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """ControlNet on Canny maps of renders, the denoiser and its label table frozen. As in SD, the map stays in
    pixels: the conditioning embedding downsamples it to the latent size."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    from .. import load_label_embedding

    loop = cfg.controlnet
    torch.manual_seed(loop.seed)
    unet = UNet2DConditionModel.from_pretrained(out / FILES["unet"], torch_dtype=torch.float32).to(cfg.device).eval().requires_grad_(False)
    embedding = load_label_embedding(out / FILES["unet"], cfg.device)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=cfg.control_channels)
    samples, labels = training_samples(work)
    maps = load(work, "train_canny")

    def loss_fn(step: int, g: torch.Generator) -> Tensor:
        x_t, t, eps, x0, y, idx = noisy_batch(cfg, samples, labels, loop.batch, g)
        cond = torch.from_numpy(np.array(maps[idx.numpy()])).float()[:, None].expand(-1, 3, -1, -1)
        x_t, t, eps, x0, y, cond = moved(cfg, x_t, t, eps, x0, y, cond)
        states = embedding(y)[:, None]
        down, mid = controlnet(x_t, t, encoder_hidden_states=states, controlnet_cond=cond, return_dict=False)
        pred = unet(x_t, t, encoder_hidden_states=states, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample
        return diffusion_loss(cfg, pred, x_t, t, eps, x0)

    entry = train_loop("controlnet", controlnet, loss_fn, loop, work, resume)
    save_half(controlnet, out / FILES["controlnet"])
    return entry


@torch.no_grad()
def stage_estimates(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """Decoded clean estimates x0_hat of noised latents of training renders (class and face sets), t ~ U[0, 800),
    label or null label: the inputs the guiding networks see during sampling."""
    from guidance.vp_arithmetic import to_eps_and_x0

    from .. import load_backbone

    backbone = load_backbone(out, cfg.device)
    rng = np.random.default_rng(0)
    for name in ("train", "face"):
        images = load(work, f"{name}_images")
        count = min(cfg.n_estimates, len(images))
        sources = np.sort(rng.choice(len(images), count, replace=False))
        timesteps = rng.integers(0, 800, count)
        decoded = []
        for start in range(0, count, 250):
            src, t = sources[start : start + 250], torch.from_numpy(timesteps[start : start + 250]).to(cfg.device)
            z0 = backbone.encode(pixels_from_uint8(images[src]))
            a = alphas_cumprod().to(cfg.device)[t].view(-1, 1, 1, 1)
            x_t = a.sqrt() * z0 + (1 - a).sqrt() * torch.from_numpy(rng.standard_normal(z0.shape)).float().to(cfg.device)
            labels = [CLASS_NAMES[c] if rng.random() > 0.2 else None for c in np.asarray(load(work, f"{name}_labels"))[src]]
            out_ = backbone.predict(x_t, t, backbone.embed(labels))
            decoded.append(uint8_from_pixels(backbone.decode(to_eps_and_x0(x_t, out_, a, backbone.prediction_type)[1])))
        np.save(work / "data" / f"{name}_estimates.npy", np.concatenate(decoded))
        np.save(work / "data" / f"{name}_estimate_sources.npy", sources)
        np.save(work / "data" / f"{name}_estimate_timesteps.npy", timesteps)
    return {}


# ----------------------------------------------------------------------------- stages by name

STAGE_FUNCTIONS = {
    "data": stage_data, "vae": stage_vae, "decoder": stage_decoder, "evaluator": stage_evaluator, "denoiser": stage_denoiser, "guide": stage_guide,
    "controlnet": stage_controlnet, "estimates": stage_estimates, "classifier": stage_classifier, "face": stage_face,
    "detector": stage_detector, "style": stage_style,
}  # fmt: skip
UNRECORDED = ("data", "estimates")
PARAM_FILES = {
    "vae": [f"{FILES['vae']}/diffusion_pytorch_model.safetensors"],
    "decoder": [f"{FILES['vae']}/diffusion_pytorch_model.safetensors"],
    "evaluator": [FILES["evaluator"]], "classifier": [FILES["classifier"]], "face": [FILES["face_embedder"]],
    "detector": [FILES["face_detector"]], "style": [FILES["style_net"]],
    "denoiser": [f"{FILES['unet']}/diffusion_pytorch_model.safetensors", f"{FILES['unet']}/{LABEL_EMBEDDING}"],
    "guide": [f"{FILES['guide_unet']}/diffusion_pytorch_model.safetensors", f"{FILES['guide_unet']}/{LABEL_EMBEDDING}"],
    "controlnet": [f"{FILES['controlnet']}/diffusion_pytorch_model.safetensors"],
}  # fmt: skip

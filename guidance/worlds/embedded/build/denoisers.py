"""The diffusion stages: `denoiser` trains the class-conditional UNet (EMA snapshots kept), `guide` picks the
Autoguidance guide among the snapshots, `controlnet` trains a Canny ControlNet on the frozen denoiser, and
`estimates` caches decoded clean estimates x0_hat of noised training latents for the guiding networks."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from conditions.images import pixels_from_uint8, uint8_from_pixels
from guidance.schedulers import SD_SCHEDULE

from .. import FILES, LABEL_EMBEDDING
from ..vocabulary import CLASS_NAMES
from .config import Config
from .data import load, moved
from .training import EMA, save_half, train_loop

NULL_LABEL = len(CLASS_NAMES)


class LabelledUNet(nn.Module):
    """A UNet2DConditionModel with its label table ((classes + 1) x D; the last row is the null label).

    Args:
        unet: the UNet2DConditionModel.
        embedding: the label table; a label's row is the UNet's one cross-attention token.
    """

    def __init__(self, unet: nn.Module, embedding: nn.Embedding):
        super().__init__()
        self.unet, self.embedding = unet, embedding

    def forward(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        return self.unet(x, t, encoder_hidden_states=self.embedding(labels)[:, None]).sample


@lru_cache(maxsize=1)
def alphas_cumprod() -> Tensor:
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SD_SCHEDULE).alphas_cumprod.float()


def training_samples(work: Path) -> tuple[np.ndarray, Tensor]:
    """What the denoiser learns: the scaled VAE latents of the training renders, and their labels.

    Args:
        work: the work folder, with the latents the `vae` stage cached.

    Returns:
        ((N, C, h, w) float16 latents, memory-mapped; (N,) labels).
    """
    return load(work, "train_latents"), torch.from_numpy(np.array(load(work, "train_labels")))


def noisy_batch(cfg: Config, latents: np.ndarray, labels: Tensor, batch: int, g: torch.Generator):
    """A training batch of noised latents under SD_SCHEDULE, labels dropped to the null label at the config's rate.

    Args:
        cfg: the configuration (its label dropout).
        latents: (N, C, h, w) scaled latents.
        labels: (N,) their labels.
        batch: the batch size.
        g: the batch's seeded generator.

    Returns:
        (x_t, t, eps, x0, labels with dropout to the null label, indices into latents).
    """
    idx = torch.randint(len(labels), (batch,), generator=g)
    x0 = torch.from_numpy(np.array(latents[idx.numpy()])).float()
    t = torch.randint(0, SD_SCHEDULE["num_train_timesteps"], (batch,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    a = alphas_cumprod()[t].view(-1, 1, 1, 1)
    y = torch.where(torch.rand(batch, generator=g) < cfg.label_dropout, torch.full_like(labels[idx], NULL_LABEL), labels[idx])
    return a.sqrt() * x0 + (1 - a).sqrt() * eps, t, eps, x0, y, idx


def diffusion_loss(cfg: Config, prediction: Tensor, x_t: Tensor, t: Tensor, eps: Tensor, x0: Tensor) -> Tensor:
    """MSE to the epsilon or v target, weighted per sample by min-SNR-gamma (Hang et al. 2023) when set.

    With SNR = a / (1 - a): the weight is min(SNR, gamma) / SNR for epsilon and min(SNR, gamma) / (SNR + 1) for v,
    i.e. min(SNR, gamma) times the x0-space error in both cases.

    Args:
        cfg: the configuration (prediction type, min_snr_gamma).
        prediction: the model's output.
        x_t: the noised latents.
        t: their timesteps.
        eps: the noise added.
        x0: the clean latents.

    Returns:
        The mean loss.
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
    """Saves a denoiser: the UNet in float16 (save_pretrained) and its label table beside it.

    Args:
        model: the denoiser.
        folder: its folder under the world's assets.
    """
    from safetensors.torch import save_file

    save_half(model.unet, folder)
    save_file({"weight": model.embedding.weight.detach().contiguous().cpu()}, str(folder / LABEL_EMBEDDING))


def new_denoiser(cfg: Config) -> LabelledUNet:
    """A fresh denoiser of the configuration's UNet shape, with a label table of the classes and the null label.

    Args:
        cfg: the configuration.

    Returns:
        The LabelledUNet.
    """
    from diffusers import UNet2DConditionModel

    return LabelledUNet(UNet2DConditionModel(**cfg.unet), nn.Embedding(NULL_LABEL + 1, cfg.unet["cross_attention_dim"]))


def stage_denoiser(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """The class-conditional UNet (label dropout for CFG), EMA weights saved; EMA snapshots kept for the guide.

    Returns:
        The run's record with the EMA decay, prediction type, min-SNR gamma and UNet shape.
    """
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
    DDIMScheduler(**{**SD_SCHEDULE, "prediction_type": cfg.prediction_type}).save_pretrained(out / FILES["scheduler"])
    return {
        **entry,
        "ema_decay": cfg.ema_decay,
        "prediction_type": cfg.prediction_type,
        "min_snr_gamma": cfg.min_snr_gamma,
        "config": {k: cfg.unet[k] for k in ("block_out_channels", "layers_per_block")},
    }


def stage_guide(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """The Autoguidance guide (EDM2's "shorter-trained" weaker model): the denoiser's EMA snapshot at `guide_fraction`
    of its recorded iterations (the nearest snapshot at or before it).

    Returns:
        The snapshot's iterations and fraction of the run.
    """
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
    pixels: the conditioning embedding downsamples it to the latent size.
    """
    from diffusers import ControlNetModel, UNet2DConditionModel

    from .. import load_label_embedding

    loop = cfg.controlnet
    torch.manual_seed(loop.seed)
    unet = (
        UNet2DConditionModel.from_pretrained(out / FILES["unet"], torch_dtype=torch.float32)
        .to(cfg.device)
        .eval()
        .requires_grad_(False)
    )
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
        pred = unet(
            x_t, t, encoder_hidden_states=states, down_block_additional_residuals=down, mid_block_additional_residual=mid
        ).sample
        return diffusion_loss(cfg, pred, x_t, t, eps, x0)

    entry = train_loop("controlnet", controlnet, loss_fn, loop, work, resume)
    save_half(controlnet, out / FILES["controlnet"])
    return entry


@torch.no_grad()
def stage_estimates(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """Decoded clean estimates x0_hat of noised latents of training renders (class and face sets), t ~ U[0, 800),
    label or null label: the inputs the guiding networks see during sampling.

    Returns:
        An empty entry (the stage is not recorded).
    """
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

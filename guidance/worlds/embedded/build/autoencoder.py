"""The autoencoder stages: `vae` trains the AutoencoderKL and caches the training latents, `decoder` fine-tunes its
decoder with the encoder frozen; `vae_psnr` measures reconstructions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor

from conditions.images import pixels_from_uint8

from .. import FILES
from .config import Config
from .data import flip, load, moved
from .training import train_loop


def stage_vae(cfg: Config, out: Path, work: Path, resume: bool) -> dict:
    """AutoencoderKL on the renders: L1 + MSE reconstruction with a tiny KL term (SD's recipe without its GAN).

    Afterwards the scaling factor (1 / std of the latents, SD's convention) is set, and the latent means of the
    training renders are cached for the denoiser.

    Returns:
        The run's record with the held-out PSNR and the scaling factor.
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
    training renders (what the denoiser learned to produce) and trains on the VAE stage's L1 + MSE loss.

    Returns:
        The run's record with the held-out PSNR.
    """
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


@torch.no_grad()
def encode_all(vae, images: np.ndarray, batch: int = 500) -> Tensor:
    """Unscaled latent means of the images, encoded where the VAE is.

    Args:
        vae: the AutoencoderKL.
        images: (N, 64, 64, 3) uint8 renders.
        batch: images per encoder call.

    Returns:
        (N, C, h, w) latent means.
    """
    device = next(vae.parameters()).device
    return torch.cat(
        [vae.encode(pixels_from_uint8(images[i : i + batch]).to(device)).latent_dist.mean for i in range(0, len(images), batch)]
    )


@torch.no_grad()
def vae_psnr(vae, images: np.ndarray, batch: int = 250) -> float:
    """Mean PSNR of reconstructions from the latent means.

    Args:
        vae: the AutoencoderKL.
        images: (N, 64, 64, 3) uint8 renders.
        batch: images per call.

    Returns:
        The mean PSNR in dB, pixels in [0, 1].
    """
    values, device = [], next(vae.parameters()).device
    for i in range(0, len(images), batch):
        x = pixels_from_uint8(images[i : i + batch]).to(device)
        recon = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
        mse = ((recon - x) / 2).pow(2).flatten(1).mean(1)
        values.append(-10 * torch.log10(mse.clamp(min=1e-10)))
    return float(torch.cat(values).mean())

"""A tiny decoder for the guidance path of the embedded world, distilled from its VAE's decoder.

The student is diffusers' `AutoencoderTiny` (the TAESD architecture), the same class Stable Diffusion's tiny
decoder uses, so both worlds load it alike; it reads scaled latents (x0 as the sampler holds it) and returns
pixels in [-1, 1]. Only its decoder is trained: on latents of training renders, blends of two latents and
noisy latents (clean estimates early in sampling are blurry blends), against the full decoder's pixels.
The final image of a run always comes from the full VAE; this one only feeds the guidance energies.

    python -m guidance.worlds.embedded.build.tiny_decoder [--world assets/world] [--seconds 480] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderTiny
from torch import Tensor

from .. import ASSETS, FILES, load_backbone
from ..renderer.dataset import make_dataset
from .training import record

FOLDER = FILES["tiny_decoder"]
CONFIG = {  # decoder: 24 channels, one block per resolution (16 -> 32 -> 64 px); the encoder is a stub, never used
    "latent_channels": 8,
    "decoder_block_out_channels": (24, 24, 24),
    "num_decoder_blocks": (1, 1, 1),
    "encoder_block_out_channels": (8, 8, 8),
    "num_encoder_blocks": (1, 1, 1),
    "scaling_factor": 1.0,
}


def new_tiny_decoder(latent_channels: int = 8) -> AutoencoderTiny:
    return AutoencoderTiny(**{**CONFIG, "latent_channels": latent_channels})


def augmented(latents: Tensor, g: torch.Generator) -> Tensor:
    """Latents, blends of two latents (a third) and noisy latents (half), as clean estimates look during sampling."""
    n = len(latents)
    other = latents[torch.randperm(n, generator=g)]
    weight = torch.rand(n, 1, 1, 1, generator=g)
    blend = torch.where(torch.rand(n, 1, 1, 1, generator=g) < 1 / 3, weight * latents + (1 - weight) * other, latents)
    sigma = 0.3 * torch.rand(n, 1, 1, 1, generator=g) * (torch.rand(n, 1, 1, 1, generator=g) < 0.5)
    return blend + sigma * torch.randn(latents.shape, generator=g)


@torch.no_grad()
def teacher_pairs(world: Path, renders: int, seed: int, batch: int = 128) -> tuple[Tensor, Tensor]:
    """(scaled latents, full-decoder pixels) of augmented latents of `renders` training renders."""
    backbone = load_backbone(world, "cpu")
    images = torch.from_numpy(make_dataset(renders, seed=seed, split="train")[0]).permute(0, 3, 1, 2).float() / 127.5 - 1
    latents = torch.cat([backbone.encode(chunk) for chunk in images.split(batch)])
    inputs = augmented(latents, torch.Generator().manual_seed(seed))
    return inputs, torch.cat([backbone.decode(chunk) for chunk in inputs.split(batch)])


def save(student: AutoencoderTiny, folder: Path) -> None:
    """save_pretrained, less the `block_out_channels` key it writes and from_pretrained then warns about."""
    student.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config.pop("block_out_channels", None)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def distil(
    world: Path = ASSETS, seconds: float = 480.0, renders: int = 3000, batch: int = 32, seed: int = 0, heldout: int = 256
) -> dict:
    """Trains the tiny decoder for `seconds` (after the teacher's pixels are made), saves it in fp16 under
    <world>/tiny_decoder and records it in the manifest with its PSNR against the full decoder on `heldout`
    augmented latents of other renders; returns the record."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    inputs, targets = teacher_pairs(world, renders, seed)
    student = new_tiny_decoder(inputs.shape[1])
    optimiser = torch.optim.Adam(student.decoder.parameters(), lr=2e-3)
    g, steps, train_start = torch.Generator().manual_seed(seed + 1), 0, time.perf_counter()
    while time.perf_counter() - train_start < seconds:
        idx = torch.randint(0, len(inputs), (batch,), generator=g)
        loss = F.l1_loss(student.decode(inputs[idx]).sample, targets[idx])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        steps += 1
    student.eval().requires_grad_(False)
    with torch.no_grad():
        held = teacher_pairs(world, heldout, seed + 100)
        mse = F.mse_loss(student.decode(held[0]).sample.clamp(-1, 1), held[1].clamp(-1, 1)).item()
    save(student.half(), world / FOLDER)
    entry = {
        "params": sum(p.numel() for p in student.decoder.parameters()),
        "iterations": steps,
        "batch": batch,
        "seconds": round(time.perf_counter() - start, 1),
        "psnr_db_vs_full_decoder": round(10 * torch.log10(torch.tensor(4 / mse)).item(), 2),
        "dtype": "float16",
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in CONFIG.items()},
    }
    record(world, "tiny_decoder", entry)
    return entry


def main() -> None:
    p = argparse.ArgumentParser(
        prog="python -m guidance.worlds.embedded.build.tiny_decoder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--world", type=Path, default=ASSETS)
    p.add_argument("--seconds", type=float, default=480.0, help="training time after the teacher's pixels are made")
    p.add_argument("--renders", type=int, default=3000)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps(distil(args.world, args.seconds, args.renders), indent=1))


if __name__ == "__main__":
    main()

"""The schedulers the sampling loop drives: diffusers' DDIM, DDPM, DPM-Solver++ and UniPC, and EVODiff."""

from guidance.schedulers.adapters import SCHEDULERS, make_scheduler
from guidance.schedulers.evodiff import EVODiffScheduler

# Stable Diffusion 1.5's training schedule (scaled-linear betas 0.00085..0.012, eps prediction, no x0 clipping), which
# the embedded world is trained on too
SD_SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}

__all__ = ["SCHEDULERS", "SD_SCHEDULE", "EVODiffScheduler", "make_scheduler"]

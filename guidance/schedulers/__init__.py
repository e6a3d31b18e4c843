"""The schedulers the sampling loop drives: diffusers' DDIM, DDPM, DPM-Solver++ and UniPC, and EVODiff."""

from guidance.schedulers.adapters import SCHEDULERS, make_scheduler
from guidance.schedulers.evodiff import EVODiffScheduler

__all__ = ["SCHEDULERS", "EVODiffScheduler", "make_scheduler"]

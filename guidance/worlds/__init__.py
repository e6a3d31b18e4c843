"""Model worlds: a backbone plus the networks its energies and metrics use (base), Stable Diffusion 1.5 (sd15), the embedded world (embedded)."""
from .base import World, load_sd15_world

__all__ = ["World", "load_sd15_world"]

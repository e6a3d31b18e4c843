"""Model worlds: a backbone plus the networks its energies and metrics use (base), Stable Diffusion 1.5 (sd15), the embedded world (embedded)."""

from guidance.worlds.base import World

__all__ = ["World", "load_sd15_world"]


def __getattr__(name: str):
    """load_sd15_world, from sd15.py on first use (it imports transformers, which the embedded world does not need)."""
    if name == "load_sd15_world":
        from guidance.worlds.sd15 import load_sd15_world

        return load_sd15_world
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""What the app's launcher takes from the library: the worlds it may serve (the embedded world's folder, Stable
Diffusion 1.5's hub id, the registry that loads them) and the largest upload it accepts."""

from __future__ import annotations

from conditions.images import MAX_FILE_BYTES
from guidance.worlds.embedded import ASSETS
from guidance.worlds.registry import EMBEDDED, SD, WorldRegistry
from guidance.worlds.sd15 import SD15

__all__ = ["ASSETS", "EMBEDDED", "MAX_FILE_BYTES", "SD", "SD15", "WorldRegistry"]

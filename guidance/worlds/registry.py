"""The worlds a launcher allows: each loaded on its first use, then cached behind a lock.

The app offers the embedded world always and Stable Diffusion 1.5 when a model id or folder is given;
`default()` picks SD 1.5 only on a GPU with its weights already on disk.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from guidance.errors import GuidanceError, MethodConfigError, WeightsUnavailableError
from guidance.worlds.base import World
from guidance.worlds.embedded import ASSETS
from guidance.worlds.sd15 import SD_CLASSES

EMBEDDED, SD = "embedded", "sd15"


def weights_cached(source: str, file: str) -> bool:
    """Whether a file of a model is on this machine, without the network.

    Args:
        source: a hub id, or a local folder.
        file: the file's path within the model (e.g. "unet/config.json").
    """
    if Path(source).exists():
        return (Path(source) / file).exists()
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(source, file), str)
    except ValueError:  # not a valid repository id
        return False


@dataclass
class WorldRegistry:
    """The embedded world from `embedded`, and SD 1.5 (+ ControlNet, + a tiny guidance decoder such as TAESD) when
    `sd_model` is set. Worlds are named by key: EMBEDDED ("embedded") or SD ("sd15").

    Args:
        embedded: the embedded world's folder.
        sd_model: SD 1.5's hub id or folder; None offers the embedded world alone.
        controlnet: a ControlNet's hub id or folder for SD 1.5, or None.
        tiny_vae: an AutoencoderTiny's hub id or folder for SD 1.5's guidance path, or None.
        device: where the worlds load (default: CUDA where available).
    """

    embedded: Path = ASSETS
    sd_model: str | None = None
    controlnet: str | None = None
    tiny_vae: str | None = None
    device: str = field(default_factory=lambda: "cuda" if torch.cuda.is_available() else "cpu")

    def __post_init__(self) -> None:
        self._loaded: dict[str, World] = {}
        self._lock = threading.Lock()

    def keys(self) -> list[str]:
        return [EMBEDDED, SD] if self.sd_model else [EMBEDDED]

    def family_title(self) -> str:
        """The diffusers model's family as people name it, from its model_index.json on disk (its folder, or the hub's
        cache): the page opens without the network, and without waiting for it."""
        from guidance.pipelines.loading import TITLES, family

        try:
            return TITLES[family(self.sd_model, offline=True)]
        except GuidanceError:  # not on disk yet: the first run loads it, or says why it cannot
            return "Stable Diffusion"

    def title(self, key: str) -> str:
        """The world's name as the app's backbone menu shows it."""
        if key == SD:
            return self.family_title() + (" + ControlNet" if self.controlnet else "")
        return "Embedded world"

    def source(self, key: str) -> str:
        """Where the world's weights come from, in Markdown."""
        if key == SD:
            return f"{self.family_title()} (`{self.sd_model}`)" + (
                f" + ControlNet (`{self.controlnet}`)" if self.controlnet else ""
            )
        return f"embedded world (`{self.embedded}`)"

    def default(self) -> str:
        """The diffusers model on a GPU with its weights on disk, else the embedded world."""
        sd_ready = self.sd_model and (
            weights_cached(self.sd_model, "unet/config.json") or weights_cached(self.sd_model, "transformer/config.json")
        )
        control_ready = not self.controlnet or weights_cached(self.controlnet, "config.json")
        return SD if self.device == "cuda" and sd_ready and control_ready else EMBEDDED

    def loaded(self, key: str) -> World | None:
        """The world if it is loaded already."""
        return self._loaded.get(key)

    def load(self, key: str) -> World:
        """The world, loaded on the first call (one thread at a time) and cached.

        Raises:
            WeightsUnavailableError: its weights cannot be loaded.
            MethodConfigError: a key this registry does not offer.
        """
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = self._load(key)
            return self._loaded[key]

    def _load(self, key: str) -> World:
        if key == EMBEDDED:
            from guidance.worlds.embedded import load_world

            return load_world(self.embedded, self.device)
        if key == SD and self.sd_model:
            from guidance.worlds.sd15 import load_sd15_world

            return load_sd15_world(self.sd_model, self.controlnet, self.device, class_names=SD_CLASSES, tiny_vae=self.tiny_vae)
        raise MethodConfigError(f"unknown backbone {key!r}; this app offers {self.keys()}")

    def class_names(self, key: str) -> tuple[str, ...]:
        """The world's classes: SD 1.5's without loading it; the embedded world's from the loaded world (none if it cannot load)."""
        if key == SD and key not in self._loaded:
            return SD_CLASSES
        try:
            return self.load(key).class_names
        except WeightsUnavailableError:
            return ()

"""Reading user images safely: any file, mode or size becomes RGB or a typed, readable error."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from guidance.errors import ImageInputError

MAX_FILE_BYTES = 20 * 2**20
MAX_PIXELS = 40_000_000
MIN_SIDE = 32

ImageSource = str | Path | bytes | Image.Image | np.ndarray


def load_image(source: ImageSource, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> Image.Image:
    """An RGB PIL image from a path, bytes, array or PIL image; transparency is laid on white.

    Args:
        source: a file path, encoded bytes (PNG, JPEG, WebP...), a uint8 array or a PIL image.
        max_pixels: the most pixels accepted (checked before decoding where the header tells).
        min_side: the fewest pixels accepted on each side.

    Raises:
        ImageInputError: the file is missing, too large, unreadable, or the image too small or too large.
    """
    image = _open(source, max_pixels)
    if min(image.size) < min_side:
        raise ImageInputError(f"image is {image.width}x{image.height}; it must be at least {min_side} pixels on each side")
    return to_rgb(image)


def _open(source: ImageSource, max_pixels: int) -> Image.Image:
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        image = Image.fromarray(source)
    else:
        data = source if isinstance(source, bytes) else _read_file(Path(source))
        image = _decode(lambda: Image.open(io.BytesIO(data)))
        _check_pixels(image, max_pixels)
        _decode(image.load)
    _check_pixels(image, max_pixels)
    return ImageOps.exif_transpose(image)


def _decode(read):
    """Runs a PIL read (lazy open, then load), turning its many failure types into one.

    Raises:
        ImageInputError: the file is not an image PIL reads, or its header declares more than twice PIL's
            Image.MAX_IMAGE_PIXELS (a decompression bomb: refused from the header, before any decoding).
    """
    try:
        return read()
    except Image.DecompressionBombError as error:
        raise ImageInputError(
            f"the image declares more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels; "
            f"at most {MAX_PIXELS / 1e6:.0f} megapixels are accepted"
        ) from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageInputError(f"could not read the image ({type(error).__name__}): is it a PNG, JPEG or WebP file?") from error


def _check_pixels(image: Image.Image, max_pixels: int) -> None:
    if image.width * image.height > max_pixels:
        raise ImageInputError(f"image is {image.width}x{image.height}; at most {max_pixels / 1e6:.0f} megapixels are accepted")


def _read_file(path: Path) -> bytes:
    if not path.is_file():
        raise ImageInputError(f"no image file at {path}")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ImageInputError(f"{path.name} is larger than {MAX_FILE_BYTES // 2**20} MB")
    return path.read_bytes()


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB from any PIL mode: greyscale, palette, CMYK, 16-bit, with or without alpha."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "F"):
        array = np.asarray(image, dtype=np.float64)
        span = max(array.max() - array.min(), 1e-12)
        image = Image.fromarray(((array - array.min()) / span * 255).astype(np.uint8))
    if "A" in image.getbands() or image.mode == "P" and "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def to_tensor(image: Image.Image, size: int | None = None) -> torch.Tensor:
    """An image as the models take pixels.

    Args:
        image: any PIL image (converted to RGB).
        size: if given, the central square is resized to size x size (Lanczos).

    Returns:
        (1, 3, H, W) float32 in [-1, 1].
    """
    if size is not None:
        image = ImageOps.fit(image, (size, size), Image.LANCZOS)
    return pixels_from_uint8(np.asarray(image.convert("RGB"))[None])


def pixels_from_uint8(array: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in [-1, 1]: the one place pixels enter the models' range."""
    return torch.from_numpy(np.asarray(array, dtype=np.float32).copy()).permute(0, 3, 1, 2) / 127.5 - 1


def uint8_from_pixels(pixels: torch.Tensor) -> np.ndarray:
    """float (B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3), clamped and rounded."""
    return ((pixels.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def module_device(module: object) -> torch.device:
    """The device of a module's first parameter; the CPU for anything else."""
    parameters = list(module.parameters())[:1] if isinstance(module, torch.nn.Module) else []
    return parameters[0].device if parameters else torch.device("cpu")


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """PIL images from (B, 3, H, W) in [-1, 1]."""
    return [Image.fromarray(a) for a in uint8_from_pixels(images)]


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Differentiable bilinear resize of (B, C, H, W) to size x size."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=size < images.shape[-1])

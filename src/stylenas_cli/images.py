"""Image loading and saving: EXIF orientation, alpha, 16-bit, grayscale/CMYK; atomic writes
(:func:`~stylenas_cli.files.atomic_write`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import StylenasError
from .files import atomic_write

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
JPEG_QUALITY = 95


class ImageError(StylenasError):
    """An input image that cannot be used (missing, unreadable, empty...)."""


@dataclass
class LoadedImage:
    """RGB ``(1, 3, H, W)`` float in [0, 1], with the alpha channel ``(H, W)`` if any."""

    rgb: torch.Tensor
    alpha: np.ndarray | None
    sixteen_bit: bool = False

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)"""
        return self.rgb.shape[-1], self.rgb.shape[-2]


def _to_float_rgb(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None, bool]:
    alpha = None
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float32)
        # I;16* is 16-bit by definition (a dark frame must stay dark); plain "I" (32-bit
        # int) carries no depth, so guess from the values.
        sixteen = img.mode.startswith("I;16") or arr.max() > 255
        arr = arr / (65535.0 if sixteen else 255.0)
        return np.repeat(arr[..., None], 3, axis=2), None, True
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba)[..., 3].copy()
        img = rgba.convert("RGB")
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return arr, alpha, False


def oriented_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) of an image file as displayed (EXIF rotation applied), read from its
    header only; ``None`` when it cannot be read (the loader reports why)."""
    try:
        with Image.open(path) as img:
            orientation = img.getexif().get(0x0112, 1)
            w, h = img.size
    except Exception:  # unreadable: reported when it is loaded
        return None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def load_image(path: str | Path, max_size: int | None = None) -> LoadedImage:
    """Read an image file as RGB in [0, 1], honouring EXIF orientation.

    Raises :class:`ImageError` with a one-line reason for missing, non-image, corrupt or
    empty files."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: file not found")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file")
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            if img.width == 0 or img.height == 0:
                raise ImageError(f"{path}: image has zero size")
            if max_size and max(img.size) > max_size:
                scale = max_size / max(img.size)
                new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
                img = img.resize(new, Image.Resampling.LANCZOS)
            arr, alpha, sixteen = _to_float_rgb(img)
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{path}: not a readable image ({err})") from None
    rgb = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None]
    return LoadedImage(rgb, alpha, sixteen)


def load_labels(path: str | Path, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Colour-coded label map (DPST-style PNG) -> integer labels ``(H, W)``.

    Each distinct colour becomes one label, numbered by its packed RGB value so the same
    colour means the same label in content and style maps. ``size`` (width, height): the
    map must have that size."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: mask file not found")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img).convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise ImageError(f"{path}: not a readable mask image ({err})") from None
    if size is not None and img.size != tuple(size):
        raise ImageError(
            f"{path}: mask is {img.size[0]}x{img.size[1]} but its image is "
            f"{size[0]}x{size[1]}: masks must match their image's size"
        )
    arr = np.asarray(img).astype(np.int64)
    packed = (arr[..., 0] << 16) | (arr[..., 1] << 8) | arr[..., 2]
    return torch.from_numpy(packed)


def save_image(rgb: torch.Tensor, dest: str | Path, alpha: np.ndarray | None = None) -> Path:
    """Save ``(3, H, W)`` in [0, 1] atomically as 8-bit RGB; JPEG quality 95; alpha kept
    where the format allows (PNG/WebP/TIFF). 16-bit and grayscale inputs come out as 8-bit
    RGB (a stylised photo has colour)."""
    dest = Path(dest)
    suffix = dest.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ImageError(f"{dest}: unsupported output format {suffix!r}")
    arr = rgb.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    img = Image.fromarray((arr * 255.0 + 0.5).astype(np.uint8), "RGB")
    if alpha is not None and suffix in (".png", ".webp", ".tif", ".tiff"):
        a = Image.fromarray(alpha)
        if a.size != img.size:
            a = a.resize(img.size, Image.Resampling.BILINEAR)
        img.putalpha(a)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(suffix)
    fmt = fmt or suffix.lstrip(".").upper()
    kwargs = {"quality": JPEG_QUALITY} if fmt == "JPEG" else {}
    atomic_write(dest, lambda tmp: img.save(tmp, format=fmt, **kwargs))
    return dest

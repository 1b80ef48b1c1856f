"""Image loading and saving: EXIF orientation, alpha, 16-bit, grayscale/CMYK; atomic writes
(:func:`~stylenas_cli.files.atomic_write`)."""

from __future__ import annotations

import contextlib
import io
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES
from .errors import StylenasError
from .files import atomic_write

JPEG_QUALITY = 95


class ImageError(StylenasError):
    """An input image that cannot be used (missing, unreadable, empty...)."""


@dataclass
class LoadedImage:
    """An image as read: ``pixels`` ``(H, W, 3)``, uint8 for 8-bit sources (what most photos
    are: 3 bytes a pixel, whatever their size) or float32 in [0, 1] for 16/32-bit ones; the
    alpha channel ``(H, W)`` uint8 if any."""

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    sixteen_bit: bool = False
    notes: list[str] = field(default_factory=list)  # what was done that a user should know

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)"""
        return self.pixels.shape[1], self.pixels.shape[0]

    def tensor(self) -> torch.Tensor:
        """``(1, 3, H, W)`` view of the pixels (uint8 or float32, no copy; read it only)."""
        with warnings.catch_warnings():  # PIL's arrays are read-only; nothing writes here
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(self.pixels).permute(2, 0, 1)[None]

    @property
    def rgb(self) -> torch.Tensor:
        """``(1, 3, H, W)`` float32 in [0, 1] (a copy for 8-bit images)."""
        t = self.tensor()
        return (t.float() / 255.0 if t.dtype == torch.uint8 else t).contiguous()

    def resized(self, height: int, width: int) -> torch.Tensor:
        """``(1, 3, height, width)`` float32 in [0, 1], Lanczos-resampled."""
        if (width, height) == self.size:
            return self.rgb
        if self.pixels.dtype == np.uint8:
            img = Image.fromarray(self.pixels, "RGB").resize((width, height), LANCZOS)
            return LoadedImage(np.asarray(img)).rgb
        channels = [
            np.asarray(Image.fromarray(self.pixels[..., k], "F").resize((width, height), LANCZOS))
            for k in range(3)
        ]
        return LoadedImage(np.clip(np.stack(channels, -1), 0, 1).astype(np.float32)).rgb


LANCZOS = Image.Resampling.LANCZOS
_PIL_LIMIT = threading.Lock()  # Image.MAX_IMAGE_PIXELS is one global of PIL's


@contextlib.contextmanager
def open_image(
    path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS, what: str = "image"
) -> Iterator[Image.Image]:
    """``Image.open`` with the project's size limit instead of PIL's: a header declaring more
    than ``max_pixels`` (None: no limit) is refused with one line before any pixel is
    decoded (a "decompression bomb" is a tiny file declaring a huge image), and PIL's
    warnings about large images are not printed.

    Raises :class:`ImageError` for missing, unreadable and oversized files."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: {what} file not found")
    if path.is_dir():
        article = "an" if what[0] in "aeiou" else "a"
        raise ImageError(f"{path}: is a directory, not {article} {what} file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file")
    try:
        with _PIL_LIMIT, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # checked below
            try:
                img = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{path}: not a readable {what} ({first_line(err)})") from None
    with img:
        w, h = img.size
        if max_pixels is not None and w * h > max_pixels:
            raise ImageError(
                f"{path}: {w}x{h} is {w * h / 1e6:.0f} megapixels, over the limit of "
                f"{max_pixels / 1e6:.0f} (a decompression bomb?); pass --max-pixels "
                f"{w * h} if the file is genuine"
            )
        if w == 0 or h == 0:
            raise ImageError(f"{path}: image has zero size")
        yield img


def first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def to_srgb(img: Image.Image) -> Image.Image:
    """An image with an embedded ICC profile (Adobe RGB, Display P3, ...) converted to sRGB,
    the space the network was trained in; others as they are."""
    profile = img.info.get("icc_profile")
    if not profile or img.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return img
    from PIL import ImageCms

    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        mode = "RGBA" if img.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError):  # a broken profile: use the pixels
        return img


def pil_pixels(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """PIL image -> ``(H, W, 3)`` uint8 (8-bit) or float32 in [0, 1] (16/32-bit), alpha."""
    alpha = None
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float32)
        # I;16* is 16-bit by definition (a dark frame must stay dark); plain "I" (32-bit
        # int) carries no depth, so guess from the values.
        sixteen = img.mode.startswith("I;16") or arr.max() > 255
        arr = arr / (65535.0 if sixteen else 255.0)
        return np.repeat(arr[..., None], 3, axis=2).astype(np.float32), None, True
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba)[..., 3].copy()
        img = rgba.convert("RGB")
    return np.asarray(img.convert("RGB")), alpha, False


def read_header(
    path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS, what: str = "image"
) -> tuple[int, int]:
    """(width, height) of an image file as displayed (EXIF rotation applied), read from its
    header only (:func:`open_image`'s checks; raises :class:`ImageError`)."""
    with open_image(path, max_pixels, what) as img:
        try:  # PNG keeps its EXIF in a chunk that may lie past a truncation
            orientation = img.getexif().get(0x0112, 1)
        except (OSError, SyntaxError, ValueError) as err:
            raise ImageError(f"{path}: not a readable {what} ({first_line(err)})") from None
        w, h = img.size
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def oriented_size(path: str | Path) -> tuple[int, int] | None:
    """:func:`read_header` with no size limit, or ``None`` when the file cannot be read (the
    loader reports why)."""
    try:
        return read_header(path, None)
    except Exception:  # unreadable: reported when it is loaded
        return None


def load_image(
    path: str | Path, max_size: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """Read an image file as RGB (:class:`LoadedImage`), honouring EXIF orientation; with
    ``max_size`` the long side is Lanczos-resized to at most that. Files declaring more than
    ``max_pixels`` are refused (:func:`open_image`).

    Raises :class:`ImageError` with a one-line reason for missing, non-image, corrupt,
    empty or oversized files."""
    path = Path(path)
    notes = []
    try:
        with open_image(path, max_pixels) as img:
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                notes.append(f"{path}: animated ({frames} frames); the first frame was used")
            img.load()
            img = to_srgb(ImageOps.exif_transpose(img))
            if max_size and max(img.size) > max_size:
                scale = max_size / max(img.size)
                new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
                img = img.resize(new, Image.Resampling.LANCZOS)
            pixels, alpha, sixteen = pil_pixels(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{path}: not a readable image ({first_line(err)})") from None
    return LoadedImage(np.ascontiguousarray(pixels), alpha, sixteen, notes)


def load_labels(
    path: str | Path,
    size: tuple[int, int] | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> torch.Tensor:
    """Colour-coded label map (DPST-style PNG) -> integer labels ``(H, W)``.

    Each distinct colour becomes one label, numbered by its packed RGB value so the same
    colour means the same label in content and style maps. ``size`` (width, height): the
    map must have that size."""
    path = Path(path)
    try:
        with open_image(path, max_pixels, "mask") as img:
            img = ImageOps.exif_transpose(img).convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{path}: not a readable mask ({first_line(err)})") from None
    if size is not None and img.size != tuple(size):
        raise ImageError(
            f"{path}: mask is {img.size[0]}x{img.size[1]} but its image is "
            f"{size[0]}x{size[1]}: masks must match their image's size"
        )
    arr = np.asarray(img).astype(np.int64)
    packed = (arr[..., 0] << 16) | (arr[..., 1] << 8) | arr[..., 2]
    return torch.from_numpy(packed)


def to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(3, H, W)`` float in [0, 1] (tensor) or ``(H, W, 3)`` uint8 -> ``(H, W, 3)`` uint8."""
    if isinstance(image, np.ndarray):
        return image
    if image.dtype == torch.uint8:
        return image.cpu().numpy() if image.shape[-1] == 3 else image.permute(1, 2, 0).numpy()
    arr = image.detach().float().clamp(0, 1).mul(255.0).add_(0.5).to(torch.uint8)
    return arr.permute(1, 2, 0).cpu().numpy()


def save_image(
    image: torch.Tensor | np.ndarray,
    dest: str | Path,
    alpha: np.ndarray | None = None,
    overwrite: bool = True,
) -> Path:
    """Save an image atomically as 8-bit RGB: ``(3, H, W)`` float in [0, 1], or ``(H, W, 3)``
    uint8. JPEG quality 95; alpha kept where the format allows (PNG/WebP/TIFF). 16-bit and
    grayscale inputs come out as 8-bit RGB (a stylised photo has colour). ``overwrite=False``:
    an existing ``dest`` is refused at the final rename (:func:`atomic_write`)."""
    dest = Path(dest)
    suffix = dest.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ImageError(f"{dest}: unsupported output format {suffix!r}")
    img = Image.fromarray(np.ascontiguousarray(to_uint8(image)), "RGB")
    if alpha is not None and suffix in (".png", ".webp", ".tif", ".tiff"):
        a = Image.fromarray(alpha)
        if a.size != img.size:
            a = a.resize(img.size, Image.Resampling.BILINEAR)
        img.putalpha(a)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(suffix)
    fmt = fmt or suffix.lstrip(".").upper()
    kwargs = {"quality": JPEG_QUALITY} if fmt == "JPEG" else {}
    atomic_write(dest, lambda tmp: img.save(tmp, format=fmt, **kwargs), overwrite)
    return dest

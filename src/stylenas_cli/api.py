"""One call for scripts: :func:`stylize` takes a content and a style as paths, PIL images or
arrays and returns the result in the content's type, with the command line's defaults (the
network at the working size, lifted to full resolution; style statistics cached on disk).

>>> import stylenas_cli
>>> out = stylenas_cli.stylize("photo.jpg", "ref.jpg")            # doctest: +SKIP
>>> img = stylenas_cli.stylize(Image.open("a.png"), Image.open("b.png"), alpha=0.8)  # +SKIP
>>> out = stylenas_cli.apply_lut("photo.jpg", "look.cube")         # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from . import stylestore
from .batch import StylizeConfig, plan_image_outputs, stylize_images
from .config import (
    DEFAULT_STYLE_SIZE,
    DEFAULT_TRANSFER,
    DEFAULT_WORK_SIZE,
    LiftConfig,
    TransferSettings,
)
from .images import (
    ImageError,
    LoadedImage,
    load_image,
    pil_pixels,
    save_image,
    to_srgb,
    to_uint8,
)
from .jobs import stylize_files
from .lut import Lut3D, read_lut
from .model import Stylizer
from .shape import check_side
from .style import StyleCache

ImageLike = str | Path | Image.Image | np.ndarray


@lru_cache(maxsize=4)
def _model(arch: str, weights: str | None, device: str, precision: str) -> Stylizer:
    """Models stay loaded between calls (a script calling :func:`stylize` in a loop)."""
    return Stylizer.from_pretrained(arch, weights, device, precision)


def stylize(
    content: ImageLike,
    style: ImageLike,
    output: str | Path | None = None,
    *,
    arch: str = "photonas",
    weights: str | Path | None = None,
    alpha: float = 1.0,
    work_size: int | None = DEFAULT_WORK_SIZE,
    style_size: int = DEFAULT_STYLE_SIZE,
    lift: LiftConfig | None = None,
    device: str = "auto",
    precision: str = "auto",
    cache: bool = True,
    overwrite: bool = False,
    regions: int = 0,
    settings: TransferSettings = DEFAULT_TRANSFER,
) -> Path | Image.Image | np.ndarray:
    """Give ``content`` the colour and tone of ``style``; what ``stylenas stylize`` does.

    Args:
        content: a path (the result is written like the command line does: to ``output``,
            default ``<stem>_stylized.<ext>`` beside it, and its path returned), a PIL image
            in any mode, 16-bit included, converted as the command line converts files (a
            PIL RGB image returned) or an ``(H, W, 3)`` array, uint8 or float in [0, 1]
            (an array of the same dtype returned); other dtypes and float values outside
            [0, 1] are refused.
        style: a path, PIL image or array (the same rules).
        work_size: long side the network sees (None: every pixel); ``lift``: the guided
            filter's settings (default :class:`~stylenas_cli.config.LiftConfig`).
        regions: > 0: that many semantic regions found automatically in the style and
            matched in the content, each transferred on its own (``--auto-masks --regions``;
            a shortcut for ``settings.regions``).
        settings: every setting of the transfer
            (:class:`~stylenas_cli.config.TransferSettings`, the command line's by default).

    Raises :class:`~stylenas_cli.errors.StylenasError` (one line) for unusable inputs."""
    if regions < 0:
        raise ValueError(f"regions must be 0 (none) or more, got {regions}")
    settings = replace(settings, regions=regions) if regions else settings
    if not isinstance(content, str | Path):
        content_image = _loaded(content, "content")  # refused before a model loads
    style_image = None if isinstance(style, str | Path) else _loaded(style, "style")
    model = _model(arch, None if weights is None else str(weights), device, precision)
    lift = lift or LiftConfig()
    if isinstance(content, str | Path):
        if not isinstance(style, str | Path):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "style.png"
                Image.fromarray(to_uint8(style_image.rgb[0]), "RGB").save(path)
                return stylize(content, path, output, arch=arch, weights=weights, alpha=alpha,
                               work_size=work_size, style_size=style_size, lift=lift,
                               device=device, precision=precision, cache=False,
                               overwrite=overwrite, settings=settings)  # fmt: skip
        content = Path(content)
        [dest] = plan_image_outputs([content], output)
        cfg = StylizeConfig(alpha=alpha, overwrite=overwrite, work_size=work_size, lift=lift,
                            cache=cache, style_size=style_size, transfer=settings)  # fmt: skip
        [result] = stylize_files(model, [content], Path(style), [dest], cfg)
        if not result.ok:
            raise ImageError(result.error)
        return dest
    image = content_image
    check_side(*image.size, "content")
    summary = _style(model, style if style_image is None else style_image, style_size, cache,
                     settings)  # fmt: skip
    styled = stylize_images(model, [image], summary, alpha, None, work_size, lift, settings)[0]
    if isinstance(content, Image.Image):
        return Image.fromarray(styled, "RGB")
    if np.issubdtype(np.asarray(content).dtype, np.floating):
        return styled.astype(np.asarray(content).dtype) / 255.0
    return styled


def apply_lut(
    content: ImageLike,
    lut: str | Path | Lut3D,
    output: str | Path | None = None,
    *,
    overwrite: bool = False,
) -> Path | Image.Image | np.ndarray:
    """Map ``content`` through a 3D LUT (a ``.cube`` or HALD CLUT file, e.g. from ``stylenas
    lut``, or a :class:`~stylenas_cli.lut.Lut3D`) at full resolution; what ``stylenas stylize
    --lut`` does. ``content`` and the result as in :func:`stylize` (a path: written to
    ``output``, default ``<stem>_stylized.<ext>`` beside it)."""
    look = lut if isinstance(lut, Lut3D) else read_lut(lut)
    if isinstance(content, str | Path):
        content = Path(content)
        [dest] = plan_image_outputs([content], output)
        image = load_image(content)
        save_image(look.apply(image.pixels), dest, image.alpha, overwrite)
        return dest
    image = _loaded(content, "content")
    mapped = look.apply(image.pixels)
    if isinstance(content, Image.Image):
        return Image.fromarray(mapped, "RGB")
    if np.issubdtype(content.dtype, np.floating):
        return mapped.astype(content.dtype) / 255.0
    return mapped


def _loaded(image: Image.Image | np.ndarray, what: str) -> LoadedImage:
    """A PIL image (any mode: converted as files are, 16-bit kept as float) or an
    ``(H, W, 3)`` uint8 / float-in-[0, 1] array as a :class:`LoadedImage`; anything else is
    an :class:`ImageError` saying what was received."""
    if isinstance(image, Image.Image):
        pixels, alpha, sixteen = pil_pixels(to_srgb(image))
        return LoadedImage(np.ascontiguousarray(pixels), alpha, sixteen)
    if not isinstance(image, np.ndarray):
        raise ImageError(
            f"{what}: expected a path, a PIL image or a numpy array, got {type(image).__name__}"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"{what}: expected an (H, W, 3) image array, got shape {image.shape}")
    if image.dtype == np.uint8:
        return LoadedImage(np.ascontiguousarray(image))
    if np.issubdtype(image.dtype, np.floating):
        low, high = (float(image.min()), float(image.max())) if image.size else (0.0, 0.0)
        if not (np.isfinite(low) and np.isfinite(high) and 0.0 <= low and high <= 1.0):
            raise ImageError(
                f"{what}: a float image array must hold values in [0, 1], got [{low:g}, "
                f"{high:g}] (divide 8-bit values by 255)"
            )
        return LoadedImage(np.ascontiguousarray(image, dtype=np.float32))
    raise ImageError(
        f"{what}: image arrays must be uint8 or float in [0, 1], got {image.dtype} (e.g. "
        "16-bit: (a / 65535).astype('float32'))"
    )


def _style(
    model: Stylizer,
    style: str | Path | LoadedImage,
    size: int,
    cache: bool,
    settings: TransferSettings,
) -> StyleCache:
    if isinstance(style, str | Path):
        store = stylestore.cache_dir() if cache else None
        return model.load_style(style, size, cache_dir=store, settings=settings)
    check_side(*style.size, "style")
    w, h = style.size
    if max(w, h) > size:
        scale = size / max(w, h)
        rgb = style.resized(max(1, round(h * scale)), max(1, round(w * scale)))
    else:
        rgb = style.rgb
    return model.style_cache(rgb.to(model.device), settings=settings)

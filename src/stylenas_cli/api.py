"""One call for scripts: :func:`stylize` takes a content and a style as paths, PIL images or
arrays and returns the result in the content's type, with the command line's defaults (the
network at the working size, lifted to full resolution; style statistics cached on disk).

>>> import stylenas_cli
>>> out = stylenas_cli.stylize("photo.jpg", "ref.jpg")            # doctest: +SKIP
>>> img = stylenas_cli.stylize(Image.open("a.png"), Image.open("b.png"), alpha=0.8)  # +SKIP
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from . import stylestore
from .batch import StylizeConfig, plan_image_outputs, stylize_files, stylize_images
from .config import DEFAULT_STYLE_SIZE, DEFAULT_WORK_SIZE, LiftConfig
from .images import ImageError, LoadedImage
from .model import StyleCache, Stylizer, check_side

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
) -> Path | Image.Image | np.ndarray:
    """Give ``content`` the colour and tone of ``style``; what ``stylenas stylize`` does.

    Args:
        content: a path (the result is written like the command line does: to ``output``,
            default ``<stem>_stylized.<ext>`` beside it, and its path returned), a PIL image
            (a PIL RGB image returned) or an ``(H, W, 3)`` array, uint8 or float in [0, 1]
            (an array of the same dtype returned).
        style: a path, PIL image or array.
        work_size: long side the network sees (None: every pixel); ``lift``: the guided
            filter's settings (default :class:`~stylenas_cli.config.LiftConfig`).
        regions: > 0: that many semantic regions found automatically in the style and
            matched in the content, each transferred on its own (``--auto-masks --regions``).

    Raises :class:`~stylenas_cli.errors.StylenasError` (one line) for unusable inputs."""
    if regions < 0:
        raise ValueError(f"regions must be 0 (none) or more, got {regions}")
    model = _model(arch, None if weights is None else str(weights), device, precision)
    lift = lift or LiftConfig()
    if isinstance(content, str | Path):
        if not isinstance(style, str | Path):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "style.png"
                _as_pil(style).save(path)
                return stylize(content, path, output, arch=arch, weights=weights, alpha=alpha,
                               work_size=work_size, style_size=style_size, lift=lift,
                               device=device, precision=precision, cache=False,
                               overwrite=overwrite, regions=regions)  # fmt: skip
        content = Path(content)
        [dest] = plan_image_outputs([content], output)
        cfg = StylizeConfig(alpha=alpha, overwrite=overwrite, work_size=work_size, lift=lift,
                            cache=cache, style_size=style_size, regions=regions)  # fmt: skip
        [result] = stylize_files(model, [content], Path(style), [dest], cfg)
        if not result.ok:
            raise ImageError(result.error)
        return dest
    image = _loaded(content)
    check_side(*image.size, "content")
    summary = _style(model, style, style_size, cache, regions)
    styled = stylize_images(model, [image], summary, alpha, None, work_size, lift)[0]
    if isinstance(content, Image.Image):
        return Image.fromarray(styled, "RGB")
    if np.issubdtype(np.asarray(content).dtype, np.floating):
        return styled.astype(np.asarray(content).dtype) / 255.0
    return styled


def _as_pil(image: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    arr = np.asarray(image)
    if np.issubdtype(arr.dtype, np.floating):
        arr = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError(f"expected an (H, W, 3) image array, got shape {arr.shape}")
    return Image.fromarray(arr.astype(np.uint8), "RGB")


def _loaded(image: Image.Image | np.ndarray) -> LoadedImage:
    return LoadedImage(np.ascontiguousarray(np.asarray(_as_pil(image))))


def _style(
    model: Stylizer, style: ImageLike, size: int, cache: bool, regions: int = 0
) -> StyleCache:
    if isinstance(style, str | Path):
        store = stylestore.cache_dir() if cache else None
        return model.load_style(style, size, cache_dir=store, regions=regions)
    pil = _as_pil(style)
    if max(pil.size) > size:
        pil.thumbnail((size, size), Image.Resampling.LANCZOS)
    loaded = _loaded(pil)
    check_side(*loaded.size, "style")
    return model.style_cache(loaded.rgb.to(model.device), regions=regions)

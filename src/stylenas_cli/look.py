"""A stylisation as a look that travels: the shipped pipeline run on some content photos, and
the 3D LUT (:mod:`.lut`) that maps their colours to what the pipeline made of them
(``stylenas lut``), and LUTs applied to photo files (``stylenas stylize --lut``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .batch import Job, Result, StylizeConfig, existing_output, stylize_images
from .config import DEFAULT_TRANSFER, TransferSettings
from .errors import StylenasError
from .images import LoadedImage, load_image, save_image
from .lut import DEFAULT_SIZE, Lut3D, colour_pairs, fit_lut
from .model import Stylizer
from .shape import check_side
from .style import StyleCache

FIT_SIZE = 1024  # long side the pipeline runs at for a fit: the lift's detail, bounded time


@dataclass
class LookFit:
    """A fitted look: the LUT, and how closely it reproduces the pipeline on each content
    (PSNR in dB of the LUT-applied photo against the pipeline's output, at the fit size)."""

    lut: Lut3D
    psnr: list[float] = field(default_factory=list)

    @property
    def mean_psnr(self) -> float:
        return float(np.mean(self.psnr)) if self.psnr else float("nan")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) between two 8-bit images of one shape."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def fit_look(
    model: Stylizer,
    contents: Sequence[LoadedImage],
    style: StyleCache,
    alpha: float = 1.0,
    settings: TransferSettings = DEFAULT_TRANSFER,
    size: int = DEFAULT_SIZE,
    fit_size: int | None = FIT_SIZE,
    work_size: int | None = None,
    on_content: Callable[[int], None] = lambda i: None,
) -> LookFit:
    """Run the pipeline on every content (at most ``fit_size`` on the long side) and fit one
    LUT of ``size``³ to all their colour pairs together (a look for a set of shots)."""
    from .config import DEFAULT_WORK_SIZE

    work_size = DEFAULT_WORK_SIZE if work_size is None else work_size
    pairs, shown = [], []
    for i, content in enumerate(contents):
        small = _at_most(content, fit_size)
        out = stylize_images(model, [small], style, alpha, None, work_size, None, settings)[0]
        pairs.append(colour_pairs(small.pixels, out))
        shown.append((small, out))
        on_content(i)
    src, dst, count = (torch.cat(parts) for parts in zip(*pairs))
    lut = fit_lut(src, dst, size, count)
    return LookFit(lut, [psnr(lut.apply(small.pixels), out) for small, out in shown])


def _at_most(image: LoadedImage, long_side: int | None) -> LoadedImage:
    w, h = image.size
    if long_side is None or max(w, h) <= long_side:
        return image
    scale = long_side / max(w, h)
    rgb = image.resized(max(1, round(h * scale)), max(1, round(w * scale)))
    if image.pixels.dtype == np.uint8:
        return LoadedImage((rgb[0].permute(1, 2, 0) * 255 + 0.5).to(torch.uint8).numpy())
    return LoadedImage(rgb[0].permute(1, 2, 0).numpy())


def load_contents(paths: Sequence[Path], max_pixels: int | None) -> list[LoadedImage]:
    """The content photos of a fit, each checked (an ``ImageError`` names the first bad)."""
    images = []
    for path in paths:
        img = load_image(path, None, max_pixels)
        check_side(*img.size, f"{path}: image")
        images.append(img)
    return images


def apply_lut_jobs(
    lut: Lut3D,
    jobs: Sequence[Job],
    cfg: StylizeConfig,
    on_result: Callable[[Result], None] = lambda r: None,
) -> list[Result]:
    """Apply ``lut`` to each job's content at full resolution (``cfg.max_size`` aside) and
    write its output, with the batch's rules (existing outputs, one result per job, a bad
    file fails alone); the job's style is the LUT file."""
    results = []
    for job in jobs:
        done = existing_output(job.content, job.output, cfg)
        if done is None:
            done = _apply_one(lut, job, cfg)
        done.style = job.style
        results.append(done)
        on_result(done)
    return results


def _apply_one(lut: Lut3D, job: Job, cfg: StylizeConfig) -> Result:
    t0 = time.perf_counter()
    try:
        img = load_image(job.content, cfg.max_size, cfg.max_pixels)
        out = lut.apply(img.pixels)
        alpha = cfg.alpha if job.alpha is None else job.alpha
        if alpha < 1.0:  # a lighter touch: blended toward the content
            base = img.pixels if img.pixels.dtype == np.uint8 else (img.pixels * 255 + 0.5)
            out = (alpha * out + (1 - alpha) * base.astype(np.float32) + 0.5).astype(np.uint8)
        save_image(out, job.output, img.alpha, cfg.overwrite)
    except StylenasError as err:  # unreadable content, an output in the way
        return Result(job.content, None, False, str(err))
    except OSError as err:
        return Result(job.content, None, False, f"{job.output}: could not write output ({err})")
    w, h = img.size
    return Result(job.content, job.output, True, None, w, h, time.perf_counter() - t0, "cpu",
                  notes=img.notes)  # fmt: skip

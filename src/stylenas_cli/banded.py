"""Convolutions computed band of rows by band, for inference on large images.

A reflection-padded conv normally holds its input, a padded copy of it and its output at
once; followed by a ReLU and a 2×2 max-pool, the full-size output lives only to be pooled.
:func:`banded_conv` computes the same result a band of output rows at a time (each band padded
on its own, with the rows it needs from its neighbours), so only the input and the final
(pooled) output are ever whole. It also takes several inputs whose convs add up, which is a
conv over their channel concatenation without the concatenated copy.

Used only when no gradient is needed and the image is large (:func:`worth_banding`): at
small sizes one whole conv is faster.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

BAND_PIXELS = 1 << 16  # output pixels per band
MIN_PIXELS = 1 << 19  # below this many pixels a whole conv is used


def worth_banding(x: torch.Tensor) -> bool:
    """Large and not being trained: a banded conv saves memory and loses nothing."""
    big = x.shape[-2] * x.shape[-1] >= MIN_PIXELS
    return big and not (torch.is_grad_enabled() and x.requires_grad)


def _rows(x: torch.Tensor, y0: int, y1: int, p: int) -> torch.Tensor:
    """Rows ``y0 - p .. y1 + p`` of ``x``, reflected at the image's own top and bottom,
    and ``p`` reflected columns on each side."""
    height = x.shape[-2]
    lo, hi = max(0, y0 - p), min(height, y1 + p)
    slab = x[:, :, lo:hi]
    return F.pad(slab, (p, p, p - (y0 - lo), p - (hi - y1)), mode="reflect")


def banded_conv(
    inputs: Sequence[tuple[torch.Tensor, torch.Tensor]],
    bias: torch.Tensor | None,
    padding: int,
    relu: bool = False,
    pool: bool = False,
    band_pixels: int | None = None,
) -> torch.Tensor:
    """``Σ conv2d(reflect_pad(x_k), w_k) + bias`` over ``inputs = [(x_k, w_k)]``, then an
    optional ReLU and 2×2/2 max-pool, band by band.

    Args:
        inputs: feature maps ``(B, C_k, H, W)`` (one size) with their weights
            ``(C_out, C_k, k, k)``, ``k = 2·padding + 1``.
        bias: ``(C_out,)`` or None.
        band_pixels: output pixels per band (default :data:`BAND_PIXELS`).

    Returns:
        ``(B, C_out, H, W)``, or ``(B, C_out, H // 2, W // 2)`` with ``pool``; equal to the
        unbanded computation.
    """
    first = inputs[0][0]
    height, width = first.shape[-2:]
    band_pixels = band_pixels or BAND_PIXELS
    rows = max(2, band_pixels // max(1, width)) // 2 * 2  # even: pooling pairs rows
    stop = height // 2 * 2 if pool else height
    out = None
    for y0 in range(0, stop, rows):
        y1 = min(stop, y0 + rows)
        band = None
        for k, (x, w) in enumerate(inputs):
            part = F.conv2d(_rows(x, y0, y1, padding), w, bias if k == 0 else None)
            band = part if band is None else band.add_(part)
        if relu:
            band = torch.relu_(band)
        if pool:
            band = F.max_pool2d(band, 2)
        if out is None:
            size = (height // 2, width // 2) if pool else (height, width)
            out = band.new_empty(band.shape[0], band.shape[1], *size)
        r0 = y0 // 2 if pool else y0
        out[:, :, r0 : r0 + band.shape[-2]] = band
    return out

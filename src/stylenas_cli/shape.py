"""The sizes the network works at: the working copy of a photo, the smallest side the encoder
takes, and the mirror padding that lets a thinner photo through all the same."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .images import ImageError
from .wct import resize_labels

MIN_SIDE = 32  # relu5_1 (1/16) needs at least 2 pixels for reflection padding

Pads = tuple[int, int, int, int]  # (left, right, top, bottom), as F.pad takes them


def work_shape(height: int, width: int, work_size: int | None) -> tuple[int, int]:
    """``(h, w)`` the network sees: the long side at most ``work_size`` and the aspect kept; a
    photo no larger than that, or any photo with ``work_size=None`` (native), keeps its own
    size (the network never sees an upscaled photo)."""
    if work_size is None:
        return height, width
    if work_size < 1:
        raise ValueError(f"work size must be at least 1 px, got {work_size}")
    long_side = max(height, width)
    if long_side <= work_size:
        return height, width
    scale = work_size / long_side
    return max(1, round(height * scale)), max(1, round(width * scale))


def check_side(width: int, height: int, what: str) -> None:
    """Refuse an image too small to be a photo (both sides must be >= :data:`MIN_SIDE`; a
    working copy thinner than that is padded, :func:`mirror_pad`)."""
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"{what} is {width}x{height}; both sides must be >= {MIN_SIDE} px")


def min_side_pads(height: int, width: int, side: int = MIN_SIDE) -> Pads:
    """How much to pad an ``height × width`` image so both sides are at least ``side``."""
    dh, dw = max(0, side - height), max(0, side - width)
    return dw // 2, dw - dw // 2, dh // 2, dh - dh // 2


def mirror_pad(x: torch.Tensor, pads: Pads) -> torch.Tensor:
    """``(B, C, H, W)`` padded by ``pads`` with the image mirrored at its edges (mirrored
    again where it is thinner than the padding; a 1-px side repeats its pixels)."""
    left, right, top, bottom = pads
    while left or right or top or bottom:
        h, w = x.shape[-2:]
        if w == 1 and (left or right):  # nothing to mirror
            x, left, right = F.pad(x, (left, right, 0, 0), mode="replicate"), 0, 0
        elif h == 1 and (top or bottom):
            x, top, bottom = F.pad(x, (0, 0, top, bottom), mode="replicate"), 0, 0
        else:
            step = (min(left, w - 1), min(right, w - 1), min(top, h - 1), min(bottom, h - 1))
            x = F.pad(x, step, mode="reflect")
            left, right, top, bottom = (a - b for a, b in zip((left, right, top, bottom), step))
    return x


def unpad(x: torch.Tensor, pads: Pads) -> torch.Tensor:
    """The inverse of :func:`mirror_pad`: ``(..., H, W)`` cropped back."""
    left, right, top, bottom = pads
    h, w = x.shape[-2:]
    return x[..., top : h - bottom, left : w - right]


def pad_labels(labels: torch.Tensor, size: tuple[int, int], pads: Pads) -> torch.Tensor:
    """A label map ``(H', W')`` at an image's ``size``, mirrored out like the image."""
    at_size = resize_labels(labels, tuple(size))[None, None].float()
    return mirror_pad(at_size, pads)[0, 0].long()

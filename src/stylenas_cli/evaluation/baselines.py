"""Colour-transfer baselines scored beside the networks: the quick tricks people use instead.

Each baseline is a pure function ``(content, style) -> output``: RGB ``(H, W, 3)`` float
arrays in [0, 1]; the output has the content's size. They ignore label maps.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from skimage.color import lab2rgb, rgb2lab
from skimage.exposure import match_histograms

from ..errors import StylenasError
from .metrics import as_rgb

STD_EPS = 1e-6  # a flat channel is not scaled up to infinity


def reinhard_lab(content_lab: np.ndarray, style_lab: np.ndarray) -> np.ndarray:
    """Shift and scale each channel of ``content_lab`` ``(H, W, 3)`` to the mean and standard
    deviation of ``style_lab`` ``(H', W', 3)`` (the transfer itself, before any clipping)."""
    c_mean, c_std = content_lab.mean(axis=(0, 1)), content_lab.std(axis=(0, 1))
    s_mean, s_std = style_lab.mean(axis=(0, 1)), style_lab.std(axis=(0, 1))
    return (content_lab - c_mean) / np.maximum(c_std, STD_EPS) * s_std + s_mean


def reinhard(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Reinhard et al. 2001 colour transfer in CIE Lab (:func:`reinhard_lab`), then back to
    RGB; L is clipped to [0, 100] and colours outside the sRGB gamut are clipped."""
    lab = reinhard_lab(rgb2lab(as_rgb(content, "content")), rgb2lab(as_rgb(style, "style")))
    lab[..., 0] = np.clip(lab[..., 0], 0.0, 100.0)
    with warnings.catch_warnings():  # out-of-gamut colours are clipped, as documented
        warnings.simplefilter("ignore", UserWarning)
        rgb = lab2rgb(lab)
    return np.clip(rgb, 0.0, 1.0)


def histogram_match(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Match each RGB channel's histogram to the style's (``skimage.exposure.match_histograms``)."""
    c, s = as_rgb(content, "content"), as_rgb(style, "style")
    return np.clip(match_histograms(c, s, channel_axis=-1), 0.0, 1.0)


BASELINES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "reinhard": reinhard,
    "histogram": histogram_match,
}


def get(name: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A baseline by name; a typo raises :class:`~stylenas_cli.errors.StylenasError` listing
    the valid names."""
    try:
        return BASELINES[name]
    except KeyError:
        raise StylenasError(
            f"unknown baseline {name!r}: use one of {', '.join(sorted(BASELINES))}"
        ) from None

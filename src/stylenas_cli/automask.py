"""Semantic regions without hand-made masks (``--auto-masks``).

The style's deep features (VGG relu4_1, 1/8 of the image: what a pixel *is* rather than its
colour) are clustered into ``k`` regions by k-means on unit-length feature vectors; a
content pixel joins the region whose centre its own feature is closest to (cosine), so sky
goes to the style's sky and ground to its ground. The style's regions do not depend on the
content: they are computed once with the style's statistics. The resulting label maps are
used like user-given masks (per-region WCT with soft boundaries, :func:`~stylenas_cli.wct.wct`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.cluster.vq import kmeans2

from .config import DEFAULT_REGIONS

LEVEL = "relu4_1"
MAX_SAMPLES = 20_000  # feature vectors k-means sees (a sample of a large style)
MIN_SHARE = 0.05  # a region smaller than this share of the style is merged away


def _unit_rows(feature: torch.Tensor) -> torch.Tensor:
    """``(1, C, H, W)`` -> ``(H·W, C)`` float32 rows of unit length."""
    return F.normalize(feature[0].flatten(1).T.float(), dim=1)


def style_regions(
    feature: torch.Tensor, k: int = DEFAULT_REGIONS, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Style feature ``(1, C, H, W)`` -> centres ``(k', C)`` (unit length, k' ≤ k: regions
    under ``MIN_SHARE`` of the style are dropped and their pixels reassigned) and the
    style's label map ``(H, W)`` (long, values 0..k'-1)."""
    rows = _unit_rows(feature)
    gen = np.random.default_rng(seed)
    sample = rows.numpy()
    if len(sample) > MAX_SAMPLES:
        sample = sample[gen.choice(len(sample), MAX_SAMPLES, replace=False)]
    centres, _ = kmeans2(sample.astype(np.float64), k, minit="++", seed=seed)
    centres = F.normalize(torch.from_numpy(centres).float(), dim=1)
    labels = (rows @ centres.T).argmax(1)
    share = torch.bincount(labels, minlength=len(centres)).float() / len(labels)
    keep = share >= MIN_SHARE
    if not keep.any():
        keep[share.argmax()] = True
    centres = centres[keep]
    labels = (rows @ centres.T).argmax(1)
    return centres, labels.view(feature.shape[-2:])


def assign_regions(feature: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Content feature ``(1, C, H, W)`` and style centres ``(k, C)`` -> label map ``(H, W)``:
    each pixel's nearest centre by cosine similarity."""
    rows = _unit_rows(feature)
    return (rows @ centres.to(rows.device).T).argmax(1).view(feature.shape[-2:])

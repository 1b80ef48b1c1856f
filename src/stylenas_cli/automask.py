"""Semantic regions without hand-made masks (``--auto-masks``).

The style's deep features (VGG relu4_1 and relu5_1 side by side at 1/8 of the image,
:func:`matching_feature`: what a pixel *is* rather than its colour) are clustered into ``k``
regions by k-means on unit-length feature vectors; a content pixel joins the region whose
centre its own feature is closest to (cosine), so sky goes to the style's sky and ground to
its ground. The style's regions do not depend on the content: they are computed once with
the style's statistics. The resulting label maps are used like user-given masks (per-region
WCT with soft boundaries, :func:`~stylenas_cli.wct.wct`).

Where the content's pixels are about as near one centre as the other
(:func:`match_margin`), its labels would be noise: the photo is then transferred as one
region. A deep label is an 8-pixel cell whose receptive field reaches past an object's
outline, and a boundary across a smooth wall or sky draws a seam where two transforms
meet: :func:`segment_regions` decides the labels per segment of the photo, cut along its
edges (:func:`refine_regions`, the older way, lets the colours decide a band of pixels
along each boundary).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.cluster.vq import kmeans2
from skimage.segmentation import felzenszwalb

from .config import DEFAULT_REGIONS

LEVELS = ("relu4_1", "relu5_1")  # matched together, at the first one's resolution
MAX_SAMPLES = 20_000  # feature vectors k-means sees (a sample of a large style)
MIN_SHARE = 0.05  # a region smaller than this share of the style is merged away
COLOUR_EPS = 1e-3  # variance added to each region's colour covariance (a grey photo's is flat)


def matching_feature(feats: dict[str, torch.Tensor]) -> torch.Tensor:
    """Encoder features ``{level: (1, C, H/2^k, W/2^k)}`` -> ``(1, ΣC, h, w)`` float32 at
    the first of :data:`LEVELS`' resolution: each level's vectors at unit length, the
    coarser ones upsampled (bilinear), side by side. relu5_1 sees whole regions where
    relu4_1 sees their texture (a night sky's clouds against its clear top)."""
    first = feats[LEVELS[0]]
    parts = [
        F.interpolate(
            F.normalize(feats[level].float(), dim=1), size=first.shape[-2:], mode="bilinear"
        )
        for level in LEVELS
    ]
    return torch.cat(parts, 1)


def _unit_rows(feature: torch.Tensor) -> torch.Tensor:
    """``(1, C, H, W)`` -> ``(H·W, C)`` float32 rows of unit length."""
    return F.normalize(feature[0].flatten(1).T.float(), dim=1)


def _similarity(rows: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Unit rows ``(N, C)`` and centres ``(k, C)`` -> cosines ``(N, k)`` in float32, also
    inside an autocast block (bf16 keeps ~3 digits: margins of a few hundredths blur)."""
    with torch.autocast(rows.device.type, enabled=False):
        return rows.float() @ centres.to(rows.device).float().T


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
    labels = _similarity(rows, centres).argmax(1)
    share = torch.bincount(labels, minlength=len(centres)).float() / len(labels)
    keep = share >= MIN_SHARE
    if not keep.any():
        keep[share.argmax()] = True
    centres = centres[keep]
    labels = _similarity(rows, centres).argmax(1)
    return centres, labels.view(feature.shape[-2:])


def assign_regions(feature: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Content feature ``(1, C, H, W)`` and style centres ``(k, C)`` -> label map ``(H, W)``:
    each pixel's nearest centre by cosine similarity."""
    rows = _unit_rows(feature)
    return _similarity(rows, centres).argmax(1).view(feature.shape[-2:])


def match_margin(feature: torch.Tensor, centres: torch.Tensor) -> float:
    """Content feature ``(1, C, H, W)`` and style centres ``(k, C)`` -> the median over the
    content's pixels of how much closer (cosine) their nearest centre is than the next one;
    ``inf`` for one centre. Near 0 the content cannot tell the style's regions apart: its
    labels are noise (a flower split into patches that take a night street's lights and
    its dark tarmac)."""
    if len(centres) < 2:
        return float("inf")
    sims = _similarity(_unit_rows(feature), centres)
    best = sims.topk(2, dim=1).values
    return float((best[:, 0] - best[:, 1]).median())


def segment_regions(
    feature: torch.Tensor, centres: torch.Tensor, image: torch.Tensor, scale: float
) -> torch.Tensor:
    """Feature ``(1, C, h', w')``, centres ``(k, C)`` and the photo ``(3, H, W)`` in [0, 1]
    -> labels ``(H, W)``, one per segment of the photo: the photo is cut into segments along
    its edges (Felzenszwalb's graph segmentation, ``scale`` larger: larger segments) and
    each segment joins the centre its pixels are nearest to in sum (similarities upsampled
    bilinearly). A boundary then never crosses a smooth area (a wall, a sky's gradient),
    where two regions' transforms meeting draw a seam."""
    h, w = image.shape[-2:]
    pixels = image.permute(1, 2, 0).float().cpu().numpy()
    segments = felzenszwalb(pixels, scale=scale, sigma=0.8, min_size=max(1, h * w // 2000))
    seg = torch.from_numpy(segments).long().flatten().to(feature.device)
    sims = _similarity(_unit_rows(feature), centres).T
    sims = F.interpolate(sims.reshape(1, len(centres), *feature.shape[-2:]), size=(h, w),
                         mode="bilinear")[0].flatten(1)  # fmt: skip
    total = torch.zeros(len(centres), int(seg.max()) + 1, device=seg.device)
    total.index_add_(1, seg, sims)
    return total.argmax(0)[seg].view(h, w)


def refine_regions(labels: torch.Tensor, image: torch.Tensor, band: int) -> torch.Tensor:
    """Coarse labels ``(h', w')`` (e.g. :func:`assign_regions`' at 1/8) and the photo ``(3, H,
    W)`` in [0, 1] -> labels ``(H, W)`` whose boundaries follow the photo.

    Each region's colours are modelled by one Gaussian (RGB mean and covariance of its
    pixels, weighted by its share of the photo); a pixel within ``band`` px of a region
    boundary takes the most likely of the regions found within ``band`` px of it, the rest
    keep their label."""
    h, w = image.shape[-2:]
    coarse = F.interpolate(labels[None, None].float(), size=(h, w), mode="nearest")[0, 0].long()
    k = int(coarse.max()) + 1
    onehot = F.one_hot(coarse, k).permute(2, 0, 1).float()  # (K, H, W)
    near = F.max_pool2d(onehot[None], 2 * band + 1, 1, band)[0] > 0  # label within band
    colours = image.flatten(1).T.double()  # (H·W, 3)
    flat = coarse.flatten()
    scores = torch.full((k, h * w), -torch.inf, dtype=torch.float64, device=image.device)
    for i in range(k):
        own = colours[flat == i]
        if len(own) < 2:
            continue
        cov = torch.cov(own.T) + COLOUR_EPS * torch.eye(3, dtype=own.dtype, device=own.device)
        diff = colours - own.mean(0)
        mahalanobis = (diff @ torch.linalg.inv(cov) * diff).sum(1)
        prior = np.log(len(own) / len(flat))
        scores[i] = -0.5 * (mahalanobis + torch.logdet(cov)) + prior
    scores = scores.view(k, h, w).masked_fill(~near, -torch.inf)
    border = near.sum(0) > 1  # more than one label within the band
    return torch.where(border, scores.argmax(0), coarse)

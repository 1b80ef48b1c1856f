"""Regions of a photo for the per-region transfer: drawn label maps snapped to the photo's
edges, and semantic regions found without hand-made masks (``--auto-masks``); both become the
:class:`~stylenas_cli.wct.Regions` that :func:`~stylenas_cli.wct.wct` reads.

The style's deep features (VGG relu4_1 and relu5_1 side by side at 1/8 of the image,
:func:`matching_feature`: what a pixel *is* rather than its colour) are clustered into ``k``
regions by k-means on unit-length feature vectors; a content pixel joins the region whose
centre its own feature is closest to (cosine), so sky goes to the style's sky and ground to
its ground. The style's regions do not depend on the content: they are computed once with
the style's statistics. The resulting label maps are used like user-given masks (per-region
WCT with soft boundaries along the photo's edges, :func:`auto_regions`).

Where the content's pixels are about as near one centre as the other
(:func:`match_margin`), its labels would be noise: the photo is then transferred as one
region. A deep label is an 8-pixel cell whose receptive field reaches past an object's
outline, and a boundary across a smooth wall or sky draws a seam where two transforms
meet: :func:`segment_regions` decides the labels per segment of the photo, cut along its
edges.

scipy (k-means) and scikit-image (segmentation) are imported only when automatic regions
are asked for.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .config import DEFAULT_REGIONS, TransferSettings
from .lift import guided_filter
from .wct import MIN_LABEL_PIXELS, Regions

LEVELS = ("relu4_1", "relu5_1")  # matched together, at the first one's resolution
MAX_SAMPLES = 20_000  # feature vectors k-means sees (a sample of a large style)
MIN_SHARE = 0.05  # a region smaller than this share of the style is merged away
SNAP_EPS = 1e-3  # guided-filter ridge when a label map follows a photo's edges
SNAP_PASSES = 2


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
    from scipy.cluster.vq import kmeans2

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
    from skimage.segmentation import felzenszwalb

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


def auto_regions(
    feats: dict[str, torch.Tensor],
    centres: torch.Tensor,
    photo: torch.Tensor,
    settings: TransferSettings,
) -> Regions | None:
    """A content's automatic regions from its encoder features and the photo ``(3, H, W)``
    in [0, 1] (the network's input): labels per segment (:func:`segment_regions`) blended
    along the photo's edges (:func:`soft_regions`), or ``None`` where the content cannot
    tell the style's regions apart (:func:`match_margin`): then it is one region."""
    deep = matching_feature(feats)
    if match_margin(deep, centres) < settings.min_match_margin:
        return None
    labels = segment_regions(deep, centres, photo, settings.region_segments)
    radius = max(1, round(settings.mask_softness * max(photo.shape[-2:])))
    return soft_regions(labels, photo, radius)


def soft_regions(labels: torch.Tensor, guide: torch.Tensor, radius: int) -> Regions:
    """A label map ``(H, W)`` and the photo ``(3, H, W)`` it labels -> :class:`Regions` with
    soft boundaries: each label's one-hot map guided-filtered by the photo (smooth where the
    photo is, kept sharp across its edges, so no region's transform reaches across an
    outline), clamped to [0, 1]."""
    ids = labels.unique().tolist()
    onehot = torch.stack([(labels == i) for i in ids]).float()[None]  # (1, K, H, W)
    soft = guided_filter(guide[None].float(), onehot, radius, SNAP_EPS)[0].clamp_(0, 1)
    return Regions(labels, soft, tuple(ids))


def snap_labels(
    labels: torch.Tensor,
    guide: torch.Tensor,
    radius: int,
    eps: float = SNAP_EPS,
    passes: int = SNAP_PASSES,
) -> torch.Tensor:
    """A label map snapped to a photo's edges: labels ``(H', W')`` (any size, e.g. drawn at
    full resolution), guide ``(3, H, W)`` the photo in [0, 1] -> ``(H, W)`` labels.

    Each label's mask is area-resized to the guide and guided-filtered by it
    (:func:`~stylenas_cli.lift.guided_filter`), and every pixel takes the label of the largest
    result: a boundary drawn a few pixels off the object's outline moves onto it, so the
    pixels beside an object do not take the object's style (a halo). One pass moves a
    boundary about a quarter of ``radius``, two about half."""
    size = tuple(guide.shape[-2:])
    ids, counts = labels.unique(return_counts=True)
    # Labels too small to be whitened at the guide's size (a drawing's anti-aliased edge
    # colours) are not kept: their pixels join the neighbouring region they resemble.
    big = counts * (size[0] * size[1]) >= MIN_LABEL_PIXELS * labels.numel()
    ids = ids[big] if bool(big.any()) else ids[counts.argmax()][None]
    onehot = torch.stack(  # one label at a time: (K, H, W) at the guide's size only
        [
            F.interpolate((labels == i)[None, None].float(), size=size, mode="area")[0, 0]
            for i in ids
        ]  # fmt: skip
    ).to(guide.device)
    for _ in range(passes):
        soft = guided_filter(guide[None].float(), onehot[None], radius, eps)[0]
        onehot = F.one_hot(soft.argmax(0), len(ids)).permute(2, 0, 1).float()
    return ids.to(guide.device)[onehot.argmax(0)]

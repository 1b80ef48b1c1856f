"""Whitening and colouring transform (WCT), batched, with optional per-label masks.

The whole transform of one feature map is a single affine map of its channels,
``out = M · x + b`` with ``M (C, C)``: whitening by the content covariance, colouring by the
style covariance and the ``alpha`` blend all fold into ``M`` and ``b``. Only the C×C
statistics are computed in float64 (covariances summed from float32 chunk products,
eigendecompositions with a small ridge, eigenvalues below ``eig_threshold`` dropped); the
per-pixel product runs in the features' own dtype, so no full-resolution float64 copy is
ever made. The style side is summarised once by :func:`style_stats` so a style can be reused
for many contents (batches, video frames).

This module is the one home of the whitening maths: the video stabiliser smooths the content
moments through the ``smooth`` hook of :func:`wct` instead of whitening on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

RIDGE = 1e-5
EIG_THRESHOLD = 1e-5
MIN_LABEL_PIXELS = 10  # fewer pixels than this: a label's own statistics are not trusted
CHUNK = 1 << 14  # pixels per chunk when accumulating a covariance

# (mean (B, C, 1), cov (B, C, C)) -> the same, e.g. averaged over a video shot.
Smooth = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class ColourStats:
    """Mean ``(C, 1)`` and colouring matrix ``(C, C)`` (= cov^1/2) of one style feature."""

    mean: torch.Tensor
    colour: torch.Tensor


def _check_feature(x: torch.Tensor, name: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name}: expected (B, C, H, W), got {tuple(x.shape)}")


def moments(flat: torch.Tensor, chunk: int = CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``(..., C, N)`` (any float dtype) -> float64 mean ``(..., C, 1)`` and
    unbiased covariance ``(..., C, C)``. Chunks of ``chunk`` pixels are centred on the first
    chunk's mean and multiplied in float32 (twice as fast as float64 on a CPU; centred, a
    chunk's products lose nothing that matters), then summed in float64."""
    n = flat.shape[-1]
    # Shift by the first chunk's mean: E[xxᵀ] − μμᵀ then loses no precision.
    shift = flat[..., :chunk].float().mean(-1, keepdim=True)
    total = torch.zeros_like(shift, dtype=torch.float64)
    outer = torch.zeros(*flat.shape[:-1], flat.shape[-2], dtype=torch.float64, device=flat.device)
    for part in flat.split(chunk, dim=-1):
        p = part.float() - shift
        total += p.sum(-1, keepdim=True, dtype=torch.float64)
        outer += (p @ p.transpose(-1, -2)).double()
    d = total / n
    cov = (outer - n * (d @ d.transpose(-1, -2))) / max(n - 1, 1)
    return shift.double() + d, cov


def matrix_power(
    cov: torch.Tensor, power: float, ridge: float = RIDGE, eig_threshold: float = EIG_THRESHOLD
) -> torch.Tensor:
    """Symmetric ``(..., C, C)`` -> ``(cov + ridge·I)^power`` (float64); eigen-directions with
    eigenvalues at or below ``eig_threshold`` are dropped (0 in the result)."""
    eye = torch.eye(cov.shape[-1], dtype=torch.float64, device=cov.device)
    evals, evecs = torch.linalg.eigh(cov.double() + ridge * eye)
    keep = evals > eig_threshold
    scaled = torch.where(keep, evals.clamp_min(eig_threshold).pow(power), torch.zeros_like(evals))
    return (evecs * scaled.unsqueeze(-2)) @ evecs.transpose(-1, -2)


def whitening_matrix(
    cov: torch.Tensor,
    shrink: float = 0.0,
    ridge: float = RIDGE,
    eig_threshold: float = EIG_THRESHOLD,
) -> torch.Tensor:
    """Content covariance ``(..., C, C)`` -> its inverse square root.

    ``shrink`` > 0 whitens with ``(cov + shrink·diag(cov)) / (1 + shrink)`` instead: the
    channel variances are still normalised but weak correlated directions are amplified
    less (the reference code's regularisation), which avoids blotches."""
    if shrink:
        cov = (cov + shrink * torch.diag_embed(cov.diagonal(dim1=-2, dim2=-1))) / (1 + shrink)
    return matrix_power(cov, -0.5, ridge, eig_threshold)


@dataclass(frozen=True)
class Transform:
    """One transfer ``y = M·x + b`` (``M (B, C, C)``, ``b (B, C, 1)``, float64), optionally with
    a reach limit: where a pixel's whitened vector ``white·(x − mean)`` has an RMS above
    ``reach``, its style-coloured part ``excess·(x − mean)`` is scaled down to that RMS
    (applied in float32: three C×C products per pixel instead of one)."""

    m: torch.Tensor
    b: torch.Tensor
    reach: float = 0.0
    mean: torch.Tensor | None = None  # (B, C, 1)
    white: torch.Tensor | None = None  # (B, C, C)
    excess: torch.Tensor | None = None  # (B, C, C)

    def apply(self, flat: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """``flat (B, C, N)`` -> transformed, in ``flat``'s dtype (``inplace``: written back)."""
        if not self.reach:
            return apply_transform(flat, self.m, self.b, inplace)
        c = flat.shape[1]
        # One product per chunk gives the affine result, the whitened vector and the part to
        # scale back: y = M·(x − mean) + (M·mean + b) − cut·excess·(x − mean).
        rows = torch.cat([self.m, self.white, self.excess], 1).float()  # (B, 3C, C)
        offset = (self.m @ self.mean + self.b).float()
        mean = self.mean.float()
        out = flat if inplace else torch.empty_like(flat)
        for part, dst in zip(flat.split(CHUNK, dim=-1), out.split(CHUNK, dim=-1)):
            y, white, excess = (rows @ (part.float() - mean)).split(c, dim=1)
            rms = white.pow(2).mean(1, keepdim=True).sqrt()  # (B, 1, n)
            cut = (1.0 - self.reach / rms.clamp_min(1e-12)).clamp_min(0.0)  # 1 − scale
            dst.copy_(y.add_(offset).sub_(cut * excess))
        return out


def transfer(
    mean: torch.Tensor,
    cov: torch.Tensor,
    stats: ColourStats,
    alpha: float = 1.0,
    shrink: float = 0.0,
    keep: torch.Tensor | None = None,
    reach: float = 0.0,
) -> Transform:
    """Content moments (mean ``(B, C, 1)``, cov ``(B, C, C)``) and a style's statistics ->
    the :class:`Transform` ``y = alpha·(colour · whiten(x − mean) + style_mean) + (1 −
    alpha)·x``; ``keep`` ``(B, C, 1)``: the share of each channel transferred on its own
    instead, the content's pattern at the style's mean and deviation (AdaIN; see
    :func:`channel_keep`); ``reach`` > 0: a pixel's whitened vector is coloured at most at
    this RMS (the content's rarest pixels, its sharpest edges, are where colouring
    extrapolates furthest)."""
    colour_m = stats.colour.to(cov.device, torch.float64)
    white = whitening_matrix(cov, shrink)
    t = colour_m @ white
    eye = torch.eye(cov.shape[-1], dtype=torch.float64, device=cov.device)
    m = alpha * t + (1.0 - alpha) * eye
    style_mean = stats.mean.to(cov.device, torch.float64)
    b = alpha * (style_mean - t @ mean.double())
    excess = alpha * t
    if keep is not None:
        # The kept share: each channel's own deviations scaled to the style's (a decoder that
        # instance-normalises sees the content's pattern; with regions every region's
        # channel keeps the mean and scale its styled neighbours have).
        style_sd, content_sd = channel_deviations(cov, colour_m)
        gain = (style_sd / content_sd.clamp_min(1e-6)).unsqueeze(-1)  # (B, C, 1)
        m = (1.0 - keep) * m + keep * (alpha * gain + 1.0 - alpha) * eye
        b = (1.0 - keep) * b + keep * alpha * (style_mean - gain * mean.double())
        excess = (1.0 - keep) * excess
    if not reach:
        return Transform(m, b)
    return Transform(m, b, reach, mean.double(), white.expand_as(m), excess)


def channel_deviations(
    cov: torch.Tensor, colour_m: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel standard deviations (float64): the style's ``(C,)`` from its colouring
    matrix ``(C, C)`` and the content's ``(B, C)`` from its covariance ``(B, C, C)``."""
    colour_m = colour_m.to(cov.device, torch.float64)
    style_sd = colour_m.pow(2).sum(-1).sqrt()  # colour is symmetric: diag(colour²)^½
    return style_sd, cov.double().diagonal(dim1=-2, dim2=-1).clamp_min(0).sqrt()


def channel_keep(cov: torch.Tensor, colour_m: torch.Tensor, ratio: float) -> torch.Tensor:
    """The share of each channel to transfer on its own (the content's pattern, see
    :func:`transfer`) instead of by WCT, ``(B, C, 1)`` in [0, 1], from the content's
    covariance ``(B, C, C)`` and the style's colouring matrix ``(C, C)``.

    A channel the style barely uses (its standard deviation below ``ratio`` × the content's:
    a night photo never fires relu1_1's filters for bright yellow) is coloured with almost no
    variance, a faint mixture of the content's whitened directions, strongest at the
    content's sharpest edges. A decoder that instance-normalises its skips blows that mixture
    up to full strength: a bright rim along a ridge. Such a channel keeps the
    content's own pattern instead: all of it at zero style deviation, none at ``ratio``."""
    style_sd, content_sd = channel_deviations(cov, colour_m)
    use = style_sd / (ratio * content_sd).clamp_min(torch.finfo(torch.float64).tiny)
    return (1.0 - use.clamp(0.0, 1.0)).unsqueeze(-1)


def apply_transform(
    flat: torch.Tensor, m: torch.Tensor, b: torch.Tensor, inplace: bool = False
) -> torch.Tensor:
    """``M (B, C, C)``, ``b (B, C, 1)`` applied to ``flat (B, C, N)`` in ``flat``'s dtype;
    ``inplace``: written back into ``flat`` chunk by chunk (no second full-size tensor)."""
    m, b = m.to(flat.dtype), b.to(flat.dtype)
    if not inplace:  # .to: under autocast baddbmm answers in the autocast dtype
        return torch.baddbmm(b, m, flat).to(flat.dtype)
    for part in flat.split(CHUNK, dim=-1):
        part.copy_(torch.baddbmm(b, m, part))
    return flat


def colour_stats_of(
    flat: torch.Tensor, ridge: float = RIDGE, eig_threshold: float = EIG_THRESHOLD
) -> ColourStats:
    """``(C, N)`` features -> :class:`ColourStats` (float64)."""
    mean, cov = moments(flat)
    return ColourStats(mean, matrix_power(cov, 0.5, ridge, eig_threshold))


def resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Integer label map ``(H, W)`` -> ``size`` with nearest-neighbour sampling."""
    if tuple(labels.shape) == tuple(size):
        return labels
    resized = F.interpolate(labels[None, None].float(), size=tuple(size), mode="nearest")
    return resized[0, 0].long()


def trusted_labels(labels: torch.Tensor) -> list[int]:
    """The labels of a map (any shape) with at least :data:`MIN_LABEL_PIXELS` pixels, in
    ascending order (one pass: a drawn map's anti-aliased edges hold thousands of colours)."""
    ids, counts = labels.unique(return_counts=True)
    return ids[counts >= MIN_LABEL_PIXELS].tolist()


def style_stats(style: torch.Tensor, labels: torch.Tensor | None = None) -> dict[int, ColourStats]:
    """Style feature ``(1, C, H, W)`` -> per-label colour statistics.

    Key ``-1`` always holds the whole image's statistics; with a label map ``(H', W')`` every
    label with enough pixels gets its own entry.
    """
    _check_feature(style, "style_stats")
    if style.shape[0] != 1:
        raise ValueError(f"style_stats takes one style feature, got batch {style.shape[0]}")
    flat = style[0].flatten(1)  # (C, H*W)
    stats = {-1: colour_stats_of(flat)}
    if labels is not None:
        lab = resize_labels(labels, style.shape[-2:]).flatten().to(flat.device)
        for label in trusted_labels(lab):
            stats[label] = colour_stats_of(flat[:, lab == label])
    return stats


@dataclass(frozen=True)
class Regions:
    """Where a content's regions are, read by :func:`wct` at each feature's size: a label
    map ``labels (H, W)`` and, for soft boundaries, each label's weight map ``soft (K, H, W)``
    at the same size (rows named by ``ids``, each in [0, 1], not yet normalised)."""

    labels: torch.Tensor
    soft: torch.Tensor | None = None
    ids: tuple[int, ...] = ()

    def weights(self, ids: list[int], size: tuple[int, int]) -> torch.Tensor:
        """``(len(ids), h, w)`` weights of the labels ``ids`` at ``size``: summing to 1
        where any of them is near, 0 elsewhere (area-resized)."""
        rows = self.soft[[self.ids.index(i) for i in ids]]
        total = rows.sum(0, keepdim=True)
        rows = torch.where(total > 0, rows / total.clamp_min(1e-12), rows)
        return F.interpolate(rows[None], size=size, mode="area")[0]


def wct(
    content: torch.Tensor,
    stats: dict[int, ColourStats],
    alpha: float = 1.0,
    regions: Regions | None = None,
    shrink: float = 0.0,
    smooth: Smooth | None = None,
    inplace: bool = False,
    region_prior: float = 0.0,
    dead_ratio: float = 0.0,
    reach: float = 0.0,
) -> torch.Tensor:
    """Whiten each content feature and colour it with the style's statistics.

    Args:
        content: ``(B, C, H, W)`` content features.
        stats: from :func:`style_stats` (key ``-1`` = whole style image).
        alpha: blend, 1 = full transfer, 0 = the content feature unchanged.
        regions: optional :class:`Regions` of the content, shared by the batch; each label's
            pixels are whitened with their own statistics and coloured with the style's
            statistics for that label (the whole style's if the style lacks it); with
            ``regions.soft`` each pixel blends its neighbourhood's region transforms.
        shrink: whitening regularisation, see :func:`whitening_matrix`.
        smooth: optional hook on the content moments before whitening (no regions), e.g.
            the video stabiliser's average over a shot.
        inplace: overwrite ``content`` with the result (saves a full-size copy).
        region_prior: with regions, each region is whitened with its own covariance mixed
            with this share of the whole feature map's and coloured with its style region's
            colouring matrix mixed with the same share of the whole style's
            (:func:`prior_spread`); each region keeps its own means. 1: one linear map for
            every region, only the means differ.
        dead_ratio: channels the style barely uses keep the content's own deviations
            (:func:`channel_keep`, from the whole photos' statistics also with regions);
            0 = off.
        reach: each pixel's whitened vector is coloured at most at this RMS
            (:class:`Transform`); 0 = no limit.

    Returns:
        ``(B, C, H, W)`` in the dtype of ``content``.
    """
    _check_feature(content, "wct")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if alpha == 0.0:
        return content
    b, c, h, w = content.shape
    flat = content.reshape(b, c, h * w)
    if regions is None:
        mean, cov = moments(flat)
        if smooth is not None:
            mean, cov = smooth(mean, cov)
        keep = channel_keep(cov, stats[-1].colour, dead_ratio) if dead_ratio else None
        t = transfer(mean, cov, stats[-1], alpha, shrink, keep, reach)
        return t.apply(flat, inplace).reshape(b, c, h, w)
    flat_lab = resize_labels(regions.labels, (h, w)).to(content.device).flatten()
    ids = trusted_labels(flat_lab)
    whole_cov = moments(flat)[1] if region_prior or dead_ratio else None
    # Which channels the style barely uses is a property of the whole photos: every region
    # keeps the same share of each channel (a smooth style region is not "unused").
    keep = channel_keep(whole_cov, stats[-1].colour, dead_ratio) if dead_ratio else None
    transforms = []
    for label in ids:  # too few pixels to whiten: left as they are
        mean, cov = moments(flat[:, :, flat_lab == label])  # (B, C, n)
        stat = stats.get(label, stats[-1])
        if region_prior:
            cov = prior_cov(cov, whole_cov, region_prior)
            stat = prior_spread(stat, stats[-1], region_prior)
        transforms.append(transfer(mean, cov, stat, alpha, shrink, keep, reach))
    if regions.soft is None:
        out = flat if inplace else flat.clone()
        for label, t in zip(ids, transforms):
            sel = flat_lab == label
            out[:, :, sel] = t.apply(flat[:, :, sel])
        return out.reshape(b, c, h, w)
    # Soft boundaries: each pixel blends its neighbourhood's region transforms (no halo where
    # a hard switch between two very different transforms would draw one).
    weights = regions.weights(ids, (h, w)).to(flat.device, flat.dtype)
    out = flat * (1 - weights.sum(0).flatten())  # pixels of no trusted region: unchanged
    for wk, t in zip(weights, transforms):
        out += wk.flatten() * t.apply(flat)
    return out.reshape(b, c, h, w)


def prior_spread(region: ColourStats, whole: ColourStats, share: float) -> ColourStats:
    """A style region's statistics with ``share`` of the whole style's colouring matrix
    mixed into its own (:func:`prior_cov`); the region's mean is kept."""
    return ColourStats(region.mean, prior_cov(region.colour, whole.colour, share))


def prior_cov(region: torch.Tensor, whole: torch.Tensor, share: float) -> torch.Tensor:
    """``(1 - share)·region + share·whole`` for covariances ``(..., C, C)``: a region's
    whitening then amplifies no direction much beyond what the whole map's would."""
    return (1 - share) * region + share * whole

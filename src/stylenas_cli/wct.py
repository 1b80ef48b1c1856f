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

from .lift import guided_filter

RIDGE = 1e-5
EIG_THRESHOLD = 1e-5
MIN_LABEL_PIXELS = 10  # fewer pixels than this: a label's own statistics are not trusted
CHUNK = 1 << 14  # pixels per chunk when accumulating a covariance
SNAP_EPS = 1e-3  # guided filter ridge when snapping a label map to a photo's edges
SNAP_PASSES = 2

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
    cov: torch.Tensor,
    power: float,
    ridge: float = RIDGE,
    eig_threshold: float = EIG_THRESHOLD,
    floor: float = 0.0,
) -> torch.Tensor:
    """Symmetric ``(..., C, C)`` -> ``(cov + ridge·I)^power`` (float64); eigen-directions with
    eigenvalues at or below ``eig_threshold`` are dropped (0 in the result), and ``floor`` > 0
    raises the others to at least ``floor`` × the largest eigenvalue (relative to the
    spectrum: weak directions are not amplified beyond ``floor^-1/2`` of the strongest)."""
    eye = torch.eye(cov.shape[-1], dtype=torch.float64, device=cov.device)
    evals, evecs = torch.linalg.eigh(cov.double() + ridge * eye)
    keep = evals > eig_threshold
    if floor:
        evals = torch.maximum(evals, floor * evals[..., -1:])  # eigh: ascending
    scaled = torch.where(keep, evals.clamp_min(eig_threshold).pow(power), torch.zeros_like(evals))
    return (evecs * scaled.unsqueeze(-2)) @ evecs.transpose(-1, -2)


def whitening_matrix(
    cov: torch.Tensor,
    shrink: float = 0.0,
    ridge: float = RIDGE,
    eig_threshold: float = EIG_THRESHOLD,
    floor: float = 0.0,
) -> torch.Tensor:
    """Content covariance ``(..., C, C)`` -> its inverse square root.

    ``shrink`` > 0 whitens with ``(cov + shrink·diag(cov)) / (1 + shrink)`` instead: the
    channel variances are still normalised but weak correlated directions are amplified
    less (the reference code's regularisation), which avoids blotches. ``floor``: a relative
    eigenvalue floor (:func:`matrix_power`), the other way to tame weak directions."""
    if shrink:
        cov = (cov + shrink * torch.diag_embed(cov.diagonal(dim1=-2, dim2=-1))) / (1 + shrink)
    return matrix_power(cov, -0.5, ridge, eig_threshold, floor)


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
    floor: float = 0.0,
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
    white = whitening_matrix(cov, shrink, floor=floor)
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
    up to full strength: a bright rim along pair 02's ridge. Such a channel keeps the
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


def whiten(
    x: torch.Tensor,
    ridge: float = RIDGE,
    eig_threshold: float = EIG_THRESHOLD,
    shrink: float = 0.0,
) -> torch.Tensor:
    """Centre and whiten each sample: ``(B, C, H, W)`` -> same shape, covariance ≈ I
    (see :func:`whitening_matrix` for ``shrink``)."""
    _check_feature(x, "whiten")
    b, c, h, w = x.shape
    flat = x.reshape(b, c, h * w)
    mean, cov = moments(flat)
    white = whitening_matrix(cov, shrink, ridge, eig_threshold)
    return apply_transform(flat, white, -white @ mean).reshape(b, c, h, w)


def colour_stats_of(
    flat: torch.Tensor, ridge: float = RIDGE, eig_threshold: float = EIG_THRESHOLD
) -> ColourStats:
    """``(C, N)`` features -> :class:`ColourStats` (float64)."""
    mean, cov = moments(flat)
    return ColourStats(mean, matrix_power(cov, 0.5, ridge, eig_threshold))


def colour(whitened: torch.Tensor, stats: ColourStats) -> torch.Tensor:
    """Colour whitened ``(B, C, H, W)`` features with a style's statistics."""
    _check_feature(whitened, "colour")
    b, c, h, w = whitened.shape
    m = stats.colour.to(whitened.device).expand(b, c, c)
    bias = stats.mean.to(whitened.device).expand(b, c, 1)
    return apply_transform(whitened.reshape(b, c, h * w), m, bias).reshape(b, c, h, w)


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


def wct(
    content: torch.Tensor,
    stats: dict[int, ColourStats],
    alpha: float = 1.0,
    labels: torch.Tensor | None = None,
    shrink: float = 0.0,
    smooth: Smooth | None = None,
    inplace: bool = False,
    floor: float = 0.0,
    soft: float = 0.0,
    global_mix: float = 0.0,
    region_prior: float = 0.0,
    guide: torch.Tensor | None = None,
    guide_memo: dict | None = None,
    dead_ratio: float = 0.0,
    reach: float = 0.0,
) -> torch.Tensor:
    """Whiten each content feature and colour it with the style's statistics.

    Args:
        content: ``(B, C, H, W)`` content features.
        stats: from :func:`style_stats` (key ``-1`` = whole style image).
        alpha: blend, 1 = full transfer, 0 = the content feature unchanged.
        labels: optional content label map ``(H', W')`` shared by the batch; each label's
            pixels are whitened with their own statistics and coloured with the style's
            statistics for that label (whole-style statistics if the style lacks it).
        shrink: whitening regularisation, see :func:`whitening_matrix`.
        smooth: optional hook on the content moments before whitening (unmasked only), e.g.
            the video stabiliser's average over a shot.
        inplace: overwrite ``content`` with the result (saves a full-size copy).
        floor: relative eigenvalue floor of the whitening, see :func:`matrix_power`.
        soft: with labels, blend the regions' transforms over a window of this fraction of
            the feature's long side (:func:`soft_weights`); 0 = hard region boundaries.
        global_mix: with labels, each region is coloured with its own style statistics
            mixed with this share of the whole style's (:func:`mix_stats`): a region's
            statistics come from fewer pixels, and the output as a whole should still take
            the whole style's.
        region_prior: with labels, each region is whitened with its own covariance mixed
            with this share of the whole feature map's and coloured with its style region's
            colouring matrix mixed with the same share of the whole style's
            (:func:`prior_spread`); each region keeps its own means. A region's own spread
            is what halos come from: a flat region (a clear sky) has tiny variances that
            whitening alone stretches over the style region's whole range (a glow along its
            edge), and the features along a boundary, which see both regions, are the
            region's rarest, carried to its style region's extremes (a night ground's few
            bright lights: a golden line along pair 02's ridge). 1: one linear map for
            every region, only the means differ.
        guide: with ``soft``, the photo ``(3, H, W)`` in [0, 1] (any size; the labels are
            read at its size): the blend follows its edges (:func:`guided_weights`), so no
            region's transform reaches across an outline (a bright rim) while blocky labels
            inside an object still blend.
        guide_memo: a dict shared by the calls of one stylisation (the same ``labels`` and
            ``guide`` at every transfer point): the guided weights are computed once.
        dead_ratio: channels the style barely uses keep the content's own deviations
            (:func:`channel_keep`, from the whole photos' statistics also with labels);
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
    if labels is None:
        mean, cov = moments(flat)
        if smooth is not None:
            mean, cov = smooth(mean, cov)
        keep = channel_keep(cov, stats[-1].colour, dead_ratio) if dead_ratio else None
        t = transfer(mean, cov, stats[-1], alpha, shrink, floor, keep, reach)
        return t.apply(flat, inplace).reshape(b, c, h, w)
    lab = resize_labels(labels, (h, w)).to(content.device)
    flat_lab = lab.flatten()
    ids = trusted_labels(flat_lab)
    whole_cov = moments(flat)[1] if region_prior or dead_ratio else None
    # Which channels the style barely uses is a property of the whole photos: every region
    # keeps the same share of each channel (a smooth style region is not "unused").
    keep = channel_keep(whole_cov, stats[-1].colour, dead_ratio) if dead_ratio else None
    transforms = []
    for label in ids:  # too few pixels to whiten: left as they are
        part = flat[:, :, flat_lab == label]  # (B, C, n)
        mean, cov = moments(part)
        stat = mix_stats(stats.get(label, stats[-1]), stats[-1], global_mix)
        if region_prior:
            cov = prior_cov(cov, whole_cov, region_prior)
            stat = prior_spread(stat, stats[-1], region_prior)
        transforms.append(transfer(mean, cov, stat, alpha, shrink, floor, keep, reach))
    if not soft:
        out = flat if inplace else flat.clone()
        for label, t in zip(ids, transforms):
            sel = flat_lab == label
            out[:, :, sel] = t.apply(flat[:, :, sel])
        return out.reshape(b, c, h, w)
    # Soft boundaries: each pixel blends its neighbourhood's region transforms (no halo where
    # a hard switch between two very different transforms would draw one).
    if guide is None:
        weights = soft_weights(lab, ids, max(1, round(soft * max(h, w))))
    else:
        size = tuple(guide.shape[-2:])
        radius = max(1, round(soft * max(size)))
        memo = {} if guide_memo is None else guide_memo
        key = (tuple(ids), radius)
        if key not in memo:
            fine = resize_labels(labels.to(guide.device), size)
            memo[key] = guided_weights(fine, ids, guide, radius)
        weights = F.interpolate(memo[key][None], size=(h, w), mode="area")[0]
    weights = weights.to(flat.device, flat.dtype)
    out = flat * (1 - weights.sum(0).flatten())  # pixels of no trusted region: unchanged
    for wk, t in zip(weights, transforms):
        out += wk.flatten() * t.apply(flat)
    return out.reshape(b, c, h, w)


def mix_stats(region: ColourStats, whole: ColourStats, share: float) -> ColourStats:
    """``(1 - share)·region + share·whole``, for the mean and the colouring matrix (a mix of
    two positive semi-definite square roots is one again)."""
    if not share:
        return region
    mix = ColourStats((1 - share) * region.mean, (1 - share) * region.colour)
    return ColourStats(mix.mean + share * whole.mean, mix.colour + share * whole.colour)


def prior_spread(region: ColourStats, whole: ColourStats, share: float) -> ColourStats:
    """A style region's statistics with ``share`` of the whole style's colouring matrix
    mixed into its own (:func:`prior_cov`); the region's mean is kept."""
    return ColourStats(region.mean, prior_cov(region.colour, whole.colour, share))


def prior_cov(region: torch.Tensor, whole: torch.Tensor, share: float) -> torch.Tensor:
    """``(1 - share)·region + share·whole`` for covariances ``(..., C, C)``: a region's
    whitening then amplifies no direction much beyond what the whole map's would."""
    return (1 - share) * region + share * whole


def guided_weights(
    labels: torch.Tensor, ids: list[int], guide: torch.Tensor, radius: int, eps: float = SNAP_EPS
) -> torch.Tensor:
    """Label map ``(H, W)`` and the photo ``(3, H, W)`` -> ``(K, H, W)`` weights of the labels
    ``ids``: each one-hot map guided-filtered by the photo (smooth where the photo is, kept
    sharp across its edges), clamped to [0, 1] and normalised to sum to 1 (0 where none of
    ``ids`` is near)."""
    onehot = torch.stack([(labels == i) for i in ids]).float()[None]  # (1, K, H, W)
    soft = guided_filter(guide[None].float(), onehot, radius, eps)[0].clamp_(0, 1)
    total = soft.sum(0, keepdim=True)
    return torch.where(total > 0, soft / total.clamp_min(1e-12), soft)


def soft_weights(labels: torch.Tensor, ids: list[int], radius: int) -> torch.Tensor:
    """Label map ``(H, W)`` -> ``(K, H, W)`` weights of the labels ``ids``: each one-hot map
    box-blurred over ``(2·radius+1)²``, then normalised to sum to 1 (0 where none of ``ids``
    is near)."""
    onehot = torch.stack([(labels == i) for i in ids]).float()[None]  # (1, K, H, W)
    k = 2 * radius + 1
    if min(labels.shape) < k:
        radius = max(0, (min(labels.shape) - 1) // 2)
        k = 2 * radius + 1
    blurred = F.avg_pool2d(onehot, k, stride=1, padding=radius, count_include_pad=False)[0]
    total = blurred.sum(0, keepdim=True)
    return torch.where(total > 0, blurred / total.clamp_min(1e-12), blurred)

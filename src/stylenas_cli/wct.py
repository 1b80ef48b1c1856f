"""Whitening and colouring transform (WCT), batched, with optional per-label masks.

All statistics are computed in float64 with a small ridge on the covariance diagonal;
eigenvalues below ``eig_threshold`` are dropped (their inverse square root set to 0).
The style side is summarised once by :func:`style_stats` so a style can be reused for many
contents (batches, video frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

RIDGE = 1e-5
EIG_THRESHOLD = 1e-5
MIN_LABEL_PIXELS = 10  # fewer pixels than this: a label's own statistics are not trusted


@dataclass(frozen=True)
class ColourStats:
    """Mean ``(C, 1)`` and colouring matrix ``(C, C)`` (= cov^1/2) of one style feature."""

    mean: torch.Tensor
    colour: torch.Tensor


def _check_feature(x: torch.Tensor, name: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name}: expected (B, C, H, W), got {tuple(x.shape)}")


def _cov_eig(
    x: torch.Tensor, ridge: float, shrink: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x (..., C, N)`` float64 -> mean ``(..., C, 1)``, eigenvalues, eigenvectors of cov."""
    n = x.shape[-1]
    mean = x.mean(-1, keepdim=True)
    xc = x - mean
    cov = xc @ xc.transpose(-1, -2) / max(n - 1, 1)
    if shrink:
        cov = (cov + shrink * torch.diag_embed(cov.diagonal(dim1=-2, dim2=-1))) / (1 + shrink)
    cov = cov + ridge * torch.eye(x.shape[-2], dtype=x.dtype, device=x.device)
    evals, evecs = torch.linalg.eigh(cov)
    return mean, evals, evecs


def _matrix_power(evals: torch.Tensor, evecs: torch.Tensor, power: float, threshold: float):
    keep = evals > threshold
    scaled = torch.where(keep, evals.clamp_min(threshold).pow(power), torch.zeros_like(evals))
    return (evecs * scaled.unsqueeze(-2)) @ evecs.transpose(-1, -2)


def whiten(
    x: torch.Tensor,
    ridge: float = RIDGE,
    eig_threshold: float = EIG_THRESHOLD,
    shrink: float = 0.0,
) -> torch.Tensor:
    """Centre and whiten each sample: ``(B, C, H, W)`` -> same shape, covariance ≈ I.

    ``shrink`` > 0 whitens with ``(cov + shrink·diag(cov)) / (1 + shrink)`` instead: the
    channel variances are still normalised but weak correlated directions are amplified
    less (the reference code's regularisation), which avoids blotches."""
    _check_feature(x, "whiten")
    b, c, h, w = x.shape
    flat = x.reshape(b, c, h * w).double()
    mean, evals, evecs = _cov_eig(flat, ridge, shrink)
    out = _matrix_power(evals, evecs, -0.5, eig_threshold) @ (flat - mean)
    return out.reshape(b, c, h, w).to(x.dtype)


def colour_stats_of(
    flat: torch.Tensor, ridge: float = RIDGE, eig_threshold: float = EIG_THRESHOLD
) -> ColourStats:
    """``(C, N)`` features -> :class:`ColourStats` (float64)."""
    mean, evals, evecs = _cov_eig(flat.double(), ridge)
    return ColourStats(mean, _matrix_power(evals, evecs, 0.5, eig_threshold))


def colour(whitened: torch.Tensor, stats: ColourStats) -> torch.Tensor:
    """Colour whitened ``(B, C, H, W)`` features with a style's statistics."""
    _check_feature(whitened, "colour")
    b, c, h, w = whitened.shape
    flat = whitened.reshape(b, c, h * w).double()
    out = stats.colour.to(flat.device) @ flat + stats.mean.to(flat.device)
    return out.reshape(b, c, h, w).to(whitened.dtype)


def resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Integer label map ``(H, W)`` -> ``size`` with nearest-neighbour sampling."""
    resized = F.interpolate(labels[None, None].float(), size=size, mode="nearest")
    return resized[0, 0].long()


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
        for label in lab.unique().tolist():
            sel = lab == label
            if int(sel.sum()) >= MIN_LABEL_PIXELS:
                stats[label] = colour_stats_of(flat[:, sel])
    return stats


def wct(
    content: torch.Tensor,
    stats: dict[int, ColourStats],
    alpha: float = 1.0,
    labels: torch.Tensor | None = None,
    shrink: float = 0.0,
) -> torch.Tensor:
    """Whiten each content feature and colour it with the style's statistics.

    Args:
        content: ``(B, C, H, W)`` content features.
        stats: from :func:`style_stats` (key ``-1`` = whole style image).
        alpha: blend, 1 = full transfer, 0 = the content feature unchanged.
        shrink: whitening regularisation, see :func:`whiten`.
        labels: optional content label map ``(H', W')`` shared by the batch; each label's
            pixels are whitened with their own statistics and coloured with the style's
            statistics for that label (whole-style statistics if the style lacks it).

    Returns:
        ``(B, C, H, W)`` in the dtype of ``content``.
    """
    _check_feature(content, "wct")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if alpha == 0.0:
        return content
    if labels is None:
        out = colour(whiten(content, shrink=shrink), stats[-1])
    else:
        b, c, h, w = content.shape
        lab = resize_labels(labels, (h, w)).flatten().to(content.device)
        flat = content.reshape(b, c, h * w)
        out_flat = torch.empty_like(flat, dtype=torch.float64)
        for label in lab.unique().tolist():
            sel = lab == label
            part = flat[:, :, sel].unsqueeze(-1)  # (B, C, n, 1)
            if int(sel.sum()) < MIN_LABEL_PIXELS:
                out_flat[:, :, sel] = part.squeeze(-1).double()
                continue
            st = stats.get(label, stats[-1])
            out_flat[:, :, sel] = colour(whiten(part, shrink=shrink), st).squeeze(-1).double()
        out = out_flat.reshape(b, c, h, w).to(content.dtype)
    return alpha * out + (1.0 - alpha) * content

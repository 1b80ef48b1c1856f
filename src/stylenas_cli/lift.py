"""The full-resolution lift: a network result at a working resolution carried to any size.

Photorealistic transfer changes colour and tone, which vary smoothly between the content's
edges, so the network need not see every pixel. At the working size we fit, around every
pixel, an affine colour transform ``q = A·I + b`` (``A`` 3×3, ``b`` 3) that maps the
downscaled content ``I`` to the network's output ``q`` (the colour guided filter of He, Sun &
Tang 2010); the coefficients are averaged over each window, upsampled bilinearly and applied
to the full-resolution content (the low-resolution fit / full-resolution apply split of the
fast guided filter, He & Sun 2015). Edges come from the full-resolution photo itself, so the
result is as sharp as the input, and the local fit also irons out part of the decoder's
blotches and halos.

:func:`apply_coefficients` streams over bands of rows (coefficients upsampled per band), so it
needs a few bytes per output pixel beyond its input and output, whatever the photo's size.
Everything here is a pure, batched, device-agnostic torch function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import LiftConfig

__all__ = [
    "apply_coefficients",
    "box_mean",
    "downscale",
    "guided_coefficients",
    "guided_filter",
    "lift",
]

N_COEFFS = 12  # A (3×3, row-major) then b (3)
BAND_PIXELS = 1 << 17  # output pixels per band of one apply: its 12 planes (6 MiB) stay in L3


def downscale(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(B, 3, H, W)`` float in [0, 1] or uint8 -> float ``(B, 3, h, w)``, antialiased
    bilinear (a no-op copy to float when the size is already ``size``)."""
    x = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


def _check(name: str, x: torch.Tensor, channels: int | None = 3) -> None:
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        want = f"(B, {channels}, H, W)" if channels else "(B, C, H, W)"
        raise ValueError(f"{name}: expected {want}, got {tuple(x.shape)}")


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean of ``x (B, C, H, W)`` over the ``(2r+1)²`` window around each pixel; windows are
    cut at the borders (a border pixel averages only what exists)."""
    return F.avg_pool2d(x, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)


def _guided_fit(
    guide: torch.Tensor, target: torch.Tensor, radius: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-window least squares ``target ≈ A·guide + b``: guide ``(B, 3, h, w)``, target
    ``(B, K, h, w)`` -> float64 ``A (B, h, w, K, 3)`` and ``b (B, h, w, K)`` (not yet
    window-averaged)."""
    # float64 for the local moments: var = E[x²] − E[x]² cancels badly in float32.
    g, t = guide.double(), target.double()
    b, k, h, w = t.shape
    mean_g = box_mean(g, radius)  # (B, 3, h, w)
    mean_t = box_mean(t, radius)
    # Local second moments: guide×guide (3×3) and target×guide (K×3), (B, 9 | 3K, h, w).
    gg = box_mean((g[:, :, None] * g[:, None]).reshape(b, 9, h, w), radius)
    gt = box_mean((t[:, :, None] * g[:, None]).reshape(b, 3 * k, h, w), radius)
    mg = mean_g.permute(0, 2, 3, 1)  # (B, h, w, 3)
    mt = mean_t.permute(0, 2, 3, 1)  # (B, h, w, K)
    cov_gg = gg.permute(0, 2, 3, 1).reshape(b, h, w, 3, 3) - mg[..., :, None] * mg[..., None, :]
    # cov_tg[o, i] = cov(target_o, guide_i)
    cov_tg = gt.permute(0, 2, 3, 1).reshape(b, h, w, k, 3) - mt[..., :, None] * mg[..., None, :]
    eye = torch.eye(3, dtype=g.dtype, device=g.device)
    # A (cov_gg + eps·I) = cov_tg, with cov_gg symmetric: solve for Aᵀ.
    a = torch.linalg.solve(cov_gg + eps * eye, cov_tg.transpose(-1, -2)).transpose(-1, -2)
    offset = mt - (a @ mg[..., None])[..., 0]  # (B, h, w, K)
    return a, offset


def guided_coefficients(
    guide: torch.Tensor, target: torch.Tensor, radius: int = 4, eps: float = 1e-3
) -> torch.Tensor:
    """Fit the colour guided filter from ``guide`` to ``target``.

    Args:
        guide: ``(B, 3, h, w)`` the content at the working size, in [0, 1].
        target: ``(B, 3, h, w)`` what the guide should map to (the network's output).
        radius: window radius in pixels.
        eps: ridge on the guide's local 3×3 covariance.

    Returns:
        ``(B, 12, h, w)`` float32: per pixel the window-averaged ``A`` (row-major, the rows
        are the output channels) and ``b`` with ``target ≈ A·guide + b``.
    """
    _check("guide", guide)
    _check("target", target)
    if guide.shape != target.shape:
        raise ValueError(
            f"guide {tuple(guide.shape)} and target {tuple(target.shape)} must have one shape"
        )
    a, offset = _guided_fit(guide, target, radius, eps)
    b, h, w = a.shape[:3]
    coeffs = torch.cat([a.reshape(b, h, w, 9), offset], -1).permute(0, 3, 1, 2)
    return box_mean(coeffs, radius).float()


def guided_filter(
    guide: torch.Tensor, target: torch.Tensor, radius: int, eps: float
) -> torch.Tensor:
    """The colour guided filter (He, Sun & Tang 2010) of any number of channels:
    guide ``(B, 3, h, w)`` in [0, 1], target ``(B, K, h, w)`` -> ``(B, K, h, w)`` float32,
    ``target`` smoothed except across the guide's edges (e.g. a mask snapped to a photo's
    outlines: the filter's "feathering")."""
    _check("guide", guide)
    _check("target", target, None)
    if guide.shape[0] != target.shape[0] or guide.shape[-2:] != target.shape[-2:]:
        raise ValueError(f"guide {tuple(guide.shape)} and target {tuple(target.shape)} differ")
    a, offset = _guided_fit(guide, target, radius, eps)
    b, h, w, k = offset.shape
    mean_a = box_mean(a.reshape(b, h, w, 3 * k).permute(0, 3, 1, 2), radius)  # (B, 3K, h, w)
    mean_b = box_mean(offset.permute(0, 3, 1, 2), radius)  # (B, K, h, w)
    g = guide.double()
    out = mean_b + (mean_a.reshape(b, k, 3, h, w) * g[:, None]).sum(2)
    return out.float()


def _linear_taps(n_out: int, n_in: int, start: int, stop: int) -> tuple[list[int], torch.Tensor]:
    """Bilinear resampling (``align_corners=False``, as ``F.interpolate``) of output
    positions ``start..stop-1`` of ``n_out`` from ``n_in``: the lower source index of each
    (the upper is the next one, clamped) and the weight of the upper, ``(stop-start,)``."""
    pos = (torch.arange(start, stop, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5
    pos = pos.clamp(0, n_in - 1)
    low = pos.floor()
    return low.long().tolist(), (pos - low).float()


def apply_coefficients(
    coeffs: torch.Tensor,
    image: torch.Tensor,
    out: torch.Tensor | None = None,
    band_rows: int | None = None,
) -> torch.Tensor:
    """Apply guided-filter coefficients to a (larger) image, band of rows by band.

    Args:
        coeffs: ``(B, 12, h, w)`` from :func:`guided_coefficients`.
        image: ``(B, 3, H, W)`` the full-resolution content: float in [0, 1] or uint8 (any
            strides, e.g. a channels-last view of an ``(H, W, 3)`` array).
        out: optional ``(B, 3, H, W)`` tensor to write into (uint8: rounded to 8 bits;
            any strides); default a new float32 tensor.
        band_rows: output rows per band (default: about :data:`BAND_PIXELS` pixels); the
            memory beyond ``image`` and ``out`` is about ``70 × band_rows × W`` bytes.

    Returns:
        ``out``: per pixel ``A·image + b``, coefficients upsampled bilinearly to ``(H, W)``,
        clamped to [0, 1] (or 0..255 for uint8).
    """
    _check("coeffs", coeffs, N_COEFFS)
    _check("image", image)
    bsz, _, height, width = image.shape
    h, w = coeffs.shape[-2:]
    if out is None:
        out = torch.empty(bsz, 3, height, width, dtype=torch.float32, device=image.device)
    _check("out", out)
    if out.shape != image.shape:
        raise ValueError(f"out {tuple(out.shape)} must have the image's shape {image.shape}")
    scale = 255.0 if image.dtype == torch.uint8 else 1.0  # work in the image's own units
    top = 255.0 if out.dtype == torch.uint8 else 1.0
    coeffs = coeffs.to(image.device).clone()
    coeffs[:, :9] *= top / scale  # so that A·x + b lands in the output's units directly
    coeffs[:, 9:] *= top
    band_rows = band_rows or max(1, BAND_PIXELS // width)
    planes = torch.empty(N_COEFFS, band_rows, width, device=image.device)
    for b in range(bsz):
        for y0 in range(0, height, band_rows):
            y1 = min(height, y0 + band_rows)
            low, wy = _linear_taps(height, h, y0, y1)
            lo, hi = low[0], min(h, low[-1] + 2)
            # Horizontal pass on the few coefficient rows this band needs (one fused kernel),
            # then each run of output rows between the same two rows is one broadcast lerp.
            rows = F.interpolate(coeffs[b : b + 1, :, lo:hi], size=(hi - lo, width),
                                 mode="bilinear", align_corners=False)[0]  # fmt: skip
            full = planes[:, : y1 - y0]
            i = 0
            while i < len(low):
                j, r = i, low[i] - lo
                while j < len(low) and low[j] == low[i]:
                    j += 1
                upper = min(r + 1, hi - lo - 1)
                torch.lerp(rows[:, r : r + 1], rows[:, upper : upper + 1],
                           wy[i:j].view(1, -1, 1), out=full[:, i:j])  # fmt: skip
                i = j
            x = image[b, :, y0:y1].float().contiguous()  # (3, band, W), planar
            res = full[9:]  # b, then += A·x one product at a time
            for o in range(3):
                for c in range(3):
                    res[o].addcmul_(full[3 * o + c], x[c])
            if out.dtype == torch.uint8:  # rounded: the truncation of v + 0.5
                res.add_(0.5).clamp_(0.5, top + 0.5)
            else:
                res.clamp_(0, top)
            out[b, :, y0:y1] = res
    return out


def lift(
    guide: torch.Tensor,
    target: torch.Tensor,
    image: torch.Tensor,
    cfg: LiftConfig | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Carry ``target`` (the network's output for ``guide``, both ``(B, 3, h, w)``) to the
    full-resolution ``image`` ``(B, 3, H, W)``: :func:`guided_coefficients` then
    :func:`apply_coefficients` (``cfg``: default :class:`LiftConfig` if None)."""
    cfg = cfg or LiftConfig()
    coeffs = guided_coefficients(guide, target, cfg.radius, cfg.eps)
    return apply_coefficients(coeffs, image, out)

"""Temporal stabilisation of stylised video frames.

Where the input did not change (a 5x5-averaged per-pixel test), part of the previous output
is kept, so the decoder's and the whitening's amplification of sensor and compression noise
does not shimmer in still regions, while moving regions take the new frame's output unchanged
(no motion blur, no ghosts); a shot cut resets it. Optionally the WCT content moments are
also averaged over the shot (``momentum``): :meth:`Stabilizer.smooth` is the ``smooth`` hook
of :meth:`~stylenas_cli.model.Stylizer.stylize`, so the whitening itself is the one in
:mod:`stylenas_cli.wct`, with the same shrinkage as still photos.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import DEFAULT_TRANSFER, LiftConfig, TransferSettings
from ..lift import downscale
from ..model import Stylizer
from ..shape import work_shape
from ..style import StyleCache


@dataclass(frozen=True)
class StabilizeConfig:
    blend: float = 0.8  # at most this share of the previous output is kept where input is still
    sigma: float = 0.02  # input change (mean abs, [0, 1], 5x5 average) where blending is e^-1
    # Weight of the past in the smoothed WCT content moments; 0 = each frame's own. Off by
    # default: on the clips measured (scripts/bench_video.py) it did not lower flicker, and
    # under exposure flicker it raised it (per-frame whitening removes brightness changes).
    momentum: float = 0.0
    cut: float = 0.15  # mean input change above which a frame starts a new shot


class Stabilizer:
    """Per-video state for temporally stable stylisation; feed it a clip's frames in order.

    ``begin(x)`` with each batch of input frames, ``smooth`` as the stylizer's moment hook,
    ``blend(x, out)`` on the batch's outputs (:func:`stylize_frames` does all three)."""

    def __init__(self, cfg: StabilizeConfig = StabilizeConfig()) -> None:
        if not 0.0 <= cfg.momentum < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {cfg.momentum}")
        self.cfg = cfg
        self.moments: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # point -> (mean, cov)
        self.prev_in: torch.Tensor | None = None  # the last frame blended, and its output
        self.prev_out: torch.Tensor | None = None
        self._seen: torch.Tensor | None = None  # the last frame begin() saw (3, h, w)
        self.cuts: list[bool] = []
        self.shots = 0

    def begin(self, x: torch.Tensor) -> None:
        """Input frames ``(B, 3, H, W)`` in [0, 1]: find the frames that start a new shot."""
        first = x[:1] if self._seen is None else self._seen[None]
        before = torch.cat([first, x[:-1]])  # the frame before each frame
        change = (x - before).abs().flatten(1).mean(1).tolist()
        if self._seen is None:
            change[0] = float("inf")  # the first frame starts a shot
        self._seen = x[-1]
        self.cuts = [c > self.cfg.cut for c in change]
        self.shots += sum(self.cuts)

    def smooth(
        self, point: str, mean: torch.Tensor, cov: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Content moments of the batch at ``point`` (mean ``(B, C, 1)``, cov ``(B, C, C)``)
        -> their running average over the shot so far (reset at each cut)."""
        m = self.cfg.momentum
        prev = self.moments.get(point)
        means, covs = [], []
        for t in range(mean.shape[0]):
            if prev is None or self.cuts[t]:
                prev = (mean[t], cov[t])
            else:
                prev = (m * prev[0] + (1 - m) * mean[t], m * prev[1] + (1 - m) * cov[t])
            means.append(prev[0])
            covs.append(prev[1])
        self.moments[point] = prev
        return torch.stack(means), torch.stack(covs)

    def _keep(self, change: torch.Tensor, window: int) -> torch.Tensor:
        """Mean absolute input change ``(1, 1, H, W)`` in [0, 1] -> the share of the previous
        output to keep, averaged over a ``window``-px square first."""
        change = F.avg_pool2d(change, window, 1, window // 2, count_include_pad=False)
        return self.cfg.blend * torch.exp(-((change / self.cfg.sigma) ** 2))

    def blend_frames(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """:meth:`blend` for full-size 8-bit frames ``(n, H, W, 3)`` (the input ``x`` and the
        output ``out``, uint8), in integer arithmetic, the change measured at half size; the
        shot cuts come from :meth:`begin` on them. Returns ``out``, blended in place."""
        for t in range(x.shape[0]):
            if self.prev_out is not None and not self.cuts[t] and self.cfg.blend > 0:
                diff = (x[t].to(torch.int16) - self.prev_in.to(torch.int16)).abs_().sum(-1)
                change = F.avg_pool2d(diff[None, None].float().div_(3 * 255.0), 2, ceil_mode=True)
                keep = self._keep(change, 3)
                keep = F.interpolate(keep, scale_factor=2.0, mode="nearest")
                keep = keep[0, 0, : x.shape[1], : x.shape[2], None].mul_(256).round_()
                prev, cur = self.prev_out.to(torch.int32), out[t].to(torch.int32)
                mixed = (prev - cur).mul_(keep.to(torch.int32)).add_(cur * 256 + 128) >> 8
                out[t] = mixed.clamp_(0, 255).to(torch.uint8)
            self.prev_in, self.prev_out = x[t].clone(), out[t].clone()
        return out

    def blend(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Keep part of the previous output where the input did not change (same shapes)."""
        cfg = self.cfg
        result = []
        for t in range(x.shape[0]):
            o = out[t]
            if self.prev_out is not None and not self.cuts[t] and cfg.blend > 0:
                change = (x[t] - self.prev_in).abs().mean(0, keepdim=True)  # (1, H, W)
                keep = self._keep(change[None], 5)[0]
                o = keep * self.prev_out + (1 - keep) * o
            self.prev_in, self.prev_out = x[t], o
            result.append(o)
        return torch.stack(result)


@torch.no_grad()
def stylize_frames(
    model: Stylizer,
    x: torch.Tensor,
    cache: StyleCache,
    alpha: float = 1.0,
    stabilizer: Stabilizer | None = None,
    work_size: int | None = None,
    lift_cfg: LiftConfig | None = None,
    out: torch.Tensor | None = None,
    settings: TransferSettings = DEFAULT_TRANSFER,
) -> torch.Tensor:
    """Consecutive frames ``(B, 3, H, W)`` (float in [0, 1] or uint8) -> stylised
    ``(B, 3, H, W)`` (``out``, uint8 allowed, or new float32): the network on the frames at
    ``work_size`` (None: every pixel), the stabiliser's moment smoothing (``momentum > 0``)
    and output blend on those, then the lift to the frames' size
    (:meth:`~stylenas_cli.model.Stylizer.stylize_at`)."""
    height, width = x.shape[-2:]
    size = work_shape(height, width, work_size)
    small = downscale(x.to(model.device), size)
    if stabilizer is None:
        return model.stylize_at(x, cache, alpha, settings, None, work_size, lift_cfg, small, out)
    stabilizer.begin(small)
    smooth = stabilizer.smooth if stabilizer.cfg.momentum > 0 else None
    return model.stylize_at(
        x, cache, alpha, settings, None, work_size, lift_cfg, small, out, smooth, stabilizer.blend
    )

"""``stylenas video --mode lut``: the network runs on keyframes only (each shot's first
frame, then one every few seconds, :mod:`.shots`), a 3D LUT is fitted to each keyframe's
stylisation, and every frame is mapped through the LUTs of the keyframes around it in its
shot, blended by time. Within a shot the look cannot flicker; a frame costs two table
lookups per pixel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import DEFAULT_TRANSFER, TransferSettings
from ..lut import Lut3D, colour_pairs, fit_lut, lookup
from ..model import Stylizer
from ..shape import work_shape
from ..style import StyleCache
from .ffmpeg import VideoInfo, read_frames
from .shots import KEY_SECONDS, ShotTracker, blend_weights


@dataclass
class ClipLook:
    """The keyframes of a stretch of a clip (frame numbers from its first frame), the
    frames that start a shot, one LUT per keyframe, and each keyframe's colour pairs (for
    one LUT over the whole clip: :meth:`whole`)."""

    keys: list[int] = field(default_factory=list)
    shots: list[int] = field(default_factory=list)
    luts: list[Lut3D] = field(default_factory=list)
    pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=list)

    def whole(self, size: int) -> Lut3D:
        """One LUT fitted over every keyframe's colours (the clip's look, for an editor)."""
        src, dst, count = (torch.cat(parts) for parts in zip(*self.pairs))
        return fit_lut(src, dst, size, count)


def analyse(
    model: Stylizer,
    info: VideoInfo,
    start: int,
    count: int,
    size: tuple[int, int],
    cache: StyleCache,
    alpha: float = 1.0,
    work_size: int | None = None,
    settings: TransferSettings = DEFAULT_TRANSFER,
    lut_size: int = 33,
    on_key: Callable[[int], None] = lambda frame: None,
) -> ClipLook:
    """Decode the frames at the size the network sees (``size``: the output frames'
    ``(width, height)``), find the shots and keyframes and fit a LUT to each keyframe's
    stylisation."""
    h, w = work_shape(size[1], size[0], work_size)
    tracker = ShotTracker(key_every=max(1, round(KEY_SECONDS * float(info.fps))))
    look = ClipLook()
    for i, frame in enumerate(read_frames(info, start, count, (w, h))):
        cut, key = tracker.step(frame)
        if cut:
            look.shots.append(i)
        if not key:
            continue
        x = torch.from_numpy(frame.copy()).permute(2, 0, 1)[None]  # decoded frames are read-only
        out = torch.empty_like(x)
        model.stylize_at(x, cache, alpha, settings, work_size=work_size, out=out)
        pairs = colour_pairs(frame, out[0].permute(1, 2, 0).numpy())
        look.keys.append(i)
        look.luts.append(fit_lut(*pairs[:2], lut_size, pairs[2]))
        look.pairs.append(pairs)
        on_key(i)
    return look


class LookPlayer:
    """Maps frames through a :class:`ClipLook`, frame by frame in order; keeps the 256³
    tables of the keyframes in use only (two at a time)."""

    def __init__(self, look: ClipLook) -> None:
        self.look = look
        self._tables: dict[int, torch.Tensor] = {}

    def _table(self, key: int) -> torch.Tensor:
        if key not in self._tables:
            if len(self._tables) >= 2:  # frames come in order: the oldest is done with
                self._tables.pop(min(self._tables))
            self._tables[key] = self.look.luts[key].table()
            self.look.luts[key]._table = None  # held here only
        return self._tables[key]

    def apply(self, frames: np.ndarray, first: int, out: np.ndarray) -> np.ndarray:
        """Frames ``(n, H, W, 3)`` uint8, the first being frame ``first`` -> ``out``."""
        for j in range(frames.shape[0]):
            pixels = torch.from_numpy(np.array(frames[j].reshape(-1, 3)))
            parts = blend_weights(first + j, self.look.keys, self.look.shots)
            dst = torch.from_numpy(out[j].reshape(-1, 3))
            if len(parts) == 1:
                dst.copy_(lookup(self._table(parts[0][0]), pixels))
                continue
            (k0, _), (k1, w1) = parts
            a = lookup(self._table(k0), pixels).to(torch.int16)
            b = lookup(self._table(k1), pixels).to(torch.int16)
            wb = int(round(w1 * 256))
            # The sum may wrap past int16 (up to 65408): shifted, it is off by exactly 256,
            # which the cast to uint8 (the low byte) drops.
            dst.copy_((a * (256 - wb) + b * wb + 128).bitwise_right_shift_(8).to(torch.uint8))
        return out

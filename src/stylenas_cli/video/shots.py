"""Shots of a video: where the picture cuts to another scene (a jump in the colour histogram
between consecutive frames), and the keyframes a look is taken at (each shot's first frame,
then one every few seconds)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BINS = 8  # per channel: 512 joint colour bins, coarse enough to ignore motion and noise
CUT = 0.35  # total-variation distance between consecutive histograms that is a cut
KEY_SECONDS = 2.0  # within a long shot, a keyframe this often


def colour_histogram(frame: np.ndarray, bins: int = BINS) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 frame -> its joint RGB histogram ``(bins³,)``, summing to 1."""
    q = (frame.reshape(-1, 3).astype(np.int32) * bins) >> 8
    index = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]
    counts = np.bincount(index, minlength=bins**3).astype(np.float64)
    return counts / max(1.0, counts.sum())


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total-variation distance of two histograms: 0 the same colours, 1 none in common."""
    return 0.5 * float(np.abs(a - b).sum())


@dataclass
class ShotTracker:
    """Fed a clip's frames in order, says which start a shot and which are keyframes."""

    key_every: int  # frames between keyframes within a shot
    cut: float = CUT
    _last: np.ndarray | None = None
    _since_key: int = 0

    def step(self, frame: np.ndarray) -> tuple[bool, bool]:
        """``(starts a shot, is a keyframe)`` of the next frame ``(H, W, 3)`` uint8."""
        hist = colour_histogram(frame)
        cut = self._last is None or histogram_distance(self._last, hist) > self.cut
        self._last = hist
        key = cut or self._since_key >= self.key_every
        self._since_key = 1 if key else self._since_key + 1
        return cut, key


def blend_weights(frame: int, keys: list[int], shots: list[int]) -> list[tuple[int, float]]:
    """The keyframes a frame's look is interpolated from: ``[(key index, weight), ...]``
    (weights summing to 1). Within a shot, between two keyframes linearly; after a shot's
    last keyframe, that one; never across a cut. ``keys`` and ``shots`` (the frames that
    start a shot) are sorted frame numbers; ``shots[0] == keys[0] == 0`` for a clip."""
    shot = _shot_of(frame, shots)
    after = int(np.searchsorted(keys, frame, side="right"))  # keys[after - 1] <= frame
    k0 = after - 1
    nxt = after if after < len(keys) else None
    if nxt is None or keys[k0] == frame or _shot_of(keys[nxt], shots) != shot:
        return [(k0, 1.0)]
    t = (frame - keys[k0]) / (keys[nxt] - keys[k0])
    return [(k0, 1.0 - t), (nxt, t)]


def _shot_of(frame: int, shots: list[int]) -> int:
    return shots[int(np.searchsorted(shots, frame, side="right")) - 1]

"""Temporal stability metrics for stylised video: flicker ratio and flow-warped error.

Both work on a stream of ``(input, output)`` frame pairs (uint8 ``(H, W, 3)`` arrays of the same
size) and keep only the previous pair, so a clip of any length is measured in constant memory.

* **Flicker ratio** = mean |out_t − out_{t−1}| / mean |in_t − in_{t−1}| over all consecutive
  frames: 1.0 means the output changes from frame to frame exactly as much as the source; a
  stylisation that flickers scores above 1.
* **Relative flicker** = the flicker ratio divided by the **contrast ratio** (mean spatial
  change |x − x shifted by one pixel| of the outputs over the inputs'): a stylisation that
  stretches contrast by k also changes k times more where things move, which is not
  flicker; 1.0 means frame-to-frame change in proportion to the output's own contrast.
* **Flow-warped error** (only where OpenCV is installed: DIS optical flow needs no downloaded
  weights): mean |out_t − warp(out_{t−1})| over pixels whose flow is forward-backward
  consistent, i.e. the change that motion does not explain. The same number for the input is
  reported beside it as the floor set by the source (noise, lighting, flow errors).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .ffmpeg import VideoError, probe, read_frames


def _check_pair(inp: np.ndarray, out: np.ndarray) -> None:
    if inp.shape != out.shape or inp.ndim != 3 or inp.shape[-1] != 3:
        raise ValueError(
            f"expected input and output frames (H, W, 3) of one size, got "
            f"{tuple(inp.shape)} and {tuple(out.shape)}"
        )


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 frames, in [0, 1] units."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean()) / 255.0


def _spatial_change(a: np.ndarray) -> float:
    """Mean absolute difference of a uint8 frame ``(H, W, 3)`` and itself moved one pixel
    right and one down (its contrast at the finest scale), in [0, 1] units."""
    return (_mean_abs_diff(a[:, 1:], a[:, :-1]) + _mean_abs_diff(a[1:], a[:-1])) / 2


@dataclass
class FlickerMeter:
    """Streaming flicker ratio. ``update(in_t, out_t)`` frame by frame, then read ``ratio``."""

    in_change: float = 0.0  # sum over pairs of mean |in_t - in_{t-1}|
    out_change: float = 0.0  # the same for the outputs
    in_contrast: float = 0.0  # sum over frames of the mean spatial change of the inputs
    out_contrast: float = 0.0  # the same for the outputs
    pairs: int = 0
    _prev: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def update(self, inp: np.ndarray, out: np.ndarray) -> None:
        _check_pair(inp, out)
        self.in_contrast += _spatial_change(inp)
        self.out_contrast += _spatial_change(out)
        if self._prev is not None:
            self.in_change += _mean_abs_diff(inp, self._prev[0])
            self.out_change += _mean_abs_diff(out, self._prev[1])
            self.pairs += 1
        self._prev = (inp.copy(), out.copy())

    @property
    def ratio(self) -> float:
        """Output change over input change; NaN before two frames or for a still source."""
        if self.pairs == 0 or self.in_change == 0.0:
            return float("nan")
        return self.out_change / self.in_change

    @property
    def contrast_ratio(self) -> float:
        """Outputs' mean spatial change over the inputs'; NaN for flat inputs."""
        return self.out_contrast / self.in_contrast if self.in_contrast else float("nan")

    @property
    def relative(self) -> float:
        """Flicker ratio per unit of contrast gain (1.0: change in proportion to contrast)."""
        return self.ratio / self.contrast_ratio if self.out_contrast else float("nan")

    def as_dict(self) -> dict:
        n = max(self.pairs, 1)
        return {
            "flicker_ratio": _round(self.ratio),
            "contrast_ratio": _round(self.contrast_ratio),
            "relative_flicker": _round(self.relative),
            "input_change": _round(self.in_change / n),
            "output_change": _round(self.out_change / n),
            "frame_pairs": self.pairs,
        }


def flicker_ratio(inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray]) -> float:
    """Flicker ratio of two frame sequences (uint8 ``(H, W, 3)``), paired in order."""
    meter = FlickerMeter()
    for inp, out in zip(inputs, outputs, strict=False):
        meter.update(inp, out)
    return meter.ratio


def has_flow() -> bool:
    """Whether the flow-warped error is available (OpenCV importable)."""
    return importlib.util.find_spec("cv2") is not None


class WarpErrorMeter:
    """Streaming flow-warped error with OpenCV's DIS flow (raises ImportError without cv2)."""

    def __init__(self) -> None:
        import cv2

        self._cv2 = cv2
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.out_error = 0.0
        self.in_error = 0.0
        self.pairs = 0

    def _warp(self, image: np.ndarray, flow: np.ndarray) -> np.ndarray:
        h, w = flow.shape[:2]
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        return self._cv2.remap(
            image,
            gx + flow[..., 0],
            gy + flow[..., 1],
            self._cv2.INTER_LINEAR,
            borderMode=self._cv2.BORDER_REPLICATE,
        )

    def update(self, inp: np.ndarray, out: np.ndarray) -> None:
        _check_pair(inp, out)
        gray = self._cv2.cvtColor(inp, self._cv2.COLOR_RGB2GRAY)
        if self._prev is not None:
            prev_gray, prev_in, prev_out = self._prev
            back = self._dis.calc(gray, prev_gray, None)  # t -> t-1, (H, W, 2)
            fwd = self._dis.calc(prev_gray, gray, None)  # t-1 -> t
            # Occlusions and flow failures: forward-backward check (Sundaram et al. 2010).
            fwd_at = self._warp(fwd, back)
            mismatch = ((back + fwd_at) ** 2).sum(-1)
            scale = (back**2).sum(-1) + (fwd_at**2).sum(-1)
            valid = mismatch <= 0.01 * scale + 0.5
            if valid.any():
                for name, cur, prev in (("out", out, prev_out), ("in", inp, prev_in)):
                    warped = self._warp(prev, back)
                    diff = np.abs(cur.astype(np.float32) - warped.astype(np.float32)).mean(-1)
                    err = float(diff[valid].mean()) / 255.0
                    if name == "out":
                        self.out_error += err
                    else:
                        self.in_error += err
                self.pairs += 1
        self._prev = (gray, inp.copy(), out.copy())

    def as_dict(self) -> dict:
        n = max(self.pairs, 1)
        return {
            "warp_error": _round(self.out_error / n) if self.pairs else None,
            "warp_error_input": _round(self.in_error / n) if self.pairs else None,
        }


def measure_videos(
    source: str | Path, stylized: str | Path, frames: tuple[int, int | None] = (0, None)
) -> dict:
    """Temporal stability of ``stylized`` against the ``source`` frames it was made from
    (``frames`` = ``[start, end)`` as given to ``stylenas video --frames``).

    The source frames are decoded at the stylised video's size and paired in order; returns
    the flicker ratio, the warp error where OpenCV is installed (else ``None``), the frame
    count, and a ``note`` when the two videos hold different numbers of frames."""
    src, out = probe(source), probe(stylized)
    start, end = frames
    if start >= src.expected_frames:
        raise VideoError(f"--frames starts at {start} but {source} has {src.frames} frames")
    available = src.expected_frames - start
    if end is not None:
        available = min(available, end - start)
    flicker = FlickerMeter()
    warp = WarpErrorMeter() if has_flow() else None
    ins = read_frames(src, start, available, (out.width, out.height))
    outs = read_frames(out)
    n = 0
    try:
        for a, b in zip(ins, outs, strict=False):
            flicker.update(a, b)
            if warp is not None:
                warp.update(a, b)
            n += 1
    finally:
        ins.close()  # type: ignore[attr-defined]
        outs.close()  # type: ignore[attr-defined]
    if flicker.pairs == 0:
        raise VideoError(f"{stylized}: fewer than two frames to compare")
    report = {"source": str(source), "stylized": str(stylized), "frames": n}
    report |= flicker.as_dict()
    report |= warp.as_dict() if warp is not None else {"warp_error": None}
    if out.expected_frames != available:
        report["note"] = (
            f"frame counts differ (source {available} from frame {start}, stylized "
            f"{out.expected_frames}): compared the first {n}"
        )
    return report


def _round(x: float) -> float | None:
    return None if x != x else round(x, 6)  # NaN -> None (JSON has no NaN)

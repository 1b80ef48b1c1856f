"""Settings shared by the library and the command line, importable without torch (so that
``stylenas --help`` shows the defaults without loading it)."""

from __future__ import annotations

import math
from dataclasses import dataclass

# Image files the tool reads and writes, by suffix.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
# Long side (px) the network sees by default; its result is lifted to the photo's own size.
# Chosen by `make sweep-lift` (README, "Any size"): with radius 1 and eps 1e-4 it beats the
# network on every pixel on every EVAL.md metric (means) on the StyleNAS, DPST and hires pairs,
# at a fraction of its time.
DEFAULT_WORK_SIZE = 384
# Long side (px) a style photo is read at for its statistics (smaller photos as they are).
# The smallest size that keeps every EVAL.md mean within 0.005 of 1024 px (was the default)
# on the StyleNAS and DPST dev pairs (README, "Speed"): 512 loses 0.012 gram on StyleNAS.
DEFAULT_STYLE_SIZE = 768
# Largest image (width x height) read unless the user allows more (--max-pixels): above any
# camera's output, far below what a few-hundred-byte "decompression bomb" PNG can declare
# (PIL's own limit, 179 MP, would refuse some medium-format photos with a raw traceback).
DEFAULT_MAX_PIXELS = 250_000_000


@dataclass(frozen=True)
class LiftConfig:
    """How the network's working-resolution result is lifted to full resolution.

    ``radius`` is the guided filter's window radius in pixels *at the working size*;
    ``eps`` its regularisation (larger = smoother colour maps, less edge-aware)."""

    radius: int = 1
    eps: float = 1e-4
    # Photos no larger than the working size: filter them too (fit and apply at their size).
    # Off: measured on the dev pairs shrunk to 384 px it helps StyleNAS but costs DPST colour.
    filter_small: bool = False

    def __post_init__(self) -> None:
        if self.radius < 1:
            raise ValueError(f"lift radius must be at least 1 px, got {self.radius}")
        if not (math.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"lift eps must be a positive finite number, got {self.eps}")


# Drawn label maps are snapped to the content's edges (wct.snap_labels; --mask-snap) with a
# guided filter of this radius in pixels at the working size (0 = off): a boundary drawn
# loosely around an object gave the background beside it the object's style, a bright halo
# (DPST pairs 17, 18, 21). DPST drawn masks: ssim 0.581 -> 0.588, edge_ssim 0.706 -> 0.716,
# gram 0.321 -> 0.315.
# Automatic regions snapped the same way (radius 16) measured worse: ssim 0.565, gram 0.354.
LABEL_SNAP = 8

# --auto-masks: regions found in the style's deep features (automask). Two, not three: DPST
# pairs, photonas, at the other defaults (region prior 0.3), 3 regions: ssim 0.594, lab_w1
# 3.30, gram 0.339; 2 regions: 0.618, 3.43, 0.316 (the plain transfer: 0.598, 3.95, 0.318).
# A third region split a scene more often into parts the style does not have (pair 17).
DEFAULT_REGIONS = 2

# Automatic regions are used only where the content tells the style's regions apart: the
# median margin of its pixels' matching (automask.match_margin) at least this; else the photo
# is transferred as one region, as without masks. Under it the labels were noise that drew
# blotches: pair 21's dark blue blot in the sky, 22's dark blob in a flower's centre, 02's
# cloud and light bands. DPST margins (relu4_1 + relu5_1, make match-report): 22 0.025, 21
# 0.028, 18 0.046, 09 0.049, 02 0.057, then 14 0.088 ... 16 0.44: the cut in the widest gap
# below 0.1 (relu4_1 alone, where it was chosen: 0.074-0.096).
MIN_MATCH_MARGIN = 0.08

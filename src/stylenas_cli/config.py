"""Settings shared by the library and the command line, importable without torch (so that
``stylenas --help`` shows the defaults without loading it). Why each default is what it is:
docs/design.md."""

from __future__ import annotations

import math
from dataclasses import dataclass

# Image files the tool reads and writes, by suffix.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
# Long side (px) the network sees; its result is lifted to the photo's own size (make
# sweep-lift chose it with the lift's radius and eps).
DEFAULT_WORK_SIZE = 384
# Long side (px) a style photo is read at for its statistics (smaller photos as they are):
# the smallest size whose statistics match those of a much larger read.
DEFAULT_STYLE_SIZE = 768
# Largest image (width x height) read unless the user allows more (--max-pixels): above any
# camera's output, far below what a few-hundred-byte "decompression bomb" PNG can declare.
DEFAULT_MAX_PIXELS = 250_000_000
# Regions --auto-masks looks for in the style: a third split scenes into parts the style lacks.
DEFAULT_REGIONS = 2


@dataclass(frozen=True)
class LiftConfig:
    """How the network's working-resolution result is lifted to full resolution.

    ``radius`` is the guided filter's window radius in pixels *at the working size*;
    ``eps`` its regularisation (larger = smoother colour maps, less edge-aware)."""

    radius: int = 1
    eps: float = 1e-4

    def __post_init__(self) -> None:
        if self.radius < 1:
            raise ValueError(f"lift radius must be at least 1 px, got {self.radius}")
        if not (math.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"lift eps must be a positive finite number, got {self.eps}")


@dataclass(frozen=True)
class TransferSettings:
    """Every setting of the transfer, built once by the caller and passed to the style pass
    and the stylisation (a model holds weights, not switches)."""

    # Whitening shrinkage toward the channel variances (the reference code's regularisation):
    # weak correlated directions are amplified less, so skies stay clean.
    shrink: float = 0.67
    # Strength of the last transfer point, on the output's own RGB: the decoder's colours
    # still lean to the content's.
    colour_match: float = 1.0
    # That point's lighter shrinkage: grey styles come out grey, while the chroma noise of
    # near-grey contents is not amplified into blotches.
    colour_shrink: float = 0.15
    # WCT at the decoder's own points (d1...d5) too: their coarse running features stretch a
    # flat region's shading into blobs, so the encoder points and the image point carry it.
    decoder_transfers: bool = False
    # At levels the decoder only sees instance-normalised, a style channel weaker than this
    # share of the content's keeps the content's pattern (AdaIN) instead of WCT's faint mix.
    dead_ratio: float = 1.0
    # At those levels a pixel's whitened vector is coloured at most at this RMS: the
    # content's rarest pixels (its sharpest edges) are where colouring extrapolates furthest.
    whitened_reach: float = 1.0
    # With regions: the share of the whole photos' spreads mixed into each region's, so no
    # region is stretched over its style region's whole range (a glow along its edge).
    region_prior: float = 0.7
    # Drawn content masks snapped to the photo's edges within about half this radius (px at
    # the working size; 0: as drawn): a loose outline would give the background a halo.
    label_snap: int = 8
    # Automatic regions found in the style (--auto-masks); 0: none.
    regions: int = 0
    # Automatic regions are blended over this share of the long side, along the photo's
    # edges: their 1/8-resolution labels would leave blocky seams.
    mask_softness: float = 0.03
    # Automatic regions are used only where the content tells the style's regions apart by
    # this median cosine margin; below it the labels are noise, and the photo is one region.
    min_match_margin: float = 0.08
    # Automatic labels are decided per segment of each photo (Felzenszwalb's scale): a
    # boundary then never crosses a smooth wall or sky, where two transforms would seam.
    region_segments: float = 300.0

    def __post_init__(self) -> None:
        numbers = {k: float(v) for k, v in vars(self).items() if not isinstance(v, bool)}
        bad = [k for k, v in numbers.items() if not (math.isfinite(v) and v >= 0)]
        if bad:
            raise ValueError(f"transfer setting {bad[0]} must be a finite number >= 0")
        if self.region_prior > 1 or self.colour_match > 1:
            raise ValueError("region_prior and colour_match are shares in [0, 1]")


DEFAULT_TRANSFER = TransferSettings()

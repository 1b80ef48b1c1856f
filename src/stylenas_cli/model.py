"""Stylizer: frozen VGG19 encoder + a genotype's decoder + WCT at the genotype's points."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from . import stylestore
from .automask import (
    assign_regions,
    match_margin,
    matching_feature,
    refine_regions,
    segment_regions,
    style_regions,
)
from .config import DEFAULT_MAX_PIXELS, DEFAULT_STYLE_SIZE, LABEL_SNAP, MIN_MATCH_MARGIN
from .decoder import Decoder, point_channels
from .device import CHOICES, autocast, resolve_device, resolve_precision
from .encoder import LEVELS, VGGEncoder
from .genotype import Genotype, resolve
from .images import ImageError, load_image, load_labels, open_image, oriented_size
from .lift import DEFAULT_WORK_SIZE, LiftConfig, downscale, lift, work_shape
from .wct import ColourStats, resize_labels, snap_labels, style_stats, wct

# Whitening regularisation (see wct.whitening_matrix): the reference code's shrinkage,
# cleaner skies and fewer blotches; measured on 6 dev pairs: ssim 0.80 -> 0.85 at equal gain.
WHITEN_SHRINK = 0.67
# With automatic regions, WCT blends the regions' transforms over this share of each feature
# map's long side (wct.soft_weights): the 1/8-resolution labels leave no blocky seams. DPST
# pairs, --auto-masks: ssim 0.588 -> 0.601, gram 0.367 -> 0.351 against hard boundaries.
MASK_SOFTNESS = 0.03
# A last transfer point on the output image itself (RGB), at this strength: the decoder's
# colours lean to the content's. Its whitening's own, lighter shrinkage keeps grey styles grey
# without amplifying the chroma noise of near-grey contents (scripts/sweep_wct.py).
COLOUR_MATCH = 1.0
COLOUR_SHRINK = 0.15
IMAGE_POINT = "image"
# With masks (drawn or automatic) each region's feature statistics are its own (mixing in
# half of the whole style's measured worse: DPST masks gram 0.321 -> 0.379), and the image
# point runs over the whole image: per region it pushed each region's colours toward its
# style region's, which the decoder had already done. DPST pairs, drawn masks: ssim 0.559 ->
# 0.581, lab_w1 4.13 -> 3.25, gram 0.359 -> 0.321; --auto-masks: 0.579 -> 0.589, 3.82 ->
# 3.29, 0.366 -> 0.338.
REGION_MIX = 0.0
# A region's content covariance is mixed with this share of the whole feature map's before
# whitening, and its style region's colouring matrix with the same share of the whole
# style's (wct.prior_cov, wct.prior_spread); each region keeps its own means. A region's own
# spread stretched a flat region (a clear sky) over its style region's whole range (the glow
# along pair 21's skyline), and carried the features along a boundary, which see both
# regions, to the style region's extremes (a night ground's few bright lights: the golden
# line along pair 02's ridge with drawn masks). History: 0.3 on the whitening only (DPST
# drawn masks snapped: ssim 0.588 -> 0.593, gram 0.315 -> 0.309); 0.7 on both sides since
# 2026-11-30 (photonas, DPST, scratch runs of the bench's stylisation: drawn masks 0.612 /
# 0.306 -> 0.627 / 0.305, 02's line gone; --auto-masks 0.625 / 0.306 -> 0.629 / 0.306;
# 1.0, one linear map for every region: 0.626 / 0.309 and 0.628 / 0.307).
REGION_PRIOR = 0.7
COLOUR_REGIONS = False
# Automatic regions: the photo's colours decide the pixels within this many px of a region
# boundary (automask.refine_regions; relu4_1's 8-px cells reach past an object's outline: the
# pink glow around pair 08's statues), and the regions' blend follows the photo's edges
# (wct.guided_weights; a box blend applied the sofa's transform to the wall beside it: pair
# 26's white rim, 16's glow around the bottle). DPST pairs, --auto-masks (2 regions):
# ssim / gram 0.618 / 0.316 before; band 16 px 0.613 / 0.311; with the guided blend 0.598 /
# 0.308. Drawn masks keep hard boundaries (a guided blend put a glow around pair 18's statue).
REGION_BAND = 16
GUIDED_BLEND = True
# Automatic labels are decided per segment of each photo (automask.segment_regions:
# Felzenszwalb's graph segmentation at this scale, at the working size): a boundary then
# never crosses a smooth wall or sky, where the two regions' transforms met in a seam (pair
# 27: light patches on the wall and a greyed painting with relu4_1+relu5_1 matching and the
# colour-refined band above). 0: the band refinement (REGION_BAND). DPST pairs, photonas,
# --auto-masks, ssim / gram: band 0.633 / 0.306, segments 0.634 / 0.306 (relu4_1 alone:
# 0.631 / 0.308 and 0.634 / 0.308).
REGION_SEGMENTS = 300.0
# The decoder's own transfer points (d1...d5, where a genotype has them) are left out by
# default: their running features come up from the deep levels at 1/2 to 1/16 of the size, so
# WCT there stretches a flat region's smooth shading over the style's whole range and makes
# blobs at the coarse scale: pair 19's dark cloud in a night sky and white fogs round its city
# lights, the red glow in the middle of 09's and 22's dahlias, a dark smudge round 18's statue
# (all photonas d5, each point left out in turn); with regions, the yellow glow along 21's
# skyline (already left out with regions since 2026-11-29). The encoder points and the image
# point carry the style. photonas, ssim / gram (make bench, 6896944 -> b0904d8): DPST plain
# 0.602 / 0.329 -> 0.633 / 0.316, pair 17 1.48 -> 0.87; StyleNAS 0.833 / 0.252 -> 0.838 /
# 0.226; the cost is colour closeness (lab_w1 DPST 3.95 -> 4.73, StyleNAS 2.60 -> 2.80).
# photonet: DPST 0.593 / 0.381 -> 0.620 / 0.339, StyleNAS 0.819 / 0.210 -> 0.840 / 0.267.
# `stylenas search` still scores a genotype with all its transfer points (the papers'
# search space).
DECODER_TRANSFERS = False
# At the encoder levels the decoder only uses instance-normalised (photonas's relu1_1 skip)
# it sees each channel's pattern at unit variance, whatever WCT made of its scale. Two
# limits there (the bright rim along pair 02's ridge, every mode; 07's skyline): a channel
# the style barely uses is, in proportion, transferred on its own (AdaIN; wct.channel_keep:
# coloured with near-zero variance it holds a faint mix of the content's whitened directions,
# which the normalisation blows up; the night style of 02 has 4 relu1_1 channels under 0.1
# of the content's deviation), and each pixel's whitened vector is coloured at most at RMS 1
# (wct.Transform: the ridge is the content's rarest feature). Rim on 02, plain (luminance
# over the sky beside it, median along the ridge): 88 -> 41 (channels alone) -> 21; drawn
# masks 18 -> 10; auto 37 -> 22. photonas, ssim / gram (make bench): StyleNAS pairs 0.830 /
# 0.257 -> 0.833 / 0.252; DPST plain 0.598 / 0.318 -> 0.602 / 0.329, masks 0.606 / 0.293 ->
# 0.612 / 0.306, auto 0.622 / 0.304 -> 0.625 / 0.306. Ratio 2.0 took the rim to 15 but
# StyleNAS gram to 0.272; reach 0.7 cost DPST ssim (0.601).
DEAD_CHANNEL_RATIO = 1.0
WHITENED_REACH = 1.0
MIN_SIDE = 32  # relu5_1 (1/16) needs at least 2 pixels for reflection padding

# (transfer point, content mean (B, C, 1), cov (B, C, C)) -> smoothed moments (video).
SmoothMoments = Callable[[str, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def used_points(points: list[str], decoder_transfers: bool = DECODER_TRANSFERS) -> list[str]:
    """The transfer points of a decoder (``points``, in order) that stylisation uses: the
    decoder's own (``d1`` ... ``d5``) only with ``decoder_transfers``."""
    return [p for p in points if decoder_transfers or not p.startswith("d")]


def check_side(width: int, height: int, what: str) -> None:
    """Refuse an image the encoder cannot take (both sides must be >= :data:`MIN_SIDE`)."""
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"{what} is {width}x{height}; both sides must be >= {MIN_SIDE} px")


Pads = tuple[int, int, int, int]  # (left, right, top, bottom), as F.pad takes them


def min_side_pads(height: int, width: int, side: int = MIN_SIDE) -> Pads:
    """How much to pad an ``height × width`` image so both sides are at least ``side``."""
    dh, dw = max(0, side - height), max(0, side - width)
    return dw // 2, dw - dw // 2, dh // 2, dh - dh // 2


def mirror_pad(x: torch.Tensor, pads: Pads) -> torch.Tensor:
    """``(B, C, H, W)`` padded by ``pads`` with the image mirrored at its edges (mirrored
    again where it is thinner than the padding; a 1-px side repeats its pixels)."""
    left, right, top, bottom = pads
    while left or right or top or bottom:
        h, w = x.shape[-2:]
        if w == 1 and (left or right):  # nothing to mirror
            x, left, right = F.pad(x, (left, right, 0, 0), mode="replicate"), 0, 0
        elif h == 1 and (top or bottom):
            x, top, bottom = F.pad(x, (0, 0, top, bottom), mode="replicate"), 0, 0
        else:
            step = (min(left, w - 1), min(right, w - 1), min(top, h - 1), min(bottom, h - 1))
            x = F.pad(x, step, mode="reflect")
            left, right, top, bottom = (a - b for a, b in zip((left, right, top, bottom), step))
    return x


def unpad(x: torch.Tensor, pads: Pads) -> torch.Tensor:
    """The inverse of :func:`mirror_pad`: ``(..., H, W)`` cropped back."""
    left, right, top, bottom = pads
    h, w = x.shape[-2:]
    return x[..., top : h - bottom, left : w - right]


class _StyleRecorded(Exception):
    """Raised inside the decoder once the style's last transfer point is recorded."""


@dataclass
class StyleCache:
    """A style image summarised once: WCT statistics at every transfer point."""

    stats: dict[str, dict[int, ColourStats]] = field(default_factory=dict)
    size: tuple[int, int] = (0, 0)
    # --auto-masks: the style's region centres (automask.style_regions); contents are
    # labelled by them
    centres: torch.Tensor | None = None
    notes: list[str] = field(default_factory=list)  # for the user, e.g. a cache entry rebuilt


def summary_fits(stats: dict[str, dict[int, ColourStats]], points: list[str]) -> bool:
    """Whether style statistics hold, at every point of ``points`` (and the image point), a
    whole-image entry and only finite ``(C, 1)`` means and ``(C, C)`` colouring matrices of
    that point's channels (a stored summary from another network or a damaged file may not)."""
    for point in [*points, IMAGE_POINT]:
        per = stats.get(point)
        if not per or -1 not in per:
            return False
        c = 3 if point == IMAGE_POINT else point_channels(point)
        for s in per.values():
            if tuple(s.mean.shape) != (c, 1) or tuple(s.colour.shape) != (c, c):
                return False
            if not (bool(s.mean.isfinite().all()) and bool(s.colour.isfinite().all())):
                return False
    return True


class Stylizer(nn.Module):
    """Photorealistic style transfer with one feed-forward pass.

    >>> st = Stylizer.from_pretrained("photonas")          # doctest: +SKIP
    >>> out = st.stylize_pil(Image.open("c.jpg"), Image.open("s.jpg"))  # doctest: +SKIP
    """

    def __init__(
        self, genotype: Genotype | str, precision: str = "fp32", shrink: float = WHITEN_SHRINK
    ) -> None:
        super().__init__()
        self.shrink = shrink
        self.eig_floor = 0.0  # relative eigenvalue floor of the whitening (wct.matrix_power)
        self.mask_softness = MASK_SOFTNESS  # region boundaries blended over this share
        self.colour_match = COLOUR_MATCH  # strength of the image-level transfer point
        self.colour_shrink = COLOUR_SHRINK  # its whitening's shrinkage (3×3 RGB covariance)
        self.region_mix = REGION_MIX  # share of the whole style's statistics in each region's
        self.region_prior = REGION_PRIOR  # share of the whole photos' spreads in a region's
        self.label_snap = LABEL_SNAP  # radius snapping drawn labels to edges (0 = off)
        self.region_band = REGION_BAND  # px by automatic region boundaries the colours decide
        self.min_match_margin = MIN_MATCH_MARGIN  # automatic regions only above it
        self.region_segments = REGION_SEGMENTS  # automatic labels per photo segment; 0: band
        self.guided_blend = GUIDED_BLEND  # automatic regions' blend follows the photo's edges
        self.decoder_transfers = DECODER_TRANSFERS  # WCT at the decoder's d1...d5 points too
        self.dead_ratio = DEAD_CHANNEL_RATIO  # style channels this weak keep the content's
        self.whitened_reach = WHITENED_REACH  # at those levels: whitened RMS coloured at most
        self.colour_regions = COLOUR_REGIONS  # the image point per region (else whole image)
        self.genotype = resolve(genotype)
        self.encoder = VGGEncoder()
        self.decoder = Decoder(self.genotype)
        self.precision = precision
        # sha256 of the loaded decoder weights (None: not from a file), keys cached styles.
        self.weights_id: str | None = None

    @classmethod
    def from_pretrained(
        cls,
        arch: str | Genotype = "photonas",
        weights: str | Path | None = None,
        device: str = "auto",
        precision: str = "fp32",
    ) -> Stylizer:
        """Build the network and load its decoder weights (shipped ones by default)."""
        from .weights import load_decoder_state, resolve_arch_and_weights

        genotype, path = resolve_arch_and_weights(arch, weights)
        model = cls(genotype, precision=precision)
        model.decoder.load_state_dict(load_decoder_state(path, genotype))
        model.weights_id = stylestore.file_digest(path)
        return model.to(resolve_device(device)).eval()

    @contextlib.contextmanager
    def settings(self, **values: object) -> Iterator[Stylizer]:
        """Set some of the transfer settings (e.g. ``label_snap=0``) for a ``with`` block;
        ``None`` values are left as they are; all restored on the way out."""
        values = {k: v for k, v in values.items() if v is not None}
        for name in values:
            if not hasattr(self, name):
                raise AttributeError(f"Stylizer has no setting {name!r}")
        before = {name: getattr(self, name) for name in values}
        try:
            for name, value in values.items():
                setattr(self, name, value)
            yield self
        finally:
            for name, value in before.items():
                setattr(self, name, value)

    @property
    def precision(self) -> str:
        """The autocast precision in use: ``auto`` resolved for the model's device
        (:func:`~stylenas_cli.device.resolve_precision`)."""
        return resolve_precision(self._precision, self.device)

    @precision.setter
    def precision(self, value: str) -> None:
        if value not in CHOICES:
            resolve_precision(value, "cpu")  # the one error message for a bad name
        self._precision = value

    @property
    def device(self) -> torch.device:
        return next(self.decoder.parameters()).device

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context of this model's precision on its device."""
        return autocast(self.device, self.precision)

    @torch.inference_mode()
    def reconstruct(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] -> the auto-encoder's reconstruction, same shape."""
        with self.autocast():
            out = self.decoder(self.encoder(image.to(self.device)), consume=True)
        return out.float().clamp(0, 1)

    def needed_points(self) -> list[str]:
        """The transfer points a stylisation reads the style's statistics at (the image
        point aside)."""
        return used_points(self.decoder.transfer_points, self.decoder_transfers)

    @torch.inference_mode()
    def style_cache(
        self, style: torch.Tensor, labels: torch.Tensor | None = None, regions: int = 0
    ) -> StyleCache:
        """Summarise a style image ``(1, 3, H, W)`` (optional label map ``(H, W)``).

        Statistics at the points a stylisation uses (:meth:`needed_points`) and the image
        point; with :attr:`decoder_transfers` the style also runs through the decoder's stages
        (without transfers) so that its own points get the style's statistics there.
        ``regions`` > 0 (and no label map): find that many regions in the style's deep
        features (:mod:`~stylenas_cli.automask`); contents are then labelled to match."""
        cache = StyleCache(size=(style.shape[-2], style.shape[-1]))
        pads = min_side_pads(*style.shape[-2:])
        if any(pads):  # a thin style: mirrored out to the size the deepest level needs
            labels = None if labels is None else _pad_labels(labels, style.shape[-2:], pads)
            style = mirror_pad(style.float(), pads)

        def record(point: str, x: torch.Tensor) -> torch.Tensor:
            cache.stats[point] = style_stats(x.float(), labels)
            return x

        with self.autocast():
            feats = self.encoder(style.to(self.device))
            if regions and labels is None:
                deep = matching_feature(feats)
                cache.centres, labels = style_regions(deep, regions)
                photo = style[0].to(self.device).float()
                if self.region_segments:
                    labels = segment_regions(deep, cache.centres, photo, self.region_segments)
                elif self.region_band:
                    labels = refine_regions(labels, photo, self.region_band)
            for level in LEVELS:
                if level in self.decoder.transfer_points:
                    record(level, feats[level])
            # The decoder runs only for its own points, when they transfer at all.
            decoder_points = [p for p in self.needed_points() if p.startswith("d")]

            def record_until_done(point: str, x: torch.Tensor) -> torch.Tensor:
                if point in decoder_points:
                    record(point, x)
                    if point == decoder_points[-1]:
                        raise _StyleRecorded  # the decoder's remaining stages are not needed
                return x

            if decoder_points:
                with contextlib.suppress(_StyleRecorded):
                    self.decoder(feats, transfer=record_until_done, consume=True)
        # The style photo's own colour statistics: the last transfer point ("image"), in
        # float32 (outside autocast), with the regions' labels once they are known.
        cache.stats[IMAGE_POINT] = style_stats(style.float().to(self.device), labels)
        return cache

    def load_style(
        self,
        path: str | Path,
        max_side: int = DEFAULT_STYLE_SIZE,
        mask: str | Path | None = None,
        cache_dir: Path | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        regions: int = 0,
    ) -> StyleCache:
        """Read a style photo (long side at most ``max_side``) and its optional label map
        (drawn at the photo's own size) and summarise them (:meth:`style_cache`; ``regions``:
        automatic regions when there is no map, not kept on disk).

        ``cache_dir``: keep the summary on disk there (:mod:`stylenas_cli.stylestore`) and
        reuse it in later runs (only for networks loaded from a weights file). Files declaring
        more than ``max_pixels`` are refused (:func:`~stylenas_cli.images.open_image`)."""
        name = None
        notes: list[str] = []
        for file, what in ((path, "style"), (mask, "mask")):
            if file is not None:  # missing, a folder, not an image, too large: one line
                with open_image(file, max_pixels, what):
                    pass
        oriented = oriented_size(path)
        if cache_dir is not None and self.weights_id is not None and not regions:
            name = stylestore.key(
                path, self.weights_id, str(self.genotype), max_side, self.precision, mask
            )
            found = stylestore.load(cache_dir, name)
            needed = self.needed_points()
            # A summary stored without the decoder's points is made again once they are on.
            if found is not None and all(p in found[0] for p in needed):
                stats, size = found
                if summary_fits(stats, needed):
                    stats = {
                        p: {k: _to(v, self.device) for k, v in d.items()} for p, d in stats.items()
                    }
                    return StyleCache(stats, size)
                notes.append(
                    f"{path}: its cached statistics ({cache_dir / name}.pt) did not fit this "
                    "network and were made again"
                )
        img = load_image(path, max_side, max_pixels)
        check_side(*(oriented or img.size), f"{path}: style")  # its own size: thin ones pad
        labels = None
        if mask is not None:
            labels = load_labels(mask, oriented or img.size, max_pixels)
        cache = self.style_cache(img.rgb.to(self.device), labels, regions)
        cache.notes = notes
        if name is not None:
            stylestore.save(cache_dir, name, cache.stats, cache.size)
        return cache

    @torch.inference_mode()
    def stylize(
        self,
        content: torch.Tensor,
        style: torch.Tensor | StyleCache,
        alpha: float = 1.0,
        content_labels: torch.Tensor | None = None,
        style_labels: torch.Tensor | None = None,
        smooth: SmoothMoments | None = None,
    ) -> torch.Tensor:
        """Content ``(B, 3, H, W)`` and a style image ``(1, 3, H', W')`` (or its cache)
        -> stylised ``(B, 3, H, W)`` in [0, 1].

        ``smooth(point, mean, cov)``: optional hook on the content moments at each transfer
        point (the video stabiliser averages them over a shot)."""
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
        if alpha == 0.0:  # no transfer: the content itself, not its reconstruction
            return content.to(self.device).float().clamp(0, 1)
        cache = style if isinstance(style, StyleCache) else self.style_cache(style, style_labels)
        pads = min_side_pads(*content.shape[-2:])
        if any(pads):  # a thin photo: mirrored out for the network, cropped back after
            labels = None
            if content_labels is not None:
                labels = _pad_labels(content_labels, content.shape[-2:], pads)
            out = self.stylize(mirror_pad(content.float(), pads), cache, alpha, labels,
                               smooth=smooth)  # fmt: skip
            return unpad(out, pads).contiguous()
        if content_labels is not None:
            content_labels = content_labels.to(self.device)

        def transfer(point: str, x: torch.Tensor) -> torch.Tensor:
            if point not in used:  # the decoder's own points, unless switched on
                return x
            hook = partial(smooth, point) if smooth is not None else None
            # In the compute dtype (the statistics and the C×C maths are float64 inside wct)
            # and in place: the decoder consumes its features, nothing else holds this one.
            normalised = point in normalised_skips
            dead = self.dead_ratio if normalised else 0.0
            reach = self.whitened_reach if normalised else 0.0
            return wct(x, cache.stats[point], alpha, content_labels, self.shrink, hook, True,
                       floor=self.eig_floor, soft=soft, global_mix=self.region_mix,
                       region_prior=self.region_prior, guide=guide,
                       guide_memo=memo, dead_ratio=dead, reach=reach)  # fmt: skip

        auto = cache.centres is not None and content_labels is None
        normalised_skips = self.decoder.normalised_skips  # the limits' levels (see above)
        used = self.needed_points()
        missing = [p for p in used if p not in cache.stats]
        if missing:
            raise ValueError(
                f"the style summary has no statistics at {', '.join(missing)} (made with "
                "decoder_transfers off): summarise the style again"
            )
        # Automatic regions (1/8-resolution labels) get soft boundaries; drawn masks stay hard
        # (soft ones measured worse on the DPST masks: ssim 0.551 vs 0.580).
        soft = self.mask_softness if auto else 0.0
        photo = content[0].to(self.device).float() if auto else None  # refines and guides
        guide = photo if self.guided_blend else None
        memo: dict = {}  # the guided blend's weights, the same at every transfer point
        if auto and content.shape[0] > 1:  # each photo its own regions
            parts = [self.stylize(c[None], cache, alpha, smooth=smooth) for c in content]
            return torch.cat(parts)
        with self.autocast():
            feats = self.encoder(content.to(self.device))
            if auto:
                content_labels = self._auto_labels(feats, cache.centres, photo)
            # consume: each encoder feature is freed once the decoder has used it
            out = self.decoder(feats, transfer, consume=True)
        out = out.float().clamp(0, 1)
        if self.colour_match and IMAGE_POINT in cache.stats:
            # The decoder's colours still lean to the content's: match the style photo's own
            # colour statistics too (over the whole image by default, also with masks).
            hook = partial(smooth, IMAGE_POINT) if smooth is not None else None
            labels = content_labels if self.colour_regions else None
            out = wct(out, cache.stats[IMAGE_POINT], alpha * self.colour_match, labels,
                      self.colour_shrink, hook, True, floor=self.eig_floor, soft=soft,
                      global_mix=self.region_mix, region_prior=self.region_prior, guide=guide,
                      guide_memo=memo).clamp_(0, 1)  # fmt: skip
        return out

    def _auto_labels(
        self, feats: dict[str, torch.Tensor], centres: torch.Tensor, photo: torch.Tensor
    ) -> torch.Tensor | None:
        """A content's automatic labels ``(H, W)`` at the photo's ``(3, H, W)`` size from its
        encoder features, or ``None`` where it cannot tell the style's regions apart (then
        transferred as one region)."""
        deep = matching_feature(feats)
        if match_margin(deep, centres) < self.min_match_margin:
            return None
        if self.region_segments:
            return segment_regions(deep, centres, photo, self.region_segments)
        labels = assign_regions(deep, centres)
        return refine_regions(labels, photo, self.region_band) if self.region_band else labels

    @torch.inference_mode()
    def stylize_at(
        self,
        content: torch.Tensor,
        style: torch.Tensor | StyleCache,
        alpha: float = 1.0,
        content_labels: torch.Tensor | None = None,
        work_size: int | None = DEFAULT_WORK_SIZE,
        lift_cfg: LiftConfig | None = None,
        small: torch.Tensor | None = None,
        out: torch.Tensor | None = None,
        smooth: SmoothMoments | None = None,
        settle: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The network at a working resolution, its result lifted to the content's own size.

        Args:
            content: ``(B, 3, H, W)`` in [0, 1] (float) or 0..255 (uint8), on any device.
            style: a style image ``(1, 3, H', W')`` or its :class:`StyleCache`.
            content_labels: optional label map ``(H, W)``, resized for the network.
            work_size: long side the network sees; ``None``: every pixel (the papers' mode).
            lift_cfg: the guided-filter lift (:mod:`stylenas_cli.lift`, default settings if
                None); with
                ``lift_cfg.filter_small`` a photo no larger than ``work_size`` goes through the
                filter too (fitted and applied at its own size).
            small: ``(B, 3, h, w)`` the content already at the working size (saves a resize).
            out: optional ``(B, 3, H, W)`` tensor to write the result into (uint8 allowed).
            smooth: the moment hook of :meth:`stylize`.
            settle: ``settle(small, result)`` -> result, applied to the network's result at
                the working size before the lift (the video stabiliser's blend).

        Returns:
            ``(B, 3, H, W)``: ``out``, or a new float32 tensor in [0, 1].
        """
        if alpha == 0.0:  # no transfer: the content's own pixels
            return _content_as(content, out)
        lift_cfg = lift_cfg or LiftConfig()
        height, width = content.shape[-2:]
        size = work_shape(height, width, work_size) if work_size else (height, width)
        if small is None:
            small = downscale(content, size)
        small = small.to(self.device)
        labels = None if content_labels is None else self._fit_labels(content_labels, small)
        target = self.stylize(small, style, alpha, content_labels=labels, smooth=smooth)
        if settle is not None:
            target = settle(small, target)
        if size == (height, width) and not (work_size and lift_cfg.filter_small):
            if out is None:
                return target
            out.copy_(target.mul(255).round_() if out.dtype == torch.uint8 else target)
            return out
        return lift(small, target, content.to(self.device), lift_cfg, out)

    def _fit_labels(self, labels: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
        """A drawn label map (any size) for the content at its working size ``small``
        ``(B, 3, h, w)``: snapped to its edges (the batch's mean photo), or just resized."""
        if self.label_snap:
            return snap_labels(labels.to(small.device), small.mean(0), self.label_snap)
        return resize_labels(labels, tuple(small.shape[-2:]))

    def stylize_pil(
        self,
        content: Image.Image,
        style: Image.Image,
        alpha: float = 1.0,
        work_size: int | None = DEFAULT_WORK_SIZE,
    ) -> Image.Image:
        """PIL in, PIL out (RGB): :meth:`stylize_at` (the network at ``work_size``, lifted)."""
        c = pil_to_tensor(content)
        s = pil_to_tensor(style).to(self.device)
        return tensor_to_pil(self.stylize_at(c, s, alpha, work_size=work_size)[0])


def _content_as(content: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    """``content`` (uint8 or float in [0, 1]) in ``out`` (uint8 or float), else as float."""
    if out is None:
        return content.float() / 255.0 if content.dtype == torch.uint8 else content.float().clone()
    if out.dtype == torch.uint8 and content.dtype != torch.uint8:
        return out.copy_(content.float().clamp(0, 1).mul(255).round_())
    if out.dtype != torch.uint8 and content.dtype == torch.uint8:
        return out.copy_(content.float() / 255.0)
    return out.copy_(content)


def _pad_labels(labels: torch.Tensor, size: tuple[int, int], pads: Pads) -> torch.Tensor:
    """A label map ``(H', W')`` at an image's ``size``, mirrored out like the image."""
    at_size = resize_labels(labels, tuple(size))[None, None].float()
    return mirror_pad(at_size, pads)[0, 0].long()


def _to(stats: ColourStats, device: torch.device) -> ColourStats:
    return ColourStats(stats.mean.to(device), stats.colour.to(device))


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL image -> ``(1, 3, H, W)`` float in [0, 1]."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """``(3, H, W)`` in [0, 1] -> RGB PIL image."""
    arr = (image.detach().float().clamp(0, 1) * 255.0 + 0.5).byte().permute(1, 2, 0)
    return Image.fromarray(arr.cpu().numpy())

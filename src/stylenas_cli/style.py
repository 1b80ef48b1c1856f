"""The style pass: a style photo summarised once, as WCT statistics at every transfer point a
stylisation uses (and, for automatic regions, the style's region centres), reused for every
content of a batch or frame of a video and kept on disk across runs (:mod:`.stylestore`)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from . import stylestore
from .config import DEFAULT_MAX_PIXELS, DEFAULT_STYLE_SIZE, DEFAULT_TRANSFER, TransferSettings
from .decoder import point_channels
from .encoder import LEVELS
from .images import load_image, load_labels, open_image, oriented_size
from .shape import check_side, min_side_pads, mirror_pad, pad_labels
from .wct import ColourStats, style_stats

# The functions here take a Stylizer (its encoder, decoder, device, precision and weights id)
# as a plain nn.Module: the model imports this module, not the other way round.
IMAGE_POINT = "image"  # the last transfer point: the output's own RGB


def used_points(points: list[str], settings: TransferSettings = DEFAULT_TRANSFER) -> list[str]:
    """The transfer points of a decoder (``points``, in order) that stylisation uses: the
    decoder's own (``d1`` ... ``d5``) only with ``settings.decoder_transfers``."""
    return [p for p in points if settings.decoder_transfers or not p.startswith("d")]


@dataclass
class StyleCache:
    """A style image summarised once: WCT statistics at every transfer point."""

    stats: dict[str, dict[int, ColourStats]] = field(default_factory=dict)
    size: tuple[int, int] = (0, 0)
    # Automatic regions: the style's region centres (regions.style_regions); contents are
    # labelled by them.
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


def _on(stats: dict[str, dict[int, ColourStats]], device: torch.device) -> dict:
    """Style statistics moved to ``device``."""
    return {
        p: {k: ColourStats(s.mean.to(device), s.colour.to(device)) for k, s in d.items()}
        for p, d in stats.items()
    }


class _StyleRecorded(Exception):
    """Raised inside the decoder once the style's last transfer point is recorded."""


@torch.inference_mode()
def summarise(
    model: nn.Module,
    style: torch.Tensor,
    labels: torch.Tensor | None = None,
    settings: TransferSettings = DEFAULT_TRANSFER,
) -> StyleCache:
    """Summarise a style image ``(1, 3, H, W)`` in [0, 1] (optional label map ``(H, W)``).

    Statistics at the points a stylisation uses (:func:`used_points`) and the image point;
    with ``settings.decoder_transfers`` the style also runs through the decoder's stages
    (without transfers) so that its own points get the style's statistics there.
    ``settings.regions`` > 0 (and no label map): find that many regions in the style's deep
    features (:mod:`~stylenas_cli.regions`); contents are then labelled to match."""
    cache = StyleCache(size=(style.shape[-2], style.shape[-1]))
    pads = min_side_pads(*style.shape[-2:])
    if any(pads):  # a thin style: mirrored out to the size the deepest level needs
        labels = None if labels is None else pad_labels(labels, style.shape[-2:], pads)
        style = mirror_pad(style.float(), pads)

    def record(point: str, x: torch.Tensor) -> torch.Tensor:
        cache.stats[point] = style_stats(x.float(), labels)
        return x

    points = used_points(model.decoder.transfer_points, settings)
    with model.autocast():
        feats = model.encoder(style.to(model.device))
        if settings.regions and labels is None:
            from .regions import matching_feature, segment_regions, style_regions

            deep = matching_feature(feats)
            cache.centres, labels = style_regions(deep, settings.regions)
            photo = style[0].to(model.device).float()
            labels = segment_regions(deep, cache.centres, photo, settings.region_segments)
        for level in LEVELS:
            if level in points:
                record(level, feats[level])
        # The decoder runs only for its own points, when they transfer at all.
        decoder_points = [p for p in points if p.startswith("d")]

        def record_until_done(point: str, x: torch.Tensor) -> torch.Tensor:
            if point in decoder_points:
                record(point, x)
                if point == decoder_points[-1]:
                    raise _StyleRecorded  # the decoder's remaining stages are not needed
            return x

        if decoder_points:
            with contextlib.suppress(_StyleRecorded):
                model.decoder(feats, transfer=record_until_done, consume=True)
    # The style photo's own colour statistics (the image point), in float32 outside
    # autocast, with the regions' labels once they are known.
    cache.stats[IMAGE_POINT] = style_stats(style.float().to(model.device), labels)
    return cache


def load_style(
    model: nn.Module,
    path: str | Path,
    max_side: int = DEFAULT_STYLE_SIZE,
    mask: str | Path | None = None,
    cache_dir: Path | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    settings: TransferSettings = DEFAULT_TRANSFER,
) -> StyleCache:
    """Read a style photo (long side at most ``max_side``) and its optional label map (drawn
    at the photo's own size) and summarise them (:func:`summarise`; automatic regions are
    not kept on disk).

    ``cache_dir``: keep the summary on disk there (:mod:`stylenas_cli.stylestore`) and reuse
    it in later runs (only for networks loaded from a weights file); an entry that does not
    fit the network is made again, with a note. Files declaring more than ``max_pixels`` are
    refused (:func:`~stylenas_cli.images.open_image`)."""
    name = None
    notes: list[str] = []
    for file, what in ((path, "style"), (mask, "mask")):
        if file is not None:  # missing, a folder, not an image, too large: one line
            with open_image(file, max_pixels, what):
                pass
    oriented = oriented_size(path)
    if cache_dir is not None and model.weights_id is not None and not settings.regions:
        name = stylestore.key(
            path, model.weights_id, str(model.genotype), max_side, model.precision, mask
        )
        found = stylestore.load(cache_dir, name)
        needed = used_points(model.decoder.transfer_points, settings)
        # A summary stored without the decoder's points is made again once they are on.
        if found is not None and all(p in found[0] for p in needed):
            stats, size = found
            if summary_fits(stats, needed):
                return StyleCache(_on(stats, model.device), size)
            notes.append(
                f"{path}: its cached statistics ({cache_dir / name}.pt) did not fit this "
                "network and were made again"
            )
    img = load_image(path, max_side, max_pixels)
    check_side(*(oriented or img.size), f"{path}: style")  # its own size: thin ones pad
    labels = None
    if mask is not None:
        labels = load_labels(mask, oriented or img.size, max_pixels)
    cache = summarise(model, img.rgb.to(model.device), labels, settings)
    cache.notes = notes
    if name is not None:
        stylestore.save(cache_dir, name, cache.stats, cache.size)
    return cache

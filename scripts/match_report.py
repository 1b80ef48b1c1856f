"""How well ``--auto-masks`` matches regions, measured against drawn label maps.

    python scripts/match_report.py ../shared/data/bench/dpst [--pairs 02,21]

For each pair with label maps (``content_seg/``, ``style_seg/``): the content at the working
size and the style at the style size, the shipped automatic regions of both (default
settings: the matching features, the margin gate, labels per photo segment), and the drawn
maps resized to the same sizes (nearest). The score of a content pixel whose drawn label L
the style also has is the share of its style region's pixels that carry L (a gated photo
takes the whole style: the share of L in the whole style); the pair's score is the mean over
those pixels. ``one region`` is that score for the whole style (what the plain transfer
uses), so automatic regions help where ``auto`` is above it. Also printed: the content's
median matching margin and whether the gate sent the photo to one region.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from stylenas_cli.config import (
    DEFAULT_REGIONS,
    DEFAULT_STYLE_SIZE,
    DEFAULT_TRANSFER,
    DEFAULT_WORK_SIZE,
)
from stylenas_cli.evaluation import find_pairs
from stylenas_cli.images import load_image, load_labels
from stylenas_cli.model import Stylizer
from stylenas_cli.regions import match_margin, matching_feature, segment_regions, style_regions
from stylenas_cli.shape import work_shape
from stylenas_cli.wct import resize_labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--pairs", default=None, help="comma-separated pair names (default all)")
    ap.add_argument("--arch", default="photonas")
    args = ap.parse_args()
    model = Stylizer.from_pretrained(args.arch, device="cpu", precision="fp32")
    pairs = [p for p in find_pairs(args.folder)[0] if p.content_seg and p.style_seg]
    if args.pairs:
        pairs = [p for p in pairs if p.name in args.pairs.split(",")]
    print("| pair | margin | gated | one region | auto |")
    print("|---|---|---|---|---|")
    scores = []
    for pair in pairs:
        photos = []
        for path, size in ((pair.content, DEFAULT_WORK_SIZE), (pair.style, DEFAULT_STYLE_SIZE)):
            img = load_image(path)
            w, h = img.size
            photos.append(img.resized(*work_shape(h, w, size)))
        content, style = photos
        with torch.inference_mode():
            deep_c = matching_feature(model.encoder(content))
            deep_s = matching_feature(model.encoder(style))
        centres, _ = style_regions(deep_s, DEFAULT_REGIONS)
        auto_s = segment_regions(deep_s, centres, style[0], DEFAULT_TRANSFER.region_segments)
        margin = match_margin(deep_c, centres)
        gated = margin < DEFAULT_TRANSFER.min_match_margin
        auto_c = (
            None
            if gated
            else segment_regions(deep_c, centres, content[0], DEFAULT_TRANSFER.region_segments)
        )
        drawn_c = resize_labels(load_labels(pair.content_seg), content.shape[-2:])
        drawn_s = resize_labels(load_labels(pair.style_seg), style.shape[-2:])
        one, auto = match_scores(drawn_c, drawn_s, auto_c, auto_s)
        scores.append((one, auto))
        print(f"| {pair.name} | {margin:.3f} | {'yes' if gated else ''} | {one:.3f} | {auto:.3f} |")
    if scores:
        one, auto = (sum(col) / len(scores) for col in zip(*scores))
        print(f"| mean | | | {one:.3f} | {auto:.3f} |")


def match_scores(
    drawn_c: torch.Tensor,
    drawn_s: torch.Tensor,
    auto_c: torch.Tensor | None,
    auto_s: torch.Tensor,
) -> tuple[float, float]:
    """Drawn label maps ``(H, W)`` / ``(H', W')`` and automatic ones (``auto_c`` ``None``:
    one region) -> (score of one region, score of the automatic regions), see the module
    docstring. NaN where the style has none of the content's drawn labels."""
    flat_c, flat_s = drawn_c.flatten(), drawn_s.flatten()
    ids, inverse = torch.cat([flat_c, flat_s]).unique(return_inverse=True)
    idx_c, idx_s = inverse[: len(flat_c)], inverse[len(flat_c) :]
    n, regions = len(ids), int(auto_s.max()) + 1
    # counts[r, j]: style pixels of region r (r = regions: the whole style) labelled j
    counts = torch.bincount(auto_s.flatten() * n + idx_s, minlength=regions * n).view(regions, n)
    counts = torch.cat([counts, counts.sum(0, keepdim=True)]).double()
    share = counts / counts.sum(1, keepdim=True).clamp_min(1)
    known = counts[-1, idx_c] > 0  # content pixels whose drawn label the style has
    if not known.any():
        return float("nan"), float("nan")
    whole = torch.full_like(idx_c, regions)
    region = whole if auto_c is None else auto_c.flatten()
    one = share[whole[known], idx_c[known]].mean()
    auto = share[region[known], idx_c[known]].mean()
    return float(one), float(auto)


if __name__ == "__main__":
    main()

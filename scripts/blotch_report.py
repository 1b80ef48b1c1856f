"""Where blotches come from: per pair and transfer point, how strongly the whitening and
colouring amplify the content's weak feature directions.

    python scripts/blotch_report.py ../shared/data/bench/stylenas [--pairs 06,07,08]

For each pair (the content at the working size, the style at the style size, shipped
photonas, default settings) and each transfer point it prints: the content covariance's
eigenvalue spread (largest / smallest kept), the style's, the largest gain of the fused
transfer matrix ``M`` (its spectral norm: how much one unit of content feature can become),
and the share of the output's variance that comes from the content's weakest directions
(eigenvalues under 1% of the largest; output variance = Σ λ_k |M v_k|²) — the noise that
whitening blows up into blotches. The last row of each pair is the image-level point (the
decoder's RGB output toward the style photo's colour statistics).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from stylenas_cli.config import DEFAULT_STYLE_SIZE, DEFAULT_WORK_SIZE
from stylenas_cli.evaluation import find_pairs
from stylenas_cli.images import load_image
from stylenas_cli.lift import work_shape
from stylenas_cli.model import IMAGE_POINT, Stylizer
from stylenas_cli.wct import ColourStats, moments, transfer, wct


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--pairs", default=None, help="comma-separated pair names (default all)")
    ap.add_argument("--arch", default="photonas")
    ap.add_argument(
        "--colour-shrink",
        type=float,
        default=None,
        help="the image point's whitening shrinkage (default: the model's)",
    )
    args = ap.parse_args()
    model = Stylizer.from_pretrained(args.arch, device="cpu", precision="fp32")
    if args.colour_shrink is not None:
        model.colour_shrink = args.colour_shrink
    pairs = find_pairs(args.folder)[0]
    if args.pairs:
        pairs = [p for p in pairs if p.name in args.pairs.split(",")]
    print("| pair | point | content spread | style spread | max gain of M | weak-direction share |")
    print("|---|---|---|---|---|---|")
    for pair in pairs:
        content = load_image(pair.content)
        w, h = content.size
        small = content.resized(*work_shape(h, w, DEFAULT_WORK_SIZE)).float() / 255.0
        cache = model.style_cache(load_image(pair.style, DEFAULT_STYLE_SIZE).rgb)
        seen: dict[str, torch.Tensor] = {}

        def record(point: str, x: torch.Tensor, seen=seen, cache=cache) -> torch.Tensor:
            seen[point] = x.float().flatten(2).clone()
            return wct(x, cache.stats[point], 1.0, None, model.shrink)

        with torch.inference_mode():
            feats = model.encoder(small)
            decoded = model.decoder(feats, record, consume=True).float().clamp(0, 1)
        points = [(p, flat, model.shrink) for p, flat in seen.items()]
        # The image-level point: the decoder's RGB output, with the image point's shrinkage.
        points.append((IMAGE_POINT, decoded.flatten(2), model.colour_shrink))
        for point, flat, shrink in points:
            row = analyse(flat, cache.stats[point][-1], shrink)
            print(f"| {pair.name} | {point} | " + " | ".join(row) + " |")


def analyse(flat: torch.Tensor, stats: ColourStats, shrink: float) -> list[str]:
    """Content features ``(1, C, N)`` and the style's statistics at one point -> the report's
    columns: content spread, style spread, largest gain of M, weak-direction share."""
    mean, cov = moments(flat)
    evals, evecs = torch.linalg.eigh(cov[0])
    keep = evals > 1e-5
    spread = float(evals[keep].max() / evals[keep].min())
    s_evals = torch.linalg.eigvalsh(stats.colour.double() @ stats.colour.double())
    s_keep = s_evals > 1e-5
    s_spread = float(s_evals[s_keep].max() / s_evals[s_keep].min())
    m = transfer(mean, cov, stats, 1.0, shrink).m
    gain = float(torch.linalg.matrix_norm(m[0], ord=2))
    # Output variance = Σ_k λ_k |M v_k|² over the content's eigen-directions v_k.
    contrib = evals.clamp_min(0) * (m[0] @ evecs).pow(2).sum(0)
    weak = evals < 0.01 * evals.max()
    share = float(contrib[weak].sum() / contrib.sum().clamp_min(1e-12))
    return [f"{spread:.3g}", f"{s_spread:.3g}", f"{gain:.2f}", f"{share:.3f}"]


if __name__ == "__main__":
    main()

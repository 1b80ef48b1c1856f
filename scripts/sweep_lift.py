"""Sweep the working-resolution lift: work size × radius × eps -> EVAL.md metrics, against the
plain network on every pixel (native), on folders of content/style pairs.

    python scripts/sweep_lift.py ../shared/data/bench/stylenas ../shared/data/bench/dpst \
        -o runs/sweep/lift.csv

Each network output at a work size is computed once and lifted with every (radius, eps);
photos no larger than a work size are scored with the filter fitted and applied at their own
size. Prints, per folder, the mean of every metric per setting beside the
native row, and writes every row to the CSV.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import time
from pathlib import Path

import numpy as np
import torch

from stylenas_cli.evaluation import find_pairs
from stylenas_cli.evaluation.metrics import Scorer, as_rgb
from stylenas_cli.images import load_image
from stylenas_cli.lift import apply_coefficients, guided_coefficients
from stylenas_cli.model import Stylizer
from stylenas_cli.shape import work_shape

METRICS = ("ssim", "edge_ssim", "lab_w1", "gain", "gram")


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def _u8_to_unit(out: torch.Tensor) -> np.ndarray:
    return out[0].numpy().astype(np.float64) / 255.0  # (H, W, 3)


def _row(base: dict, score: Scorer, setting: str, ws, radius, eps, out, seconds) -> dict:
    return {**base, "setting": setting, "work_size": ws, "radius": radius, "eps": eps,
            "seconds": round(seconds, 3), **score(out)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--arch", default="photonas")
    ap.add_argument("--work-sizes", default="256,384,512")
    ap.add_argument("--radii", default="2,4,8")
    ap.add_argument("--eps", default="1e-4,1e-3,1e-2")
    ap.add_argument("--native-max-mp", type=float, default=8.0, help="skip native above this")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument(
        "--max-size",
        type=int,
        default=None,
        help="shrink the contents first",
    )
    ap.add_argument("-o", "--out", type=Path, default=Path("runs/sweep/lift.csv"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = Stylizer.from_pretrained(args.arch, device="cpu")
    sizes = [int(v) for v in args.work_sizes.split(",")]
    grid = list(itertools.product([int(r) for r in _floats(args.radii)], _floats(args.eps)))
    rows: list[dict] = []
    for folder in args.folders:
        pairs = find_pairs(folder)[0][: args.limit]
        for pair in pairs:
            img = load_image(pair.content, args.max_size)
            w, h = img.size
            full = img.tensor()
            style = load_image(pair.style)
            cache = model.load_style(pair.style)
            score = Scorer(as_rgb(img.rgb), as_rgb(style.rgb))

            base = {"folder": folder.name, "pair": pair.name, "width": w, "height": h}

            if w * h / 1e6 <= args.native_max_mp:
                t0 = time.perf_counter()
                native = model.stylize(img.rgb, cache)
                seconds = time.perf_counter() - t0
                rows.append(_row(base, score, "native", "", "", "", as_rgb(native), seconds))
            for ws in sizes:
                size = work_shape(h, w, ws)
                t0 = time.perf_counter()
                small = img.resized(*size)
                target = model.stylize(small, cache)
                t_net = time.perf_counter() - t0
                kind = "lift" if size != (h, w) else "small"
                for radius, eps in grid:
                    t0 = time.perf_counter()
                    coeffs = guided_coefficients(small, target, radius, eps)
                    out = torch.empty(1, h, w, 3, dtype=torch.uint8)
                    apply_coefficients(coeffs, full, out.permute(0, 3, 1, 2))
                    seconds = t_net + time.perf_counter() - t0
                    rows.append(_row(base, score, kind, ws, radius, eps, _u8_to_unit(out), seconds))
            print(f"{folder.name}/{pair.name} done ({len(rows)} rows)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summarise(rows)


def summarise(rows: list[dict]) -> None:
    """Mean of each metric per folder and setting; native first."""
    keys = sorted({(r["folder"], r["setting"], str(r["work_size"]), str(r["radius"]),
                    str(r["eps"])) for r in rows})  # fmt: skip
    print("| folder | setting | work | r | eps | n | " + " | ".join(METRICS) + " | s |")
    print("|---|---|---|---|---|---|" + "---|" * (len(METRICS) + 1))
    for key in sorted(keys, key=lambda k: (k[0], k[1] != "native", k[2], k[3], k[4])):
        mine = [
            r for r in rows
            if (r["folder"], r["setting"], str(r["work_size"]), str(r["radius"]),
                str(r["eps"])) == key
        ]  # fmt: skip
        means = [np.mean([r[m] for r in mine]) for m in METRICS]
        secs = np.mean([r["seconds"] for r in mine])
        cells = " | ".join(f"{v:.3f}" for v in means)
        print(f"| {' | '.join(key)} | {len(mine)} | {cells} | {secs:.2f} |")


if __name__ == "__main__":
    main()

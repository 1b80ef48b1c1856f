"""Sweep the whitening's regularisation — diagonal shrinkage and relative eigenvalue floor —
through ``stylenas eval`` (the default pipeline: working size, lift, style size, precision).

    python scripts/sweep_wct.py ../shared/data/bench/stylenas ../shared/data/bench/dpst \
        --settings 0.67:0,0.33:0,0:0,0:0.01 -o runs/sweep/wct

A setting is ``SHRINK:FLOOR[:SOFT]`` (SOFT: mask boundary softness, default the model's).
Each writes a full eval report (outputs, contact sheet, CSV) to ``OUT/<folder>/<setting>/``.
Prints per folder and setting the mean of every metric, the pairs whose gram exceeds 2x
Reinhard's on the same pair, and the worst pair by gram.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from stylenas_cli.evaluation import EvalConfig, evaluate
from stylenas_cli.model import MASK_SOFTNESS, Stylizer

METRICS = ("ssim", "edge_ssim", "lab_w1", "gain", "gram")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--arch", default="photonas")
    ap.add_argument("--settings", default="0.67:0,0.33:0,0:0,0:0.003,0:0.01,0:0.03")
    ap.add_argument("--masks", action="store_true", help="also score with the label maps")
    ap.add_argument("--regions", type=int, default=0, help="also score --auto-masks with N")
    ap.add_argument("-o", "--out", type=Path, default=Path("runs/sweep/wct"))
    args = ap.parse_args()
    settings = [tuple(float(v) for v in s.split(":")) for s in args.settings.split(",")]
    settings = [(*st, MASK_SOFTNESS)[:3] if len(st) == 2 else st for st in settings]
    loaded = Stylizer.from_pretrained
    rows: list[dict] = []
    for shrink, floor, soft in settings:

        def patched(*a, _s=shrink, _f=floor, _soft=soft, **k):
            model = loaded(*a, **k)
            model.shrink, model.eig_floor, model.mask_softness = _s, _f, _soft
            return model

        Stylizer.from_pretrained = patched
        for folder in args.folders:
            cfg = EvalConfig(archs=(args.arch,), masks=args.masks, baselines=("reinhard",),
                             overwrite=True, regions=args.regions)  # fmt: skip
            out = args.out / folder.name / f"{shrink}_{floor}_{soft}"
            report = evaluate(folder, out, cfg)
            for r in report.rows:
                rows.append({"folder": folder.name, "shrink": shrink, "floor": floor,
                             "soft": soft, **r})  # fmt: skip
            print(f"{folder.name} {shrink}:{floor}:{soft} done", flush=True)
    Stylizer.from_pretrained = loaded
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "sweep.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    summarise(rows)


def summarise(rows: list[dict]) -> None:
    """Means per folder, setting and method; pairs over 2x Reinhard's gram; the worst pair."""
    print(
        "| folder | shrink | floor | method | n | " + " | ".join(METRICS) + " | >2x rein | worst |"
    )
    print("|---|---|---|---|---|" + "---|" * (len(METRICS) + 2))
    keys = sorted({(r["folder"], r["shrink"], r["floor"], r["method"]) for r in rows
                   if r["kind"] == "ours"})  # fmt: skip
    for key in keys:
        mine = [r for r in rows if (r["folder"], r["shrink"], r["floor"], r["method"]) == key]
        rein = {
            r["pair"]: float(r["gram"])
            for r in rows
            if (r["folder"], r["shrink"], r["floor"]) == key[:3] and r["method"] == "reinhard"
        }
        over = [r["pair"] for r in mine if float(r["gram"]) > 2 * rein[r["pair"]]]
        worst = max(mine, key=lambda r: float(r["gram"]))
        means = " | ".join(f"{np.mean([float(r[m]) for r in mine]):.3f}" for m in METRICS)
        print(f"| {' | '.join(map(str, key))} | {len(mine)} | {means} | {' '.join(over) or '-'} "
              f"| {worst['pair']} {float(worst['gram']):.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()

"""Sweep the whitening's regularisation — diagonal shrinkage and relative eigenvalue floor —
through ``stylenas eval`` (the default pipeline: working size, lift, style size, precision).

    python scripts/sweep_wct.py ../shared/data/bench/stylenas ../shared/data/bench/dpst \
        --settings 0.67:0,0.33:0,0:0,0:0.01 -o runs/sweep/wct

A setting is ``SHRINK[:FLOOR[:SOFT[:COLOUR[:…]]]]``, values in the order of ``FIELDS``
(the :class:`Stylizer` attributes of ``FIELDS``: whitening shrinkage, eigenvalue floor, mask
boundary softness, strength of the image-level transfer point and its own shrinkage, share of
the whole style in each region's statistics, 1/0 = image point per region / whole image,
share of the whole map's covariance in each region's whitening, radius snapping drawn labels
to the content's edges, band of automatic region boundaries the photo's colours decide,
1/0 = automatic regions blended along the photo's edges / by a box, 1/0 = with regions the
decoder's transfer points transfer too / are left out);
omitted values: the model's defaults.
Each writes a full eval report (outputs, contact sheet, CSV) to ``OUT/<folder>/<setting>/``.
Prints per folder and setting the mean of every metric, the pairs whose gram exceeds 2x
Reinhard's on the same pair, and the worst pair by gram.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from stylenas_cli import model as m
from stylenas_cli.evaluation import EvalConfig, evaluate
from stylenas_cli.model import Stylizer

METRICS = ("ssim", "edge_ssim", "lab_w1", "gain", "gram")
# setting field -> (Stylizer attribute, default)
FIELDS = {
    "shrink": ("shrink", m.WHITEN_SHRINK),
    "floor": ("eig_floor", 0.0),
    "soft": ("mask_softness", m.MASK_SOFTNESS),
    "colour": ("colour_match", m.COLOUR_MATCH),
    "colour_shrink": ("colour_shrink", m.COLOUR_SHRINK),
    "region_mix": ("region_mix", m.REGION_MIX),
    "colour_regions": ("colour_regions", float(m.COLOUR_REGIONS)),
    "region_prior": ("region_prior", m.REGION_PRIOR),
    "label_snap": ("label_snap", float(m.LABEL_SNAP)),
    "region_band": ("region_band", float(m.REGION_BAND)),
    "guided_blend": ("guided_blend", float(m.GUIDED_BLEND)),
    "decoder_transfers": ("decoder_transfers", float(m.DECODER_TRANSFERS)),
    "dead_ratio": ("dead_ratio", m.DEAD_CHANNEL_RATIO),
    "whitened_reach": ("whitened_reach", m.WHITENED_REACH),
}
SETTING = ("folder", *FIELDS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--arch", default="photonas")
    ap.add_argument("--settings", default="0.67:0,0.33:0,0:0,0:0.003,0:0.01,0:0.03")
    ap.add_argument("--masks", action="store_true", help="also score with the label maps")
    ap.add_argument("--regions", type=int, default=0, help="also score --auto-masks with N")
    ap.add_argument("-o", "--out", type=Path, default=Path("runs/sweep/wct"))
    args = ap.parse_args()
    defaults = [default for _, default in FIELDS.values()]
    settings = []
    for text in args.settings.split(","):
        given = [float(v) for v in text.split(":")]
        settings.append(tuple(given + list(defaults[len(given) :])))
    loaded = Stylizer.from_pretrained
    rows: list[dict] = []
    for values in settings:
        setting = dict(zip(SETTING[1:], values, strict=True))

        def patched(*a, _v=values, **k):
            model = loaded(*a, **k)
            for (attr, _), value in zip(FIELDS.values(), _v, strict=True):
                setattr(model, attr, type(getattr(model, attr))(value))  # int, bool, float
            return model

        Stylizer.from_pretrained = patched
        name = "_".join(str(v) for v in values)
        for folder in args.folders:
            cfg = EvalConfig(archs=(args.arch,), masks=args.masks, baselines=("reinhard",),
                             overwrite=True, regions=args.regions)  # fmt: skip
            report = evaluate(folder, args.out / folder.name / name, cfg)
            rows += [{"folder": folder.name, **setting, **r} for r in report.rows]
            print(f"{folder.name} {name} done", flush=True)
    Stylizer.from_pretrained = loaded
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "sweep.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    summarise(rows)


def summarise(rows: list[dict]) -> None:
    """Means per folder, setting and method; pairs over 2x Reinhard's gram; the worst pair."""
    head = " | ".join((*SETTING, "method", "n", *METRICS, ">2x rein", "worst"))
    print(f"| {head} |\n" + "|---" * (len(SETTING) + len(METRICS) + 4) + "|")

    def setting(r: dict) -> tuple:
        return tuple(r[k] for k in SETTING)

    keys = sorted({(*setting(r), r["method"]) for r in rows if r["kind"] == "ours"})
    for key in keys:
        mine = [r for r in rows if (*setting(r), r["method"]) == key]
        rein = {
            r["pair"]: float(r["gram"])
            for r in rows
            if setting(r) == key[:-1] and r["method"] == "reinhard"
        }
        over = [r["pair"] for r in mine if float(r["gram"]) > 2 * rein[r["pair"]]]
        worst = max(mine, key=lambda r: float(r["gram"]))
        means = " | ".join(f"{np.mean([float(r[m]) for r in mine]):.3f}" for m in METRICS)
        print(f"| {' | '.join(map(str, key))} | {len(mine)} | {means} | {' '.join(over) or '-'} "
              f"| {worst['pair']} {float(worst['gram']):.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()

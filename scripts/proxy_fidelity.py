"""How well each proxy ranks genotypes (``make proxy-fidelity``): the supernet's inherited
weights and the old short-training proxy against stand-alone training.

For each genotype of a fixed set spanning the space (the three named ones, the smallest and
five random ones, the decoder's own transfer bits off), score the shipped pipeline on the dev pairs
(``bench/stylenas``, centre crops) with the EVAL metrics (1 − SSIM, Gram, Lab W1) three ways:

- ``standalone``: the genotype trained on its own at the shipped networks' first-phase recipe
  (``runs/fidelity/<name>/last.pt``; ``--train`` trains or resumes every genotype of the set up
  to ``--steps``, the named ones too, so that all are compared at one budget; about 3 s a
  step on 2 cores, resumable across sessions; ``--train-only`` stops there);
- ``shipped``: the shipped weights of the named genotypes (thousands of steps over several
  phases: a reference, not part of the correlations when every genotype has a run);
- ``supernet``: its decoder inherited from the supernet (no training);
- ``short``: trained ``--short-steps`` steps from scratch at 64² (the old proxy).

Each row also has the reconstruction PSNR of the held-aside training photos (256 px) with
the decoder inherited from the supernet and from the shipped photonet taken as an untrained
supernet (``psnr_supernet``, ``psnr_photonet``): what the supernet's fine-tuning bought.

Prints each genotype's scores and, per proxy, Kendall τ and Spearman ρ against
``standalone`` over the genotypes that have stand-alone weights; writes
``<out>/fidelity.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

import torch
from scipy.stats import kendalltau, spearmanr

from stylenas_cli.genotype import NAMED, Genotype
from stylenas_cli.model import Stylizer
from stylenas_cli.nas.evolution import random_genotype, scalarise
from stylenas_cli.nas.objectives import TrainSettings, derive_seed, pair_paths, short_train
from stylenas_cli.nas.proxy import (
    PROXY_QUALITY,
    PROXY_SPACE,
    _base_stylizer,
    score_pairs,
    shipped_genotype,
    supernet_state,
)
from stylenas_cli.nas.supernet import SMALLEST, decoder_for
from stylenas_cli.train import list_images, psnr, read_checkpoint, split_holdout, val_images

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RECIPE = ["--batch", "8", "--size", "128", "--pixel-weight", "50"]
RECIPE += ["--levels", "relu1_1,relu2_1,relu3_1", "--checkpoint-every", "100"]
RECIPE += ["--val-every", "500"]


def genotypes() -> dict[str, Genotype]:
    """The fixed set: named, smallest, five random (seeded: the same in every session)."""
    rng = random.Random(2026)
    out = {k: shipped_genotype(g) for k, g in NAMED.items()}
    out["smallest"] = SMALLEST
    out |= {f"random{k}": random_genotype(rng, PROXY_SPACE) for k in range(1, 6)}
    return out


def standalone_weights(name: str, runs: Path) -> tuple[Path | None, int]:
    """(weights, training steps) of the stand-alone run of ``name``, or (None, 0)."""
    last = runs / name / "last.pt"
    return (last, read_checkpoint(last)["step"]) if last.exists() else (None, 0)


def train_standalone(name: str, g: Genotype, runs: Path, steps: int, data: Path) -> None:
    lr = "2e-4" if g.n_on > 20 else "5e-4"  # the deep decoders lose ReLU paths at 5e-4
    argv = [str(Path(sys.executable).parent / "stylenas"), "train", str(data), "--arch", str(g)]
    argv += ["-o", str(runs / name), "--resume", "--steps", str(steps), "--lr", lr, *RECIPE]
    subprocess.run(argv, check=True)


def score(st: Stylizer, contents: torch.Tensor, styles: torch.Tensor) -> dict[str, float]:
    st.weights_id = None  # no style cache
    o = score_pairs(st, contents, styles)
    return o | {"quality": scalarise(o, PROXY_QUALITY)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--supernet", type=Path, default=ROOT / "weights" / "supernet.pt")
    ap.add_argument("--pairs", type=Path, default=SHARED / "bench" / "stylenas")
    ap.add_argument("--train-data", type=Path, default=SHARED / "train")
    ap.add_argument("--size", type=int, default=256, help="centre-crop side of the dev pairs")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "fidelity")
    ap.add_argument("--train", action="store_true", help="train the stand-alone networks")
    ap.add_argument("--train-only", action="store_true", help="train, then stop (no scores)")
    ap.add_argument("--only", default=None,
                    help="train these genotypes of the set only, comma-separated (e.g. two "
                         "processes of one thread each on different halves)")  # fmt: skip
    ap.add_argument("--steps", type=int, default=600, help="stand-alone steps of each genotype")
    ap.add_argument("--short-steps", type=int, default=120, help="the old proxy's steps (0: off)")
    ap.add_argument("-o", "--out", type=Path, default=ROOT / "runs" / "fidelity")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pairs = pair_paths(args.pairs)
    contents = val_images([c for c, _ in pairs], args.size)
    styles = val_images([s for _, s in pairs], args.size)
    held = val_images(split_holdout(list_images(args.train_data))[1], args.size)
    short = TrainSettings(str(args.train_data), steps=args.short_steps, device="cpu")
    if args.train:
        chosen = set(args.only.split(",")) if args.only else set(genotypes())
        for name, g in genotypes().items():
            if name in chosen:
                train_standalone(name, g, args.runs, args.steps, args.train_data)
        if args.train_only:
            return
    rows = {}
    for name, g in genotypes().items():
        row: dict = {"genotype": str(g)}
        weights, steps = standalone_weights(name, args.runs)
        if weights is not None:
            st = Stylizer.from_pretrained(str(g), weights, "cpu")
            row["standalone"] = score(st, contents, styles) | {"steps": steps}
        if name in NAMED:  # a shipped file holds the full genotype (transfers on)
            row["shipped"] = score(Stylizer.from_pretrained(name, None, "cpu"), contents, styles)
        st = _base_stylizer("cpu")
        st.genotype = g
        st.decoder = decoder_for(supernet_state(args.supernet), g)
        row["supernet"] = score(st, contents, styles)
        row["psnr_supernet"] = psnr(st.reconstruct(held), held)
        st.decoder = decoder_for(supernet_state(ROOT / "weights" / "photonet.pt"), g)
        row["psnr_photonet"] = psnr(st.reconstruct(held), held)
        if args.short_steps:
            torch.manual_seed(derive_seed(0, g))
            fresh = Stylizer(g).eval()
            short_train(fresh, short, derive_seed(0, g))
            row["short"] = score(fresh.eval(), contents, styles)
        rows[name] = row
        print(name, json.dumps({k: v for k, v in row.items() if k != "genotype"}), flush=True)
    print("held-aside PSNR (dB), inherited from the supernet / from photonet:")
    for name, row in rows.items():
        print(f"  {name:9s} {row['psnr_supernet']:.2f} / {row['psnr_photonet']:.2f}")
    if "shipped" in next(iter(rows.values())):
        print(
            "shipped weights (reference):",
            {n: round(r["shipped"]["quality"], 3) for n, r in rows.items() if "shipped" in r},
        )
    # Only networks trained the whole budget are compared (a run stopped early is not).
    have = [n for n, r in rows.items() if r.get("standalone", {}).get("steps", 0) >= args.steps]
    report: dict = {"rows": rows, "standalone_genotypes": have, "correlation": {}}
    for proxy in ("supernet", "short") if args.short_steps else ("supernet",):
        for metric in ("quality", "dssim", "gram", "lab_w1"):
            truth = [rows[n]["standalone"][metric] for n in have]
            guess = [rows[n][proxy][metric] for n in have]
            if len(have) >= 3:
                tau, rho = kendalltau(truth, guess)[0], spearmanr(truth, guess)[0]
                report["correlation"][f"{proxy}/{metric}"] = {"kendall": tau, "spearman": rho}
    (args.out / "fidelity.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"stand-alone networks: {len(have)} ({', '.join(have)})")
    for key, c in report["correlation"].items():
        print(f"{key}: Kendall {c['kendall']:.2f}, Spearman {c['spearman']:.2f}")


if __name__ == "__main__":
    main()

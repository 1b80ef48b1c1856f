"""How well each proxy ranks genotypes (``make proxy-fidelity``): the supernet's inherited
weights and the old short-training proxy against stand-alone training.

For each genotype of a fixed set spanning the space (the three named ones, the smallest and
five random ones, the decoder's own transfer bits off), score the shipped pipeline on the dev pairs
(``bench/stylenas``, centre crops) with the EVAL metrics (1 − SSIM, Gram, Lab W1) three ways:

- ``standalone``: the genotype trained on its own at the shipped networks' first-phase recipe
  (``runs/fidelity/<name>/last.pt``; ``--train`` trains or resumes every genotype of the set up
  to ``--steps``, the named ones too, so that all are compared at one budget; 4–6 s a
  step on one thread, resumable across sessions; ``--train-only`` stops there);
- ``shipped``: the shipped weights of the named genotypes (thousands of steps over several
  phases: a reference, not part of the correlations when every genotype has a run);
- ``supernet``: its decoder inherited from the supernet (no training);
- ``short``: trained ``--short-steps`` steps from scratch at 64² (the old proxy; kept in
  the cache below).

Every score is kept in ``runs/fidelity/<name>/scores<size>.json`` under the digest of the
weights it scored, so a rerun scores only new weights (``--only`` splits the work). The run
folders are not committed: ``docs/proxy_fidelity.json`` records the stand-alone scores, and a
genotype recorded at ``--steps`` with no run here is neither trained again nor rescored
(``--no-record`` ignores the record; ``--save-record`` writes the runs scored here into it).

Each row also has the reconstruction PSNR of the held-aside training photos (256 px) with
the decoder inherited from the supernet and from the shipped photonet taken as an untrained
supernet (``psnr_supernet``, ``psnr_photonet``): what the supernet's fine-tuning bought.

Prints each genotype's scores and, per proxy (and for the inherited decoder's PSNR taken as
a proxy of the quality score), Kendall τ and Spearman ρ against
``standalone`` over the genotypes that have stand-alone weights; writes
``<out>/fidelity.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

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
from stylenas_cli.stylestore import file_digest
from stylenas_cli.train import list_images, psnr, read_checkpoint, split_holdout, val_images
from stylenas_cli.weights import resolve_arch_and_weights

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "docs" / "proxy_fidelity.json"
PHOTONET = ROOT / "weights" / "photonet.pt"
SHARED = ROOT.parent / "shared" / "data"
RECIPE = ["--batch", "8", "--size", "128", "--pixel-weight", "50"]
RECIPE += ["--levels", "relu1_1,relu2_1,relu3_1", "--checkpoint-every", "100"]
RECIPE += ["--val-every", "500"]


class Pairs(NamedTuple):
    """The dev pairs' contents and styles and the held-aside training photos, ``(N, 3, S, S)``."""

    contents: torch.Tensor
    styles: torch.Tensor
    held: torch.Tensor


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


def read_record(path: Path | None) -> dict[str, dict]:
    """The recorded stand-alone scores by genotype name (empty without a record)."""
    if path is None or not path.exists():
        return {}
    return json.loads(path.read_text())["standalone"]


def save_record(path: Path, rows: dict[str, dict]) -> None:
    """Add the stand-alone scores made here (not those read from the record) to ``path``."""
    record = json.loads(path.read_text()) if path.exists() else {"standalone": {}}
    today = datetime.date.today().isoformat()
    for name, row in rows.items():
        scored = row.get("standalone", {})
        if "quality" in scored and not scored.get("recorded"):
            entry = {"genotype": row["genotype"], "measured": today} | scored
            record["standalone"][name] = entry
    path.write_text(json.dumps(record, indent=1) + "\n")


class Scores:
    """A genotype's scores computed so far, kept in ``<runs>/<name>/scores<size>.json``: a key
    names the proxy and the digest of the weights it scored, so new weights score afresh and
    a rerun (or another process, one genotype each) scores only what is new."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.known = json.loads(path.read_text()) if path.exists() else {}

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self.known:
            self.known[key] = compute()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.known, indent=1) + "\n")
            tmp.replace(self.path)
        return self.known[key]


def short_proxy(g: Genotype, settings: TrainSettings, pairs: Pairs) -> dict[str, float]:
    """The old proxy: ``g`` trained ``settings.steps`` steps from scratch (seeded), scored."""
    torch.manual_seed(derive_seed(0, g))
    fresh = Stylizer(g).eval()
    short_train(fresh, settings, derive_seed(0, g))
    return score(fresh.eval(), pairs)


def recorded(name: str, g: Genotype, record: dict[str, dict], steps: int) -> dict | None:
    """``name``'s recorded stand-alone scores if they are of ``g`` at ``steps`` or more."""
    entry = record.get(name)
    if entry is None or entry["genotype"] != str(g) or entry["steps"] < steps:
        return None
    return {k: v for k, v in entry.items() if k not in ("genotype", "measured")} | {
        "recorded": True
    }


def score_row(
    name: str, g: Genotype, args: argparse.Namespace, pairs: Pairs, record: dict[str, dict]
) -> dict:
    """Every score of one genotype (see the module's docstring), cached in :class:`Scores`."""
    cache = Scores(args.runs / name / f"scores{args.size}.json")
    row: dict = {"genotype": str(g)}
    weights, steps = standalone_weights(name, args.runs)
    if weights is None and (known := recorded(name, g, record, args.steps)) is not None:
        row["standalone"] = known
    elif weights is not None and steps < args.steps:
        row["standalone"] = {"steps": steps}  # still training: not scored, not compared
    elif weights is not None:
        load = partial(Stylizer.from_pretrained, str(g), weights, "cpu")
        key = f"standalone@{file_digest(weights)[:12]}"
        row["standalone"] = cache.get(key, lambda: score(load(), pairs)) | {"steps": steps}
    if name in NAMED:  # a shipped file holds the full genotype (transfers on)
        load = partial(Stylizer.from_pretrained, name, None, "cpu")
        key = f"shipped@{file_digest(resolve_arch_and_weights(name, None)[1])[:12]}"
        row["shipped"] = cache.get(key, lambda: score(load(), pairs))
    st = _base_stylizer("cpu")
    st.genotype = g
    held = pairs.held
    for label, source in (("supernet", args.supernet), ("photonet", PHOTONET)):
        tag = f"@{file_digest(source)[:12]}"
        st.decoder = decoder_for(supernet_state(source), g)
        if label == "supernet":
            row["supernet"] = cache.get("supernet" + tag, lambda: score(st, pairs))
        row[f"psnr_{label}"] = cache.get(
            f"psnr_{label}{tag}", lambda: psnr(st.reconstruct(held), held)
        )
    if args.short_steps:
        short = TrainSettings(str(args.train_data), steps=args.short_steps, device="cpu")
        row["short"] = cache.get(f"short{args.short_steps}", lambda: short_proxy(g, short, pairs))
    return row


def score(st: Stylizer, pairs: Pairs) -> dict[str, float]:
    st.weights_id = None  # no style cache
    o = score_pairs(st, pairs.contents, pairs.styles)
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
                    help="train and score these genotypes of the set only, comma-separated "
                         "(e.g. two processes of one thread each on different halves)")  # fmt: skip
    ap.add_argument("--steps", type=int, default=600, help="stand-alone steps of each genotype")
    ap.add_argument("--short-steps", type=int, default=120, help="the old proxy's steps (0: off)")
    ap.add_argument("-o", "--out", type=Path, default=ROOT / "runs" / "fidelity")
    ap.add_argument("--no-record", action="store_true", help=f"ignore {RECORD.name}")
    ap.add_argument("--save-record", action="store_true",
                    help=f"add the stand-alone scores made here to {RECORD.name}")  # fmt: skip
    args = ap.parse_args()
    record = {} if args.no_record else read_record(RECORD)
    args.out.mkdir(parents=True, exist_ok=True)
    files = pair_paths(args.pairs)
    pairs = Pairs(
        val_images([c for c, _ in files], args.size),
        val_images([s for _, s in files], args.size),
        val_images(split_holdout(list_images(args.train_data))[1], args.size),
    )
    chosen = [n for n in genotypes() if not args.only or n in args.only.split(",")]
    if args.train:
        for name in chosen:
            g = genotypes()[name]
            if standalone_weights(name, args.runs)[0] or not recorded(name, g, record, args.steps):
                train_standalone(name, g, args.runs, args.steps, args.train_data)
        if args.train_only:
            return
    rows = {}
    for name in chosen:
        rows[name] = row = score_row(name, genotypes()[name], args, pairs, record)
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
    guesses = {}  # each proxy's scores of the genotypes in `have`, and what they guess
    for proxy in ("supernet", "short") if args.short_steps else ("supernet",):
        for metric in ("quality", "dssim", "gram", "lab_w1"):
            guesses[f"{proxy}/{metric}"] = (metric, [rows[n][proxy][metric] for n in have])
    # the inherited decoder's reconstruction alone, as a proxy: the higher the PSNR the better
    guesses["supernet_psnr/quality"] = ("quality", [-rows[n]["psnr_supernet"] for n in have])
    for key, (metric, guess) in guesses.items() if len(have) >= 3 else ():
        truth = [rows[n]["standalone"][metric] for n in have]
        tau, rho = kendalltau(truth, guess)[0], spearmanr(truth, guess)[0]
        report["correlation"][key] = {"kendall": tau, "spearman": rho}
    if not args.only:  # a part of the set leaves the whole set's report as it is
        (args.out / "fidelity.json").write_text(json.dumps(report, indent=1) + "\n")
    if args.save_record:
        save_record(RECORD, rows)
    print(f"stand-alone networks: {len(have)} ({', '.join(have)})")
    for key, c in report["correlation"].items():
        print(f"{key}: Kendall {c['kendall']:.2f}, Spearman {c['spearman']:.2f}")


if __name__ == "__main__":
    main()

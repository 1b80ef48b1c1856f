"""Aging evolution against random search on the supernet proxy (``make search-compare``).

Each strategy runs once per seed at the same budget of distinct models; every genotype is
scored once (``<out>/scores.jsonl`` memoises the proxy across runs and resumes a stopped
comparison). Writes ``<out>/report-<strategies>.json`` (the best-after-N curves, mean ±
std over seeds) and ``<out>/strategies-<strategies>.png``, and prints the summary lines.
``--pstep`` adds the PhotoNAS P-step against random among the teacher's (photonet's)
sub-networks, scored by distance to the teacher's stylisations.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from stylenas_cli.encoder import LEVELS
from stylenas_cli.genotype import N_BITS, NAMED, Genotype
from stylenas_cli.nas.compare import ScoreBook, compare_strategies, summary_line
from stylenas_cli.nas.evolution import Scores, scalarise
from stylenas_cli.nas.objectives import (
    PSTEP_WEIGHTS,
    GflopsCap,
    TrainSettings,
    _validation,
    shipped_stylize,
)
from stylenas_cli.nas.proxy import (
    PROXY_SPACE,
    SupernetObjective,
    _base_stylizer,
    prepare_proxy,
    search_genotype,
    shipped_genotype,
    supernet_state,
)
from stylenas_cli.nas.supernet import PHOTONET, decoder_for

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
COLOURS = {"evolution": (200, 60, 40), "random": (40, 90, 200)}


class TeacherDistance:
    """P-step score of an inherited sub-network: 0.8·L_r + 0.1·L_p + 0.1·L_m against the
    teacher's (the supernet's photonet) shipped stylisations of the validation pairs."""

    def __init__(self, run_dir: Path, supernet: Path) -> None:
        self.v = _validation(run_dir / "validation.pt")
        self.supernet = supernet
        self.teacher = self._stylise(PHOTONET)  # TeacherDistance: every transfer it uses

    @torch.no_grad()
    def _stylise(self, genotype: Genotype) -> torch.Tensor:
        genotype = shipped_genotype(genotype)
        st = _base_stylizer("cpu")
        st.genotype, st.weights_id = genotype, None
        st.decoder = decoder_for(supernet_state(self.supernet), genotype)
        pairs = zip(self.v["contents"], self.v["styles"])
        return torch.cat([shipped_stylize(st, c[None], s[None]) for c, s in pairs])

    @torch.no_grad()
    def __call__(self, genotype: Genotype) -> Scores:
        out = self._stylise(genotype)
        enc = _base_stylizer("cpu").encoder
        a, b = enc(out), enc(self.teacher)
        o = {
            "l_r": float(F.mse_loss(out, self.teacher)),
            "l_p": float(torch.stack([F.mse_loss(a[k], b[k]) for k in LEVELS]).mean()),
            "l_m": genotype.n_on / N_BITS,
        }
        return Scores(o, scalarise(o, PSTEP_WEIGHTS))


def plot(report: dict, dest: Path, title: str) -> None:
    """Best fitness after N models: mean over seeds, ± one std shaded, per strategy."""
    w, h, left, right, top, bottom = 900, 520, 90, 30, 60, 60
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img, "RGBA")
    font = ImageFont.load_default()
    strategies = [s for s in COLOURS if s in report]
    lows = [m - s for k in strategies for m, s in zip(report[k]["mean"], report[k]["std"])]
    highs = [m + s for k in strategies for m, s in zip(report[k]["mean"], report[k]["std"])]
    # the start is every run's first random model: scale to the part where they differ
    skip = min(10, report["budget"] // 4)
    y0, y1 = min(lows[skip:] or lows), max(highs[skip:] or highs)
    y0, y1 = y0 - 0.05 * (y1 - y0 or 1), y1 + 0.05 * (y1 - y0 or 1)
    n = report["budget"]

    def px(i: int, y: float) -> tuple[float, float]:
        x = left + i / max(1, n - 1) * (w - left - right)
        y = min(max(y, y0), y1)
        return x, h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom)

    draw.rectangle([left, top, w - right, h - bottom], outline="black")
    for k in range(6):
        gy = y0 + (y1 - y0) * k / 5
        draw.text((left - 6, px(0, gy)[1]), f"{gy:.4g}", "black", font, "rm")
        gi = round((n - 1) * k / 5)
        draw.text((px(gi, y0)[0], h - bottom + 6), str(gi + 1), "black", font, "ma")
    for k in strategies:
        r, colour = report[k], COLOURS[k]
        upper = [px(i, m + s) for i, (m, s) in enumerate(zip(r["mean"], r["std"]))]
        lower = [px(i, m - s) for i, (m, s) in enumerate(zip(r["mean"], r["std"]))]
        draw.polygon(upper + lower[::-1], fill=(*colour, 40))
        draw.line([px(i, m) for i, m in enumerate(r["mean"])], fill=colour, width=3)
    for j, k in enumerate(strategies):  # the legend, inside the plot's top right
        x, y = w - right - 420, top + 14 + 16 * j
        draw.line([x, y, x + 30, y], COLOURS[k], 3)
        draw.text((x + 38, y), summary_line(report, k), "black", font, "lm")
    draw.text((left, 20), title, "black", font)
    draw.text(((left + w - right) / 2, h - 25), "models evaluated", "black", font, "ma")
    draw.text((10, top - 16), "best fitness so far (lower is better)", "black", font)
    img.save(dest)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--supernet", type=Path, default=ROOT / "weights" / "supernet.pt")
    ap.add_argument("--train-data", type=Path, default=SHARED / "train")
    ap.add_argument("-o", "--out", type=Path, default=ROOT / "runs" / "search-compare")
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--population", type=int, default=50)
    ap.add_argument("--sample", type=int, default=10)
    ap.add_argument("--pairs", type=int, default=4, help="validation pairs (held-aside photos)")
    ap.add_argument("--size", type=int, default=128, help="validation crop side")
    ap.add_argument("--pstep", action="store_true", help="also the P-step against random")
    ap.add_argument("--max-gflops", default=None, help="a cost cap, as `stylenas search`'s")
    ap.add_argument("--strategies", default="evolution,random",
                    help="comma-separated (processes with one each share the scores)")  # fmt: skip
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    prepare_proxy(args.out, args.train_data, args.pairs, args.size)
    settings = TrainSettings(str(args.train_data), device="cpu")
    objective = SupernetObjective(
        str(args.out), str(args.supernet), settings, timing_runs=0, save_candidates=False
    )  # time is gflops here: measured seconds would cost more than the quality terms
    book = ScoreBook(objective, args.out / "scores.jsonl")
    seeds = range(args.seeds)

    def progress(strategy: str, seed: int, curve: list[float]) -> None:
        print(f"{strategy} seed {seed}: best {curve[-1]:.4f} ({book.new} new evaluations, "
              f"{len(book.scores)} known)", file=sys.stderr, flush=True)  # fmt: skip

    strategies = args.strategies.split(",")
    # the search's rules: networks named canonically, within the cap if one is given
    rules = {"normalise": search_genotype}
    if args.max_gflops:
        rules["feasible"] = GflopsCap.of(args.max_gflops)
    report = compare_strategies(
        book, args.budget, seeds, PROXY_SPACE, args.population, args.sample, strategies,
        on_run=progress, **rules,
    )  # fmt: skip
    named = {k: book(shipped_genotype(g)) for k, g in NAMED.items()}
    report["named"] = {k: {"fitness": s.fitness, **s.objectives} for k, s in named.items()}
    report["config"] = {k: str(v) for k, v in vars(args).items()}
    plot(report, args.out / f"strategies-{'-'.join(strategies)}.png", "StyleNAS, supernet proxy")
    if args.pstep:
        teacher_space = tuple(i for i in PROXY_SPACE if PHOTONET.bits[i] == "1")
        pstep_book = ScoreBook(TeacherDistance(args.out, args.supernet), args.out / "pstep.jsonl")
        pstep = compare_strategies(
            pstep_book, args.budget, seeds, teacher_space, args.population, args.sample,
            strategies, **rules,
        )  # fmt: skip
        report["pstep"] = pstep
        title = "PhotoNAS P-step (photonet's sub-networks)"
        plot(pstep, args.out / f"pstep-{'-'.join(strategies)}.png", title)
    (args.out / f"report-{'-'.join(strategies)}.json").write_text(json.dumps(report) + "\n")
    for strategy in strategies:
        print(summary_line(report, strategy))
        if args.pstep:
            print("P-step " + summary_line(report["pstep"], strategy))
    seconds = [s.info["eval_seconds"] for s in book.scores.values() if "eval_seconds" in s.info]
    print(f"distinct genotypes scored: {len(book.scores)}; median evaluation "
          f"{statistics.median(seconds or [0.0]):.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()

"""High-resolution benchmark (``make bench-hires``): wall time, peak RSS and EVAL.md metrics of
``stylenas stylize`` on the real high-resolution pairs, in one run on one machine.

Every job is a separate ``stylenas stylize`` process, so its wall time includes start-up and
its peak RSS (``wait4``) is the whole process's. Modes per pair: the default (network at the
working size, lifted to full size) and, where the estimate fits in memory, ``--work-size
native``. Then a 12 MP photo (4000×3000) and an 8K photo (7680×4320) made from a hires content,
each beside the same pipeline on the photo downscaled to the working size (the target: at
most 1.5× its time), and the native mode on a 2048² photo (target: at most 5 GB peak).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from stylenas_cli.config import DEFAULT_WORK_SIZE
from stylenas_cli.evaluation import find_pairs
from stylenas_cli.evaluation.metrics import Scorer, as_rgb
from stylenas_cli.evaluation.report import machine_name
from stylenas_cli.images import load_image
from stylenas_cli.memory import available_bytes, estimate_bytes
from stylenas_cli.shape import work_shape

ROOT = Path(__file__).resolve().parents[1]
HIRES = ROOT.parent / "shared" / "data" / "bench" / "hires"
STYLENAS = Path(sys.executable).with_name("stylenas")
TIME = "/usr/bin/time"  # GNU time: the peak RSS of one process
METRICS = ("ssim", "edge_ssim", "lab_w1", "gain", "gram")


def run_job(content: Path, style: Path, out: Path, *extra: str) -> dict:
    """One ``stylenas stylize`` process: wall seconds and peak RSS (MiB).

    The peak is read by GNU time, whose child starts from its small image: a child forked
    from this (large) process would count this process's pages as its own."""
    report = out.with_suffix(".rss")
    argv = [TIME, "-f", "%M", "-o", str(report), str(STYLENAS), "stylize", str(content)]
    argv += ["--style", str(style), "-o", str(out), "--overwrite", "--quiet", *extra]
    t0 = time.perf_counter()
    run = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    kib = int(report.read_text().split()[-1]) if report.is_file() else 0
    return {"ok": run.returncode == 0, "wall_s": wall, "peak_mib": kib / 1024, "error": run.stderr}


def scores(content: Path, style: Path, out: Path) -> dict:
    score = Scorer(as_rgb(load_image(content).rgb), as_rgb(load_image(style).rgb))
    return score(as_rgb(load_image(out).rgb))


def resized_copy(src: Path, dest: Path, size: tuple[int, int]) -> Path:
    with Image.open(src) as img:
        img.convert("RGB").resize(size, Image.Resampling.LANCZOS).save(dest, quality=95)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=Path, default=HIRES)
    ap.add_argument("--no-native", action="store_true", help="skip the native runs")
    ap.add_argument("--no-scores", action="store_true", help="time and memory only")
    ap.add_argument("--json", action="store_true", help="rows as JSON lines on stdout")
    args = ap.parse_args()
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="stylenas-hires-"))

    def report(row: dict) -> None:
        rows.append(row)
        print(json.dumps(row) if args.json else _line(row), flush=True)

    if not args.json:
        print(
            f"# {time.strftime('%Y-%m-%d')} · {machine_name_cpu()} · work size {DEFAULT_WORK_SIZE}"
        )
        print("| photo | size | mode | wall s | peak RSS MiB | " + " | ".join(METRICS) + " |")
        print("|---|---|---|---|---|" + "---|" * len(METRICS))
    pairs = find_pairs(args.pairs)[0]
    for pair in pairs:
        img = load_image(pair.content)
        w, h = img.size
        modes = [("lift", ())]
        have = available_bytes("cpu") or 0
        if not args.no_native and estimate_bytes(h, w) < 0.8 * have:
            modes.append(("native", ("--work-size", "native")))
        for mode, extra in modes:
            out = tmp / f"{pair.name}_{mode}.png"
            row = {"photo": pair.name, "size": f"{w}x{h}", "mode": mode}
            row |= run_job(pair.content, pair.style, out, *extra)
            if row["ok"] and not args.no_scores:
                row |= scores(pair.content, pair.style, out)
            report(row)

    # A 12 MP and an 8K photo from the largest hires content, each beside the same pipeline
    # on the photo downscaled to the working size.
    big = max(pairs, key=lambda p: load_image(p.content).size[0])
    for label, size in (("12MP", (4000, 3000)), ("8K", (7680, 4320))):
        photo = resized_copy(big.content, tmp / f"{label}.jpg", size)
        small_size = work_shape(size[1], size[0], DEFAULT_WORK_SIZE)[::-1]
        small = resized_copy(big.content, tmp / f"{label}_small.jpg", small_size)
        full_row = {"photo": f"{big.name} {label}", "size": "x".join(map(str, size))}
        full_row |= {"mode": "lift"} | run_job(photo, big.style, tmp / f"{label}_out.jpg")
        report(full_row)
        small_row = {
            "photo": f"{big.name} {label} downscaled",
            "size": "x".join(map(str, small_size)),
        }
        small_row |= {"mode": "lift (= network only)"}
        small_row |= run_job(small, big.style, tmp / f"{label}_small_out.jpg")
        report(small_row)
        ratio = full_row["wall_s"] / small_row["wall_s"]
        print(f"{label}: wall {ratio:.2f}x the downscaled photo's; peak RSS "
              f"{full_row['peak_mib']:.0f} MiB", flush=True)  # fmt: skip

    # The papers' mode at 2048² (the lean native path; target: at most 5 GB peak).
    if not args.no_native:
        photo = resized_copy(big.content, tmp / "2048.jpg", (2048, 2048))
        row = {"photo": f"{big.name} 2048²", "size": "2048x2048", "mode": "native"}
        row |= run_job(photo, big.style, tmp / "2048_out.jpg", "--work-size", "native")
        report(row)


def machine_name_cpu() -> str:
    import torch

    return machine_name(torch.device("cpu"))


def _line(row: dict) -> str:
    if not row["ok"]:
        return f"| {row['photo']} | {row['size']} | {row['mode']} | failed: {row['error'][:80]} |"
    cells = [f"{row[m]:.3f}" if m in row else "—" for m in METRICS]
    return (
        f"| {row['photo']} | {row['size']} | {row['mode']} | {row['wall_s']:.1f} | "
        f"{row['peak_mib']:.0f} | " + " | ".join(cells) + " |"
    )


if __name__ == "__main__":
    main()

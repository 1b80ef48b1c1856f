"""Batch benchmark: many photos with one style, three ways, side by side in one run.

(a) a shell loop of ``stylenas stylize`` calls, one process per photo;
(b) one ``stylenas stylize`` on the folder;
(c) the same with ``--backend ray --workers N`` (a local Ray started by the command).

Each mode starts with an empty style-statistics cache and writes to its own folder; wall time
includes start-up, model loading and (for Ray) starting Ray and its actors. Prints images/s for
each, the ratios b/a and c/b, and whether (a) and (c) wrote exactly (b)'s pixels.

    python scripts/bench_batch.py                       # 200 photos of ../shared/data/train
    python scripts/bench_batch.py --count 50 --loop 20  # quicker: the loop on 20 of them
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
STYLENAS = Path(sys.executable).with_name("stylenas")


def timed(cmd: str, cache: Path) -> float:
    """Wall seconds of a shell command (fails loudly), with its own style cache."""
    env = os.environ | {"STYLENAS_CACHE": str(cache)}
    t0 = time.perf_counter()
    subprocess.run(cmd, shell=True, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def same_pixels(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    return all(
        np.array_equal(np.asarray(Image.open(a / n)), np.asarray(Image.open(b / n))) for n in names
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, default=SHARED / "train")
    ap.add_argument("--style", type=Path, default=SHARED / "bench/stylenas/style/00.jpg")
    ap.add_argument("--count", type=int, default=200, help="photos (default 200)")
    ap.add_argument("--loop", type=int, default=None, help="photos for (a) (default: all)")
    ap.add_argument("--workers", type=int, default=2, help="Ray actors for (c) (default 2)")
    ap.add_argument("--args", default="", help="extra stylenas stylize arguments")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    opts = ap.parse_args()
    photos = sorted(p for p in opts.photos.iterdir() if p.suffix.lower() in {".jpg", ".png"})
    photos = photos[: opts.count]
    if len(photos) < opts.count:
        sys.exit(f"{opts.photos}: {len(photos)} photos, {opts.count} asked")
    loop_n = min(opts.loop or len(photos), len(photos))
    common = f"--style {shlex.quote(str(opts.style))} --quiet {opts.args}"
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        tmp = Path(tmp)
        src, loop_src = tmp / "photos", tmp / "loop_photos"
        src.mkdir()
        loop_src.mkdir()
        for i, p in enumerate(photos):  # links: nothing copied
            (src / p.name).symlink_to(p.resolve())
            if i < loop_n:
                (loop_src / p.name).symlink_to(p.resolve())
        rows = {}
        loop = (
            f'for f in {loop_src}/*; do {STYLENAS} stylize "$f" {common} -o {tmp}/a/ || exit 1;'
            " done"
        )
        rows["a"] = (loop_n, timed(loop, tmp / "cache_a"))
        folder = f"{STYLENAS} stylize {src} {common}"
        rows["b"] = (len(photos), timed(f"{folder} -o {tmp}/b/", tmp / "cache_b"))
        ray = f"{folder} -o {tmp}/c/ --backend ray --workers {opts.workers}"
        rows["c"] = (len(photos), timed(ray, tmp / "cache_c"))
        rate = {k: n / s for k, (n, s) in rows.items()}
        result = {
            "photos": len(photos),
            "loop_photos": loop_n,
            "cpus": os.cpu_count(),
            "seconds": {k: round(s, 2) for k, (_, s) in rows.items()},
            "images_per_s": {k: round(v, 3) for k, v in rate.items()},
            "b_over_a": round(rate["b"] / rate["a"], 2),
            "c_over_b": round(rate["c"] / rate["b"], 3),
            "a_equals_b": same_pixels(tmp / "a", tmp / "b"),
            "c_equals_b": same_pixels(tmp / "c", tmp / "b"),
        }
    if opts.json:
        print(json.dumps(result))
        return
    names = {"a": "shell loop, one process per photo", "b": "one call on the folder",
             "c": f"--backend ray --workers {opts.workers}"}  # fmt: skip
    print(f"{len(photos)} photos of {opts.photos}, style {opts.style.name}, {os.cpu_count()} CPUs")
    print("| mode | photos | seconds | images/s |\n|---|---|---|---|")
    for k, (n, s) in rows.items():
        print(f"| ({k}) {names[k]} | {n} | {s:.1f} | {rate[k]:.3f} |")
    print(f"(b)/(a) {result['b_over_a']}x (target >= 5); (c)/(b) {result['c_over_b']} "
          "(target >= 0.85)")  # fmt: skip
    print(f"same pixels: a=b {result['a_equals_b']}, c=b {result['c_equals_b']}")


if __name__ == "__main__":
    main()

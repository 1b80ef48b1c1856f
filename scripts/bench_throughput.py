"""Throughput benchmark (``make bench-throughput``), in one run on one machine, with ratios:

- the I/O floor: PIL decode + encode (JPEG q95) of a 12 MP photo;
- ``python -c "import torch"`` and ``stylenas --help`` (start-up);
- one ``stylenas stylize`` process on the 12 MP photo (style cached), against the floor plus
  ``import torch``, and against color-matcher's MKL on the same photo (if installed);
- N × 12 MP photos in one ``stylenas stylize`` call: seconds per photo against the floor;
- ``stylenas video`` at 1080p (``--mode frames`` and the default), frames per second.

Every timing is a whole process (GNU time for the peak RSS); the photos are made from the
high-resolution development pairs (4000×3000) and a 1080p clip from the development clip.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
BIN = Path(sys.executable).parent
TIME = "/usr/bin/time"


def timed(argv: list[str], any_exit: bool = False, **kw) -> dict:
    """One process: wall seconds and peak RSS (MiB); ``any_exit``: its exit code is not
    checked (color-matcher exits 1 after writing its result)."""
    with tempfile.NamedTemporaryFile(suffix=".rss") as rss:
        t0 = time.perf_counter()
        run = subprocess.run([TIME, "-f", "%M", "-o", rss.name, *argv], capture_output=True,
                             text=True, check=False, **kw)  # fmt: skip
        wall = time.perf_counter() - t0
        kib = Path(rss.name).read_text().split()[-1] if Path(rss.name).stat().st_size else "0"
    if run.returncode != 0 and not any_exit:
        raise SystemExit(f"{' '.join(argv)} failed: {run.stderr.strip().splitlines()[-1:]}")
    return {"wall_s": round(wall, 3), "peak_mib": round(int(kib) / 1024, 1), "stdout": run.stdout}


def best_of(argv: list[str], runs: int, any_exit: bool = False, **kw) -> dict:
    results = [timed(argv, any_exit, **kw) for _ in range(runs)]
    return min(results, key=lambda r: r["wall_s"])


def io_floor(photo: Path, runs: int = 5) -> dict:
    data = photo.read_bytes()
    dec, enc = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        img = Image.open(io.BytesIO(data))
        img.load()
        dec.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        img.save(io.BytesIO(), format="JPEG", quality=95)
        enc.append(time.perf_counter() - t0)
    return {"decode_s": round(min(dec), 3), "encode_s": round(min(enc), 3),
            "floor_s": round(min(dec) + min(enc), 3)}  # fmt: skip


HEAVY = ("scipy", "skimage", "ray", "sklearn", "cv2", "matplotlib", "pandas")


def import_profile(argv: list[str], env: dict) -> dict:
    """``python -X importtime`` of one command: its import seconds in all, torch's, and
    which heavy optional packages it imported (none should be, for a plain stylize)."""
    run = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True,
                         text=True, check=True, env=env)  # fmt: skip
    top: dict[str, int] = {}
    names, torch_us = set(), 0
    for line in run.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, raw = line[len("import time:") :].split("|")
        name = raw.strip()
        names.add(name.split(".")[0])
        if name == "torch":  # wherever it is first imported (under the CLI's own modules)
            torch_us = max(torch_us, int(cumulative))
        if raw[: len(raw) - len(raw.lstrip())] == " ":  # top level: nested ones are indented
            top[name] = top.get(name, 0) + int(cumulative)
    heavy = sorted(names & set(HEAVY))
    return {"imports_s": round(sum(top.values()) / 1e6, 3),
            "torch_s": round(torch_us / 1e6, 3), "heavy_imported": heavy}  # fmt: skip


def make_photos(src: Path, folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as img:
        big = img.convert("RGB").resize((4000, 3000), Image.Resampling.LANCZOS)
    paths = []
    for i in range(n):
        path = folder / f"p{i:02d}.jpg"
        big.rotate(0 if i % 2 == 0 else 180).save(path, quality=95)
        paths.append(path)
    return paths


def make_clip(src: Path, dest: Path) -> Path:
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    argv = [ffmpeg, "-v", "error", "-y", "-i", str(src), "-vf", "scale=1920:1080",
            "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", str(dest)]  # fmt: skip
    subprocess.run(argv, check=True)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hires", type=Path, default=SHARED / "bench" / "hires")
    ap.add_argument("--video", type=Path, default=SHARED / "video" / "mountain_2.mp4")
    ap.add_argument("-n", type=int, default=6, help="photos in the batch run")
    ap.add_argument("--runs", type=int, default=3, help="repeats of each short process")
    ap.add_argument("-o", "--out", type=Path, default=ROOT / "runs" / "bench-throughput")
    ap.add_argument("--src", type=Path, default=None,
                    help="run the stylenas of this src/ tree (an older checkout)")  # fmt: skip
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    stylenas = str(BIN / "stylenas")
    report: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = make_photos(args.hires / "content" / "sn12.jpg", tmp / "in", args.n)
        style = tmp / "style.jpg"
        Image.open(args.hires / "style" / "sn12.jpg").convert("RGB").save(style, quality=95)
        env = os.environ | {"STYLENAS_CACHE": str(tmp / "cache")}
        if args.src is not None:
            env["PYTHONPATH"] = str(args.src.resolve())
        floor = io_floor(photos[0])
        report["io_floor"] = floor
        report["import_torch"] = best_of([sys.executable, "-c", "import torch"], args.runs)
        report["stylenas_help"] = best_of([stylenas, "--help"], args.runs, env=env)
        one = [stylenas, "stylize", str(photos[0]), "--style", str(style), "-o",
               str(tmp / "one.jpg"), "--overwrite", "-q"]  # fmt: skip
        timed(one, env=env)  # fills the style cache
        report["one_photo"] = best_of(one, args.runs, env=env)
        report["startup"] = import_profile(["-m", "stylenas_cli", *one[1:]], env)
        with Image.open(photos[0]) as img:  # 8K: peak memory of a single photo
            img.resize((7680, 4320), Image.Resampling.BILINEAR).save(tmp / "8k.jpg", quality=95)
        eight_k = [stylenas, "stylize", str(tmp / "8k.jpg"), "--style", str(style), "-o",
                   str(tmp / "8k_out.jpg"), "--overwrite", "-q"]  # fmt: skip
        report["photo_8k"] = timed(eight_k, env=env)
        batch = [stylenas, "stylize", str(tmp / "in"), "--style", str(style), "-o",
                 str(tmp / "out") + "/", "--overwrite", "-q"]  # fmt: skip
        report["batch"] = timed(batch, env=env) | {"photos": args.n}
        try:
            import color_matcher  # noqa: F401

            (tmp / "mkl").mkdir()  # it writes its result beside the source
            src = tmp / "mkl" / photos[0].name
            src.write_bytes(photos[0].read_bytes())
            mkl = [str(BIN / "color-matcher"), "-s", str(src), "-r", str(style), "-m", "mkl"]
            report["color_matcher_mkl"] = best_of(mkl, args.runs, any_exit=True)
            if not (tmp / "mkl" / f"{src.stem}_mkl.jpg").is_file():
                raise SystemExit("color-matcher wrote no result")
        except ImportError:
            report["color_matcher_mkl"] = None
        if args.video.is_file():
            clip = make_clip(args.video, tmp / "clip1080.mp4")
            for mode in ("frames", "lut"):
                argv = [stylenas, "video", str(clip), "-s", str(style), "-o",
                        str(tmp / f"v_{mode}.mp4"), "--mode", mode, "--json", "-q",
                        "--overwrite"]  # fmt: skip
                r = json.loads(timed(argv, env=env)["stdout"])
                report[f"video_1080p_{mode}"] = {"fps": r["fps"], "frames": r["frames"],
                                                 "seconds": r["seconds"]}  # fmt: skip
    for key in list(report):
        if isinstance(report[key], dict):
            report[key].pop("stdout", None)
    f = floor["floor_s"]
    ratios = {
        "batch_per_photo_over_floor": report["batch"]["wall_s"] / args.n / f,
        "one_photo_over_torch_plus_floor": report["one_photo"]["wall_s"]
        / (report["import_torch"]["wall_s"] + f),
    }
    if report["color_matcher_mkl"]:
        ratios["one_photo_over_mkl"] = (
            report["one_photo"]["wall_s"] / report["color_matcher_mkl"]["wall_s"]
        )
    report["ratios"] = {k: round(v, 2) for k, v in ratios.items()}
    report["batch"]["per_photo_s"] = round(report["batch"]["wall_s"] / args.n, 3)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

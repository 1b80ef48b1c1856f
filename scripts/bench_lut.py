"""LUT benchmark (``make bench-lut``), in one run on one machine:

1. fidelity on the dev pairs: for each pair the pipeline's own output (``stylenas stylize``)
   and the content mapped through the LUT fitted to it (``stylenas lut``), their PSNR, and
   the EVAL.md metrics of both beside Reinhard's colour transfer;
2. speed: applying a 33³ LUT to a 12 MP photo against stylising it, in this process;
3. video: ``stylenas video`` per frame (stabilised) and ``--mode lut`` on the real clip:
   frames per second and flicker ratio side by side;
4. a contact sheet (content | pipeline | LUT) of the pairs, in the output folder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stylenas_cli.batch import stylize_images
from stylenas_cli.evaluation import find_pairs
from stylenas_cli.evaluation.baselines import reinhard
from stylenas_cli.evaluation.metrics import Scorer, as_rgb
from stylenas_cli.evaluation.report import machine_name
from stylenas_cli.images import load_image
from stylenas_cli.look import fit_look, psnr
from stylenas_cli.model import Stylizer

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
STYLENAS = Path(sys.executable).with_name("stylenas")


def fidelity(model: Stylizer, folder: Path, sheet: list, limit: int | None) -> dict:
    pairs = find_pairs(folder)[0][:limit]
    rows = []
    for pair in pairs:
        content = load_image(pair.content)
        style = model.load_style(pair.style)
        pipeline = stylize_images(model, [content], style)[0]
        look = fit_look(model, [content], style)
        mapped = look.lut.apply(content.pixels)
        score = Scorer(as_rgb(content.rgb), as_rgb(load_image(pair.style).rgb))
        to_unit = lambda a: a.astype(np.float64) / 255.0  # noqa: E731
        base = reinhard(to_unit(content.pixels), to_unit(load_image(pair.style).pixels))
        rows.append({
            "pair": pair.name,
            "psnr": psnr(mapped, pipeline),
            "pipeline": score(to_unit(pipeline)),
            "lut": score(to_unit(mapped)),
            "reinhard": score(np.clip(base, 0, 1)),
        })  # fmt: skip
        sheet.append((content.pixels, pipeline, mapped))
        print(f"{folder.name}/{pair.name}: {rows[-1]['psnr']:.2f} dB", file=sys.stderr, flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("psnr",)}
    for method in ("pipeline", "lut", "reinhard"):
        for metric in ("ssim", "gram"):
            mean[f"{method}_{metric}"] = float(np.mean([r[method][metric] for r in rows]))
    mean["min_psnr"] = float(np.min([r["psnr"] for r in rows]))
    return {"pairs": len(rows), **mean}


def speed(model: Stylizer) -> dict:
    """A 33³ LUT on a 12 MP photo against stylising that photo (style summarised before)."""
    from skimage import data

    photo = np.asarray(Image.fromarray(data.astronaut()).resize((4000, 3000)))
    from stylenas_cli.images import LoadedImage

    content = LoadedImage(photo)
    style = model.style_cache(torch.from_numpy(data.coffee()).permute(2, 0, 1)[None] / 255.0)
    t0 = time.perf_counter()
    stylize_images(model, [content], style)
    stylise = time.perf_counter() - t0
    lut = fit_look(model, [content], style).lut
    lut._table = None  # built by the fit's own check: timed afresh
    t0 = time.perf_counter()
    lut.table()
    table = time.perf_counter() - t0
    t0 = time.perf_counter()
    lut.apply(photo)
    apply = time.perf_counter() - t0
    return {"stylise_s": stylise, "table_s": table, "apply_s": apply,
            "ratio": (table + apply) / stylise}  # fmt: skip


def video(clip: Path, style: Path, tmp: Path) -> dict:
    out = {}
    for mode in ("frames", "lut"):
        argv = [str(STYLENAS), "video", str(clip), "-s", str(style), "-o", str(tmp / f"{mode}.mp4"),
                "--mode", mode, "--flicker", "--json", "-q", "--overwrite"]  # fmt: skip
        t0 = time.perf_counter()
        run = subprocess.run(argv, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if run.returncode != 0:
            out[mode] = {"error": run.stderr.strip()}
            continue
        r = json.loads(run.stdout)
        # fps: what `stylenas video` reports (frames over its own seconds, start-up aside)
        out[mode] = {"process_wall_s": wall, "fps": r["fps"], "seconds": r["seconds"],
                     "flicker_ratio": r["flicker_ratio"],
                     "relative_flicker": r["relative_flicker"]}  # fmt: skip
    if "fps" in out.get("frames", {}) and "fps" in out.get("lut", {}):
        out["speedup"] = out["lut"]["fps"] / out["frames"]["fps"]
    return out


def contact_sheet(rows: list, dest: Path, height: int = 160) -> None:
    tiles = []
    for images in rows:
        line = [Image.fromarray(a).resize((round(a.shape[1] * height / a.shape[0]), height))
                for a in images]  # fmt: skip
        canvas = Image.new("RGB", (sum(t.width for t in line) + 8 * len(line), height))
        x = 0
        for t in line:
            canvas.paste(t, (x, 0))
            x += t.width + 8
        tiles.append(canvas)
    width = max(t.width for t in tiles)
    sheet = Image.new("RGB", (width, (height + 8) * len(tiles)), "white")
    for i, t in enumerate(tiles):
        sheet.paste(t, (0, i * (height + 8)))
    sheet.save(dest, quality=90)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", type=Path, default=SHARED / "bench")
    ap.add_argument("--video", type=Path, default=SHARED / "video" / "mountain_2.mp4")
    ap.add_argument("-o", "--out", type=Path, default=ROOT / "runs" / "bench-lut")
    ap.add_argument("--limit", type=int, default=None, help="pairs per folder (default: all)")
    ap.add_argument("--parts", default="fidelity,speed,video",
                    help="which parts to run, comma-separated (default: all three)")  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    args.out.mkdir(parents=True, exist_ok=True)
    model = Stylizer.from_pretrained("photonas", precision="auto")
    report = {"machine": machine_name(model.device), "precision": model.precision}
    parts = set(args.parts.split(","))
    sheet: list = []
    for name in ("stylenas", "dpst") if "fidelity" in parts else ():
        if (args.bench / name).is_dir():
            report[name] = fidelity(model, args.bench / name, sheet, args.limit)
    if "speed" in parts:
        report["speed_12mp"] = speed(model)
    if "video" in parts and args.video.is_file():
        with tempfile.TemporaryDirectory() as tmp:
            style = Path(tmp) / "style.jpg"
            first = find_pairs(args.bench / "stylenas")[0][0]
            Image.open(first.style).convert("RGB").save(style)
            report["video"] = video(args.video, style, Path(tmp))
    if sheet:
        contact_sheet(sheet, args.out / "contact_sheet.jpg")
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

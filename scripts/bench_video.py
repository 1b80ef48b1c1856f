"""Video benchmark: frames per second, flicker ratio with and without --stabilize, peak memory.

1. The real clip (default ``../shared/data/video/mountain_2.mp4``) at its own size (or
   ``--max-size``): stylised without and with stabilisation, with moment smoothing 0.9, and
   without the image-level transfer point; prints frames per second (decode + stylise +
   encode + mux, wall time), the flicker ratio and the relative flicker (per unit of contrast
   gain, :mod:`stylenas_cli.video.temporal`) of each.
2. A synthetic clip (testsrc2 with temporal noise) of ``--long`` frames and of a sixth of that:
   peak resident memory of each run, sampled from /proc. Streaming means the long run should
   not need more memory than the short one.

    python scripts/bench_video.py --device cpu                  # shipped photonas weights
    python scripts/bench_video.py --weights runs/photonas/last.pt --max-size 256 --long 600
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from stylenas_cli.config import DEFAULT_WORK_SIZE, TransferSettings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "video" / "mountain_2.mp4"


def rss_bytes() -> int:
    """Current resident set size (Linux /proc; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class PeakRSS:
    """Samples the resident set size every 20 ms while in the ``with`` block."""

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def synthetic_clip(path: Path, frames: int, size: str, fps: int = 24) -> Path:
    from stylenas_cli.video.ffmpeg import ffmpeg_exe

    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-v", "error", "-f", "lavfi"]
    cmd += ["-i", f"testsrc2=size={size}:rate={fps}", "-frames:v", str(frames)]
    cmd += ["-vf", "noise=alls=12:allf=t", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, check=True)
    return path


def default_style() -> Path:
    shared = ROOT.parent / "shared" / "data" / "bench" / "stylenas" / "style" / "00.jpg"
    if shared.is_file():
        return shared
    import skimage.data

    return Path(skimage.data.__file__).parent / "coffee.png"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="real clip to time")
    p.add_argument("--style", type=Path, default=None, help="style photo")
    p.add_argument("--arch", default="photonas")
    p.add_argument("--weights", type=Path, default=None, help="default: shipped weights")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="auto", help="as stylenas video (default: auto)")
    p.add_argument("--max-size", type=int, default=None, help="default: the clip's own size")
    p.add_argument(
        "--work-size",
        type=lambda v: None if v == "native" else int(v),
        default=DEFAULT_WORK_SIZE,
        help="long side the network sees, or native (default: the library's)",
    )
    p.add_argument("--long", type=int, default=600, help="frames of the long synthetic clip")
    p.add_argument("--synthetic-size", default="160x96", help="WxH of the synthetic clip")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args()

    from stylenas_cli.model import Stylizer
    from stylenas_cli.video import VideoConfig, probe, stylize_video

    style = args.style or default_style()
    try:
        model = Stylizer.from_pretrained(args.arch, args.weights, args.device, args.precision)
    except (ValueError, FileNotFoundError) as err:  # no shipped weights yet: say so
        print(
            f"error: {err} (pass --weights, e.g. BENCH_VIDEO_ARGS=--weights=FILE)", file=sys.stderr
        )
        return 1
    results: dict = {
        "arch": args.arch,
        "weights": str(args.weights or "shipped"),
        "device": str(model.device),
        "precision": model.precision,
        "torch_threads": torch.get_num_threads(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.video.is_file():
            info = probe(args.video)
            results["clip"] = {"path": str(args.video), "frames": info.frames}
            modes = {"no_stabilize": (False, 0.0), "stabilize": (True, 0.0)}
            modes["stabilize_smoothing_0.9"] = (True, 0.9)  # whitens through wct.py
            modes["stabilize_no_image_point"] = (True, 0.0)  # is its flicker the image point's?
            for key, (stabilize, smoothing) in modes.items():
                transfer = TransferSettings(colour_match=0.0 if "no_image" in key else 1.0)
                cfg = VideoConfig(
                    max_size=args.max_size,
                    stabilize=stabilize,
                    smoothing=smoothing,
                    flicker=True,
                    work_size=args.work_size,
                    transfer=transfer,
                    mode="frames",
                )
                r = stylize_video(model, args.video, tmp / f"real_{key}.mp4", style, cfg)
                results["clip"]["size"] = f"{r.width}x{r.height}"
                results["clip"][key] = {
                    "fps": round(r.fps, 3),
                    "seconds": round(r.seconds, 2),
                    "flicker_ratio": r.flicker["flicker_ratio"],
                    # flicker per unit of contrast gain: a contrast stretch is not flicker
                    "relative_flicker": r.flicker["relative_flicker"],
                    "batch_size": r.batch_size,
                    # decoding, encoding, muxing and waiting: the wall time not in the network
                    "outside_inference": round(1 - r.inference_seconds / r.seconds, 3),
                }
        else:
            print(f"note: {args.video} not found: skipping the real clip", file=sys.stderr)

        memory = {}
        for frames in (max(2, args.long // 6), args.long):
            clip = synthetic_clip(tmp / f"syn_{frames}.mp4", frames, args.synthetic_size)
            with PeakRSS() as rss:
                t0 = time.perf_counter()
                r = stylize_video(
                    model,
                    clip,
                    tmp / f"syn_{frames}_out.mp4",
                    style,
                    VideoConfig(flicker=True, mode="frames"),
                )
                seconds = time.perf_counter() - t0
            memory[frames] = {
                "peak_rss_mib": round(rss.peak / 2**20, 1),
                "growth_mib": round((rss.peak - rss.start) / 2**20, 1),
                "fps": round(r.frames / seconds, 2),
            }
        results["synthetic"] = {"size": args.synthetic_size, "runs": memory}

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{args.arch} on {results['device']} ({results['torch_threads']} threads)")
    if "clip" in results:
        c = results["clip"]
        print(f"clip {c['path']} ({c['frames']} frames, stylised at {c['size']})")
        for key, v in c.items():
            if not isinstance(v, dict):
                continue
            print(
                f"  {key:24s} {v['fps']:7.2f} fps  flicker ratio {v['flicker_ratio']:.3f}"
                f"  relative {v['relative_flicker']:.3f}"
                f"  {v['outside_inference']:.0%} of the wall time outside inference"
                f"  (batch {v['batch_size']})"
            )
    print(f"synthetic {args.synthetic_size}: peak resident memory while stylising")
    for frames, m in memory.items():
        print(
            f"  {frames:5d} frames  peak {m['peak_rss_mib']:7.1f} MiB  "
            f"(+{m['growth_mib']:.1f} MiB during the run)  {m['fps']:.2f} fps"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

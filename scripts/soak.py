"""Soak test (``make soak``, issue 15): 500 generated photos, then a 2-minute generated video
with audio, each in one process (this one), sampling resident memory and open file
descriptors as the work goes. Prints first / last / max of each and fails (exit 1) if either
grows: RSS more than ``--rss-slack`` MiB past its level after the warm-up, or any descriptor
left open.

    python scripts/soak.py                      # shipped photonas, CPU
    python scripts/soak.py --photos 100 --video-seconds 20
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Samples:
    """RSS and descriptor counts, one sample per finished item. Flat means the second half
    of the run never needs more than the first half did (plus ``slack``); the photos run as
    two halves with the same sizes, since memory steps up when a new size first appears
    (allocator and oneDNN caches), while a leak keeps growing to the end."""

    def __init__(self) -> None:
        self.rss: list[float] = []
        self.fds: list[int] = []

    def __call__(self, *_) -> None:
        self.rss.append(rss_mib())
        self.fds.append(open_fds())

    def report(self, name: str, rss_slack: float) -> bool:
        half = len(self.rss) // 2
        first, second = max(self.rss[:half]), max(self.rss[half:])
        fds_ok = max(self.fds[half:]) <= max(self.fds[:half])
        ok = second - first <= rss_slack and fds_ok
        print(
            f"{name}: {len(self.rss)} items · RSS MiB first {self.rss[0]:.0f} / last "
            f"{self.rss[-1]:.0f} / max {max(self.rss):.0f}; max of the first half {first:.0f}, "
            f"of the second half {second:.0f} ({second - first:+.0f}) · open fds first "
            f"{self.fds[0]} / last {self.fds[-1]} / max {max(self.fds)} · "
            f"{'flat' if ok else 'GROWING'}",
            flush=True,
        )
        return ok


def make_photos(folder: Path, count: int) -> list[Path]:
    """``count`` photos of five sizes from scikit-image's samples, each with its own noise."""
    from skimage import data

    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    sizes = [(320, 240), (256, 256), (400, 300), (300, 400), (352, 198)]
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        img = Image.fromarray(sources[i % len(sources)]).convert("RGB").resize(sizes[i % 5])
        arr = np.asarray(img).astype(np.int16) + rng.integers(-12, 13, (*img.size[::-1], 3))
        path = folder / f"p{i:04d}.jpg"
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def make_video(path: Path, seconds: int, size: str) -> Path:
    from stylenas_cli.video.ffmpeg import ffmpeg_exe

    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", "-v", "error"]
    cmd += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=24:d={seconds}"]
    cmd += ["-f", "lavfi", "-i", f"sine=frequency=330:d={seconds}"]
    cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)]
    subprocess.run(cmd, check=True)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=500)
    ap.add_argument("--video-seconds", type=int, default=120)
    ap.add_argument("--video-size", default="192x108")
    ap.add_argument("--rss-slack", type=float, default=64.0, help="MiB of growth allowed")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from stylenas_cli.batch import StylizeConfig, plan_image_outputs
    from stylenas_cli.device import use_all_cores
    from stylenas_cli.jobs import stylize_files
    from stylenas_cli.model import Stylizer
    from stylenas_cli.video import VideoConfig, stylize_video

    use_all_cores()
    model = Stylizer.from_pretrained("photonas", device=args.device)
    ok = True
    with tempfile.TemporaryDirectory(prefix="stylenas-soak-") as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        photos = make_photos(tmp / "in", args.photos)
        style = photos[1]
        outputs = plan_image_outputs(photos, f"{tmp / 'out'}/")
        # Two runs over halves holding every size (a folder is stylised size by size): the
        # first brings every size's buffers and caches in, the second must need no more.
        samples = Samples()
        results = []
        for half in (slice(0, None, 2), slice(1, None, 2)):
            results += stylize_files(
                model, photos[half], style, outputs[half], StylizeConfig(), samples
            )
        failed = [r for r in results if not r.ok]
        print(f"photos: {len(results) - len(failed)} written, {len(failed)} failed", flush=True)
        ok &= samples.report("photos", args.rss_slack) and not failed

        clip = make_video(tmp / "clip.mp4", args.video_seconds, args.video_size)
        frames = Samples()
        result = stylize_video(
            model, clip, tmp / "clip_out.mp4", style, VideoConfig(), on_frame=frames
        )
        print(
            f"video: {result.frames} frames at {result.width}x{result.height}, "
            f"{result.fps:.1f} frames/s, streams copied: {', '.join(result.streams_copied)}",
            flush=True,
        )
        ok &= frames.report("video", args.rss_slack) and "audio" in result.streams_copied
    print("soak: passed" if ok else "soak: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

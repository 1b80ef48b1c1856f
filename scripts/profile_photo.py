"""Where the time of one stylisation goes (issues 13/14): cProfile around ``stylize_files`` on
one photo at default settings (style cache off, so the style pass shows), sorted by
cumulative time.

    python scripts/profile_photo.py                       # a hires content as 12 MP (4000x3000)
    python scripts/profile_photo.py --size 7680x4320 --top 40
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from PIL import Image

HIRES = Path(__file__).resolve().parents[2] / "shared" / "data" / "bench" / "hires"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--content", type=Path, default=HIRES / "content" / "sn12.jpg")
    ap.add_argument("--style", type=Path, default=HIRES / "style" / "sn12.jpg")
    ap.add_argument("--size", default="4000x3000", help="WxH the content is resized to")
    ap.add_argument("--top", type=int, default=28)
    args = ap.parse_args()

    from stylenas_cli.batch import StylizeConfig, stylize_files
    from stylenas_cli.device import use_all_cores
    from stylenas_cli.model import Stylizer

    use_all_cores()
    tmp = Path(tempfile.mkdtemp(prefix="stylenas-profile-"))
    size = tuple(int(v) for v in args.size.split("x"))
    photo = tmp / "photo.jpg"
    Image.open(args.content).convert("RGB").resize(size, Image.Resampling.LANCZOS).save(
        photo, quality=95
    )
    t0 = time.perf_counter()
    model = Stylizer.from_pretrained("photonas", precision="auto")
    print(f"model load {time.perf_counter() - t0:.2f} s")
    cfg = StylizeConfig(cache=False)
    stylize_files(model, [photo], args.style, [tmp / "warm.jpg"], cfg)  # warm-up
    profile = cProfile.Profile()
    t0 = time.perf_counter()
    profile.enable()
    stylize_files(model, [photo], args.style, [tmp / "out.jpg"], cfg)
    profile.disable()
    print(f"stylize_files {time.perf_counter() - t0:.2f} s")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()

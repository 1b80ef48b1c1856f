"""How much of the pipeline a global 3D LUT can hold (``make lut-ceiling``): for each dev pair,
the pipeline's output and the PSNR against it of

- the shipped fit (33³) and the same fit with other smoothness weights and robust rounds;
- a 65³ LUT (the lattice's resolution);
- the best any global colour mapping can do on that photo: each distinct 8-bit content colour
  mapped to the mean of what the pipeline made of it (an upper bound: it memorises).

Prints the means per dev set and over all pairs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from stylenas_cli.batch import stylize_images
from stylenas_cli.evaluation import find_pairs
from stylenas_cli.images import load_image
from stylenas_cli.look import psnr
from stylenas_cli.lut import SMOOTHNESS, colour_pairs, fit_lut
from stylenas_cli.model import Stylizer

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
FITS = {  # name: (lattice size, colour bits, smoothness, robust rounds)
    "33 (shipped)": (33, 6, SMOOTHNESS, 2),
    "33 least squares": (33, 6, SMOOTHNESS, 1),
    "33 smoothness /10": (33, 6, SMOOTHNESS / 10, 2),
    "33 7-bit colours": (33, 7, SMOOTHNESS, 2),
    "65": (65, 7, SMOOTHNESS, 2),
}


def colour_mean_bound(content: np.ndarray, output: np.ndarray) -> np.ndarray:
    """Each distinct content colour -> the mean output colour of its pixels (uint8)."""
    src = torch.from_numpy(content.reshape(-1, 3).astype(np.int64))
    dst = torch.from_numpy(output.reshape(-1, 3).astype(np.float64))
    _, inverse = (src[:, 0] + 256 * src[:, 1] + 65536 * src[:, 2]).unique(return_inverse=True)
    sums = torch.zeros(int(inverse.max()) + 1, 3, dtype=torch.float64).index_add_(0, inverse, dst)
    counts = torch.bincount(inverse).double()[:, None]
    mean = (sums / counts)[inverse].add_(0.5).floor_().clamp_(0, 255)
    return mean.to(torch.uint8).numpy().reshape(output.shape)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", type=Path, default=SHARED / "bench")
    args = ap.parse_args()
    model = Stylizer.from_pretrained("photonas", precision="auto")
    scores: dict[str, dict[str, list[float]]] = {}
    for folder in ("stylenas", "dpst"):
        for pair in find_pairs(args.bench / folder)[0]:
            content = load_image(pair.content)
            output = stylize_images(model, [content], model.load_style(pair.style))[0]
            row = scores.setdefault(folder, {})
            pairs = {
                b: colour_pairs(content.pixels, output, b) for b in {f[1] for f in FITS.values()}
            }
            for name, (size, bits, smooth, rounds) in FITS.items():
                src, dst, count = pairs[bits]
                lut = fit_lut(src, dst, size, count, smoothness=smooth, rounds=rounds)
                row.setdefault(name, []).append(psnr(lut.apply(content.pixels), output))
            bound = colour_mean_bound(content.pixels, output)
            row.setdefault("any global mapping (bound)", []).append(psnr(bound, output))
    header = "".join(f"{f:>10s}" for f in scores)
    print(f"{'LUT vs pipeline PSNR (dB)':30s}{header}{'all':>10s}")
    for name in next(iter(scores.values())):
        per = [np.mean(scores[f][name]) for f in scores]
        every = np.mean([v for f in scores for v in scores[f][name]])
        print(f"{name:30s}" + "".join(f"{v:10.2f}" for v in per) + f"{every:10.2f}")


if __name__ == "__main__":
    main()

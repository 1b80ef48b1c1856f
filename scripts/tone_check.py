"""Reconstruction PSNR of one photo made darker or brighter (x**g): do the decoders keep tone?

Usage: python scripts/tone_check.py ARCH [WEIGHTS] [PHOTO]
  default photo: ../shared/data/bench/stylenas/content/00.jpg at 384 px
"""

import sys

from stylenas_cli import Stylizer
from stylenas_cli.images import load_image
from stylenas_cli.train import psnr

arch = sys.argv[1] if len(sys.argv) > 1 else "photonas"
weights = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] != "-" else None
photo = sys.argv[3] if len(sys.argv) > 3 else "../shared/data/bench/stylenas/content/00.jpg"
model = Stylizer.from_pretrained(arch, weights, device="auto")
img = load_image(photo, 384).rgb
for g in (0.6, 1.0, 1.6, 2.5):
    x = img**g
    rec = model.reconstruct(x).cpu()
    print(f"gamma {g}: PSNR {psnr(rec, x):.2f} dB, mean tone {x.mean():.3f} -> {rec.mean():.3f}")

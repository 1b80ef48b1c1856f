"""Reconstruction PSNR of decoder weights on every photo of a folder, at full size.

Usage: python scripts/recon_psnr.py ARCH [WEIGHTS] [FOLDER]
  default folder: ../shared/data/bench/stylenas/content
"""

import sys
from pathlib import Path

import torch

from stylenas_cli import Stylizer
from stylenas_cli.images import load_image
from stylenas_cli.train import psnr

arch = sys.argv[1] if len(sys.argv) > 1 else "photonas"
weights = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] != "-" else None
folder = Path(sys.argv[3] if len(sys.argv) > 3 else "../shared/data/bench/stylenas/content")
model = Stylizer.from_pretrained(arch, weights, device="auto")
scores = []
for f in sorted(folder.glob("*.jpg")):
    img = load_image(f).rgb
    with torch.no_grad():
        scores.append(psnr(model.reconstruct(img).cpu(), img))
    print(f"{f.name} {scores[-1]:.2f} dB", flush=True)
print(f"mean PSNR {sum(scores) / len(scores):.2f} dB over {len(scores)} photos ({arch})")

"""Measure the mean activation of each VGG19 level over training photos (sets LEVEL_SCALE)."""

import sys
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.functional import to_tensor

from stylenas_cli.encoder import LEVELS, VGGEncoder

folder = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/train")
enc = VGGEncoder(normalise=False)
sums = {level: 0.0 for level in LEVELS}
files = sorted(folder.glob("*.jpg"))[::7]
with torch.no_grad():
    for f in files:
        img = to_tensor(Image.open(f).convert("RGB").resize((256, 256)))[None]
        for level, feat in enc(img).items():
            sums[level] += feat.mean().item() / len(files)
print({k: round(v, 2) for k, v in sums.items()})

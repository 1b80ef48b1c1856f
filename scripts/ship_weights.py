"""Export a training checkpoint as shipped fp16 weights and print its sha256.

Usage: python scripts/ship_weights.py ARCH CHECKPOINT   (writes weights/ARCH.pt)
Then put the printed sha256 into src/stylenas_cli/weights.py.
"""

import sys
from pathlib import Path

from stylenas_cli.train import export_weights
from stylenas_cli.weights import sha256_of

arch, ckpt = sys.argv[1], sys.argv[2]
dest = export_weights(ckpt, Path("weights") / f"{arch}.pt")
print(dest, dest.stat().st_size, sha256_of(dest))

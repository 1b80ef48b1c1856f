"""Train any genotype as the shipped ``photonas`` was (``make train-recipe``): the five phases
of weights/MODEL_CARD.md, each warm-started from the one before, then fp16 weights.

    python scripts/train_recipe.py --arch 0101... -o runs/recipe/mynet
    python scripts/train_recipe.py --arch photonas -o runs/recipe/photonas --scale 0.01

Each phase is ``stylenas train`` into ``<out>/p<k>`` with ``--resume``: rerunning the same
command continues where it stopped (a finished phase is skipped). ``--scale`` multiplies
every phase's steps (a quick check of the whole chain). The result is ``<out>/weights.pt``
(fp16, loads with ``--arch GENOTYPE --weights``), or ``--export``.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

from stylenas_cli.train import export_weights
from stylenas_cli.weights import sha256_of

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT.parent / "shared" / "data" / "train"
LEVELS = "relu1_1,relu2_1,relu3_1"

# photonas's recipe (MODEL_CARD.md): 128² crops, then 256², 384², then native crops with tone
# augmentation; a heavier pixel weight once the decoder reconstructs at all.
PHASES = (
    dict(steps=2600, batch=8, size=128, lr=5e-4, pixel_weight=50, every=100, val=250, seed=0),
    dict(steps=900, batch=4, size=256, lr=2e-4, pixel_weight=200, every=100, val=150, seed=1),
    dict(steps=450, batch=4, size=256, lr=1e-4, pixel_weight=200, every=150, val=150, seed=2),
    dict(steps=1100, batch=2, size=384, lr=1e-4, pixel_weight=200, every=100, val=275, seed=3),
    dict(
        steps=700, batch=4, size=320, lr=1e-4, pixel_weight=200, every=50, val=175, seed=4,
        crop="native", gamma="0.8,2.0",
    ),
)  # fmt: skip


def phase_args(arch: str, data: Path, out: Path, phase: dict, init: Path | None, scale: float):
    """The ``stylenas train`` arguments of one phase."""
    steps = max(1, round(phase["steps"] * scale))
    args = [str(data), "--arch", arch, "-o", str(out), "--resume", "--steps", str(steps)]
    args += ["--batch", str(phase["batch"]), "--size", str(phase["size"])]
    args += ["--lr", str(phase["lr"]), "--pixel-weight", str(phase["pixel_weight"])]
    args += ["--levels", LEVELS, "--seed", str(phase["seed"])]
    args += ["--checkpoint-every", str(min(phase["every"], steps))]
    args += ["--val-every", str(min(phase["val"], steps))]
    if "crop" in phase:
        args += ["--crop", phase["crop"], "--gamma", phase["gamma"]]
    if init is not None:
        args += ["--init", str(init)]
    return args


def run_phase(cmd: list[str]) -> int:
    """One phase's training; a SIGTERM to this script reaches it too, so that it saves its
    checkpoint and frees its folder instead of running on, orphaned."""
    child = subprocess.Popen(cmd)
    previous = signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    try:
        return child.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the training too: let it save its checkpoint
        child.wait()
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", required=True, help="a name or a 32-bit genotype")
    ap.add_argument("-o", "--out", type=Path, required=True, help="run folder (p1 ... p5)")
    ap.add_argument("--data", type=Path, default=TRAIN, help="training photos")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every phase's steps")
    ap.add_argument("--phases", type=int, default=len(PHASES), help="run the first N phases")
    ap.add_argument("--export", type=Path, default=None, help="fp16 weights (<out>/weights.pt)")
    args = ap.parse_args(argv)
    stylenas = [sys.executable, "-m", "stylenas_cli", "train"]
    init = None
    for k, phase in enumerate(PHASES[: args.phases], start=1):
        out = args.out / f"p{k}"
        cmd = stylenas + phase_args(args.arch, args.data, out, phase, init, args.scale)
        print("$ stylenas train " + " ".join(cmd[4:]), flush=True)
        code = run_phase(cmd)
        if code:
            return code
        init = out / "last.pt"
    dest = export_weights(init, args.export or args.out / "weights.pt")
    print(f"weights: {dest} ({dest.stat().st_size / 2**20:.1f} MiB, sha256 {sha256_of(dest)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

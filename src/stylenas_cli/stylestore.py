"""Style statistics kept on disk across runs, so that a style is summarised once, not once per
invocation (``find … | xargs -n1 stylenas stylize --style ref.jpg`` pays it once).

An entry is keyed by everything its statistics depend on: the style file's content (and the
mask's), the decoder's genotype and weights (their sha256), the size the style was read at and
the precision. Entries are written atomically; an unreadable or corrupt entry is ignored (and
rebuilt), and a cache folder that cannot be written is skipped: the cache never fails a job.

Location: ``$STYLENAS_CACHE`` if set (an empty value turns the cache off), else
``$XDG_CACHE_HOME/stylenas``, else ``~/.cache/stylenas``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from .files import atomic_write
from .wct import ColourStats
from .weights import load_torch_file

FORMAT = 2  # bump when what an entry holds or means changes (2: "image" stats added)


def cache_dir() -> Path | None:
    """The folder of the style statistics cache, or None when it is turned off."""
    env = os.environ.get("STYLENAS_CACHE")
    if env is not None:
        return Path(env).expanduser() if env.strip() else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stylenas"


def file_digest(path: str | Path) -> str:
    """sha256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def key(
    style: str | Path,
    weights_id: str,
    genotype: str,
    max_side: int,
    precision: str,
    mask: str | Path | None = None,
) -> str:
    """The entry name for a style summarised by one network at one size."""
    parts = {
        "format": FORMAT,
        "style": file_digest(style),
        "mask": file_digest(mask) if mask is not None else None,
        "weights": weights_id,
        "genotype": genotype,
        "max_side": max_side,
        "precision": precision,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def load(folder: Path, name: str) -> tuple[dict[str, dict[int, ColourStats]], tuple] | None:
    """``(stats, size)`` of an entry, or None if it is missing or unreadable."""
    path = folder / f"{name}.pt"
    if not path.is_file():
        return None
    try:
        data = load_torch_file(path, "style cache entry")
        if data["format"] != FORMAT:
            return None
        stats = {
            point: {int(label): ColourStats(mean, colour) for label, (mean, colour) in per.items()}
            for point, per in data["stats"].items()
        }
        return stats, tuple(data["size"])
    except Exception:  # a corrupt or foreign file: rebuilt by the caller
        return None


def save(folder: Path, name: str, stats: dict[str, dict[int, ColourStats]], size) -> bool:
    """Write an entry atomically; False (and nothing written) if the folder is not writable."""
    payload = {
        "format": FORMAT,
        "size": list(size),
        "stats": {
            point: {str(label): [s.mean.cpu(), s.colour.cpu()] for label, s in per.items()}
            for point, per in stats.items()
        },
    }
    try:
        atomic_write(folder / f"{name}.pt", lambda tmp: torch.save(payload, tmp))
    except (OSError, RuntimeError):  # torch.save reports a failed write as RuntimeError
        return False
    return True

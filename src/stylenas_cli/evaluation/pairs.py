"""Benchmark pair folders: finding the pairs and loading their label maps.

A pair folder is laid out like ``../shared/data/bench/*``::

    PAIRS/content/NN.jpg      the content photos
    PAIRS/style/NN.jpg        the style photo of each pair (same stem)
    PAIRS/content_seg/NN.png  optional colour-coded label maps (any ``*_seg`` folder is a mask
    PAIRS/style_seg/NN.png    folder, never a method)
    PAIRS/<method>/NN.*       any other folder: another method's output for each pair

:func:`find_pairs` is the project's one pair finder (the searches' validation pairs use it
too); :class:`EvalError` is the error of the whole evaluation package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import StylenasError
from ..images import IMAGE_SUFFIXES, load_labels, oriented_size
from ..wct import resize_labels

CONTENT, STYLE = "content", "style"
MASK_SUFFIX = "_seg"


class EvalError(StylenasError):
    """A pair folder, option or output location that cannot be used."""


@dataclass(frozen=True)
class Pair:
    """One benchmark pair: files by role, other methods' outputs by method name."""

    name: str
    content: Path
    style: Path
    content_seg: Path | None = None
    style_seg: Path | None = None
    others: Mapping[str, Path] = field(default_factory=dict)


def _images_by_stem(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for f in sorted(folder.iterdir()):
        if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES:
            if f.stem in found:
                raise EvalError(
                    f"{folder}: two images named {f.stem!r} ({found[f.stem].name}, {f.name})"
                )
            found[f.stem] = f
    return found


def find_pairs(folder: str | Path) -> tuple[list[Pair], list[str]]:
    """The pairs of a folder (sorted by name) and the other methods found there (sorted).

    Raises :class:`EvalError` when the folder, ``content/`` or ``style/`` is missing, when no
    content has a style of the same name, or when a content lacks its style."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvalError(f"{folder}: pair folder not found")
    for role in (CONTENT, STYLE):
        if not (folder / role).is_dir():
            raise EvalError(f"{folder}: no {role}/ folder (expected {CONTENT}/ and {STYLE}/)")
    contents = _images_by_stem(folder / CONTENT)
    styles = _images_by_stem(folder / STYLE)
    if not contents:
        raise EvalError(f"{folder / CONTENT}: no images")
    missing = sorted(set(contents) - set(styles))
    if missing:
        names = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise EvalError(f"{folder / STYLE}: no style for content {names}")
    subdirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    seg = {d.name: _images_by_stem(d) for d in subdirs if d.name.endswith(MASK_SUFFIX)}
    others = {
        d.name: _images_by_stem(d)
        for d in subdirs
        if d.name not in (CONTENT, STYLE) and not d.name.endswith(MASK_SUFFIX)
    }
    # A folder counts as a method when it holds an output for at least one pair.
    others = {name: files for name, files in others.items() if set(files) & set(contents)}
    pairs = [
        Pair(
            stem,
            contents[stem],
            styles[stem],
            seg.get(CONTENT + MASK_SUFFIX, {}).get(stem),
            seg.get(STYLE + MASK_SUFFIX, {}).get(stem),
            {name: files[stem] for name, files in others.items() if stem in files},
        )
        for stem in sorted(contents)
    ]
    return pairs, sorted(others)


def _close_enough(got: int, want: int) -> bool:
    """Side lengths that differ by rounding only: at most 1% (and at least 2 px)."""
    return abs(got - want) <= max(2, round(0.01 * want))


def load_mask(path: Path, image_path: Path, hw: tuple[int, int]) -> torch.Tensor:
    """A label map checked against its image's original size, resized to ``hw`` -> ``(H, W)``.

    Published benchmark masks are sometimes a row or column off their photo (one DPST mask is
    700x393 for a 700x394 photo), so sizes within rounding are accepted and resampled
    (nearest neighbour); anything further off is an error."""
    size = oriented_size(image_path)
    if size is None:  # the image itself was loaded first, so this is rare: say so plainly
        raise EvalError(f"{image_path}: cannot read the image's size to check {path.name}")
    w, h = size
    labels = load_labels(path)
    mh, mw = labels.shape
    if not (_close_enough(mw, w) and _close_enough(mh, h)):
        raise EvalError(
            f"{path}: mask is {mw}x{mh} but its image is {w}x{h}: masks must match their "
            "image's size"
        )
    return resize_labels(labels, hw) if tuple(labels.shape) != tuple(hw) else labels

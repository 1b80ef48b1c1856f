"""Batch stylisation of image files: the library side of ``stylenas stylize``.

Plans outputs, groups contents of the same size into batches, computes the style statistics
once, and reports one result per content (errors included) so one bad file does not stop
the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import stylestore
from .config import DEFAULT_MAX_PIXELS, DEFAULT_STYLE_SIZE
from .errors import OutOfMemory, is_oom
from .files import STYLIZED_SUFFIX, OutputError, plan_outputs
from .images import (
    IMAGE_SUFFIXES,
    ImageError,
    LoadedImage,
    first_line,
    load_image,
    load_labels,
    open_image,
    oriented_size,
    save_image,
)
from .lift import DEFAULT_WORK_SIZE, LiftConfig, work_shape
from .memory import check_fits, release_freed_memory
from .model import StyleCache, Stylizer, check_side


@dataclass
class StylizeConfig:
    alpha: float = 1.0
    max_size: int | None = None
    batch_size: int = 4
    overwrite: bool = False
    content_mask: Path | None = None
    style_mask: Path | None = None
    # Long side the network sees; the result is lifted to the photo's size (None: native).
    work_size: int | None = DEFAULT_WORK_SIZE
    lift: LiftConfig = field(default_factory=LiftConfig)
    cache: bool = True  # keep the style's statistics on disk across runs (stylestore)
    style_size: int = DEFAULT_STYLE_SIZE  # long side the style is read at
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # larger files are refused (bombs)
    skip_existing: bool = False  # an existing output counts as done (resume a killed batch)
    regions: int = 0  # > 0: automatic semantic regions where no masks are given (automask)
    # Radius (px at the working size) snapping content_mask to the photo's edges; None: the
    # model's own (model.LABEL_SNAP), 0: the mask as drawn.
    mask_snap: int | None = None


@dataclass
class Result:
    content: Path
    output: Path | None
    ok: bool
    error: str | None = None
    width: int = 0
    height: int = 0
    seconds: float = 0.0
    device: str = ""
    extra: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. "animated: first frame used"
    skipped: bool = False  # the output existed and skip_existing was asked: nothing done
    style: Path | None = None  # set for runs over many styles (jobs)

    def as_dict(self) -> dict:
        d = {
            "content": str(self.content),
            "output": str(self.output) if self.output else None,
            "ok": self.ok,
            "width": self.width,
            "height": self.height,
            "seconds": round(self.seconds, 4),
            "device": self.device,
        }
        if self.error:
            d["error"] = self.error
        if self.notes:
            d["notes"] = self.notes
        if self.skipped:
            d["skipped"] = True
        if self.style is not None:
            d["style"] = str(self.style)
        return d | self.extra

    @classmethod
    def from_dict(cls, d: dict) -> Result:
        """The inverse of :meth:`as_dict` (results sent back from other processes)."""
        known = {"content", "output", "ok", "error", "width", "height", "seconds", "device",
                 "notes", "skipped", "style"}  # fmt: skip
        paths = {k: Path(d[k]) if d.get(k) else None for k in ("content", "output", "style")}
        return cls(
            ok=d["ok"], error=d.get("error"), width=d.get("width", 0),
            height=d.get("height", 0), seconds=d.get("seconds", 0.0),
            device=d.get("device", ""), notes=d.get("notes", []),
            skipped=d.get("skipped", False),
            extra={k: v for k, v in d.items() if k not in known}, **paths,
        )  # fmt: skip


def existing_output(content: Path, output: Path, cfg: StylizeConfig) -> Result | None:
    """The result of a content whose output already exists (skipped with ``skip_existing``,
    else an error), or None when it is to be written."""
    if cfg.overwrite or not output.exists():
        return None
    if cfg.skip_existing:
        return Result(content, output, True, skipped=True)
    msg = f"{output}: output exists; pass --overwrite to replace it or --skip-existing"
    return Result(content, output, False, msg)


def expand_contents(
    paths: list[Path], recursive: bool = False, exclude: Path | None = None
) -> tuple[list[Path], list[Path]]:
    """Files as given; directories expand to their images, sorted (with ``recursive``, their
    sub-folders too), leaving out earlier results (``*_stylized.*``), hidden files and
    anything under ``exclude`` (the output folder), so a second run does not stylise its own
    output. Returns the contents and, for each, its folder relative to the directory it
    was found in (``.`` for files given directly), which an output folder mirrors."""
    out: list[Path] = []
    subdirs: list[Path] = []
    skip = exclude.resolve() if exclude is not None else None
    for p in paths:
        if not p.is_dir():
            out.append(p)
            subdirs.append(Path("."))
            continue
        # An output folder inside this one is left out; results written into the folder itself
        # (or one above it) are told apart by their name (*_stylized).
        here = p.resolve()
        inner = skip if skip is not None and skip != here and skip.is_relative_to(here) else None
        walk = p.rglob("*") if recursive else p.iterdir()
        found = sorted(
            f
            for f in walk
            if f.suffix.lower() in IMAGE_SUFFIXES
            and not f.stem.endswith(STYLIZED_SUFFIX)
            and not any(part.startswith(".") for part in f.relative_to(p).parts)
            and not (inner is not None and f.resolve().is_relative_to(inner))
            and f.is_file()
        )
        if not found:
            where = "or its sub-folders " if recursive else ""
            raise ImageError(f"{p}: directory {where}holds no images")
        out += found
        subdirs += [f.parent.relative_to(p) for f in found]
    return out, subdirs


def plan_image_outputs(
    contents: list[Path], output: str | Path | None, subdirs: list[Path] | None = None
) -> list[Path]:
    """Output path of each content (see :func:`~stylenas_cli.files.plan_outputs`); in an
    output folder each content goes to its ``subdirs`` entry (the input tree mirrored)."""
    return plan_outputs(contents, output, IMAGE_SUFFIXES, "an image", subdirs)


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (links and ``..`` resolved; missing ones by path)."""
    try:
        return a.samefile(b)
    except OSError:
        return a.resolve() == b.resolve()


def precheck(
    contents: list[Path], outputs: list[Path], style: Path, cfg: StylizeConfig
) -> tuple[list[tuple[Path, Path]], list[Result]]:
    """Check the inputs before any model is loaded: the style must decode and the masks'
    headers be readable (an :class:`ImageError` otherwise); each content's header must be
    readable and within ``cfg.max_pixels``, and its output must not be the content, the
    style or a mask (refused even with ``overwrite``: it would destroy an input). Returns the
    ``(content, output)`` pairs to run and one failed :class:`Result` per content refused."""
    with open_image(style, cfg.max_pixels, "style") as img:
        try:  # decoded whole (JPEGs at 1/8 scale: fast) so a truncated style fails here
            img.draft("RGB", (img.width // 8, img.height // 8))
            img.load()
        except (OSError, SyntaxError, ValueError) as err:
            raise ImageError(f"{style}: not a readable style ({first_line(err)})") from None
    for mask in (cfg.content_mask, cfg.style_mask):
        if mask is not None:
            with open_image(mask, cfg.max_pixels, "mask"):
                pass
    todo, failed = [], []
    for c, o in zip(contents, outputs):
        try:
            with open_image(c, cfg.max_pixels):
                pass
            inputs = {"the content": c, "the style": style, "the content mask": cfg.content_mask,
                      "the style mask": cfg.style_mask}  # fmt: skip
            for which, path in inputs.items():
                if path is not None and same_file(o, path):
                    raise ImageError(f"{o}: the output would replace {which}; choose another -o")
        except ImageError as err:
            failed.append(Result(c, None, False, str(err)))
            continue
        todo.append((c, o))
    return todo, failed


def stylize_files(
    model: Stylizer,
    contents: list[Path],
    style: Path,
    outputs: list[Path],
    cfg: StylizeConfig,
    on_result: Callable[[Result], None] = lambda r: None,
    styles: dict | None = None,
) -> list[Result]:
    """Stylise every content with one style; returns one :class:`Result` per content
    (inputs checked first: :func:`precheck`). ``styles``: summaries of styles already read,
    kept across calls (a run over many styles reads each once)."""
    if cfg.content_mask and len(contents) != 1:
        raise ImageError("--content-mask works with exactly one content image")
    with model.settings(label_snap=cfg.mask_snap):
        return _stylize_files(model, contents, style, outputs, cfg, on_result, styles)


def _stylize_files(model, contents, style, outputs, cfg, on_result, styles) -> list[Result]:
    checked, results = precheck(contents, outputs, style, cfg)
    for r in results:
        on_result(r)
    if not checked:
        return results
    cache = _style(model, style, cfg, {} if styles is None else styles)
    style_notes, cache.notes = cache.notes, []  # said once, with the style's first result

    def emit(r: Result) -> None:
        nonlocal style_notes
        r.notes, style_notes = style_notes + r.notes, []
        results.append(r)
        on_result(r)

    content_labels = None
    todo: list[tuple[Path, Path]] = []
    for c, o in checked:
        done = existing_output(c, o, cfg)
        if done is None:
            todo.append((c, o))
        else:
            emit(done)
    # Same-size contents next to each other so they share a batch.
    todo.sort(key=lambda co: oriented_size(co[0]) or (0, 0))
    for group in _same_size_groups(todo, cfg.batch_size):
        loaded: list[tuple[Path, Path, LoadedImage]] = []
        for c, o in group:
            try:
                img = load_image(c, cfg.max_size, cfg.max_pixels)
                check_side(*img.size, f"{c}: image")
                if cfg.content_mask:
                    size = oriented_size(c) or img.size
                    content_labels = load_labels(cfg.content_mask, size, cfg.max_pixels)
                loaded.append((c, o, img))
            except ImageError as err:
                emit(Result(c, None, False, str(err)))
        for sub in _split_by_size(loaded):
            for r in _run_batch(model, sub, cache, cfg, content_labels):
                emit(r)
        del loaded
        release_freed_memory()  # a long folder of mixed sizes must not grow the process
    return results


def _style(model: Stylizer, style: Path, cfg: StylizeConfig, styles: dict) -> StyleCache:
    max_side = min(cfg.max_size or cfg.style_size, cfg.style_size)
    key = (style.resolve(), cfg.style_mask and cfg.style_mask.resolve(), max_side, cfg.regions)
    if key not in styles:
        store = stylestore.cache_dir() if cfg.cache else None
        regions = 0 if cfg.style_mask else cfg.regions
        styles[key] = model.load_style(style, max_side, cfg.style_mask, store, cfg.max_pixels,
                                       regions)  # fmt: skip
    return styles[key]


def _same_size_groups(todo: list, batch_size: int) -> Iterator[list]:
    group: list = []
    key = None
    for c, o in todo:
        k = oriented_size(c)
        if group and (k != key or len(group) >= batch_size):
            yield group
            group = []
        group.append((c, o))
        key = k
    if group:
        yield group


def _split_by_size(loaded: list) -> Iterator[list]:
    by: dict[tuple[int, int], list] = {}
    for item in loaded:
        by.setdefault(item[2].size, []).append(item)
    yield from by.values()


def _run_batch(model, items, cache, cfg: StylizeConfig, content_labels) -> list[Result]:
    """Stylise same-size photos together; too big a batch runs one by one, and a photo
    that cannot fit is reported (never a traceback)."""
    if not items:
        return []
    t0 = time.perf_counter()
    w, h = items[0][2].size
    float_source = any(img.pixels.dtype != np.uint8 for _, _, img in items)
    try:
        check_fits(f"{items[0][0]}", h, w, model.device, len(items), cfg.work_size, float_source)
        images = [img for _, _, img in items]
        out = stylize_images(
            model, images, cache, cfg.alpha, content_labels, cfg.work_size, cfg.lift
        )
    except (RuntimeError, MemoryError, OutOfMemory) as err:
        if not is_oom(err):
            raise
        if len(items) > 1:  # retry one by one before giving up
            return [
                r for item in items for r in _run_batch(model, [item], cache, cfg, content_labels)
            ]
        hint = (
            "use a smaller --work-size or --max-size" if cfg.work_size else "use --work-size 1024"
        )
        msg = (
            str(err)
            if isinstance(err, OutOfMemory)
            else f"{items[0][0]}: out of memory at {w}x{h}; {hint}"
        )
        return [Result(items[0][0], None, False, msg)]
    seconds = (time.perf_counter() - t0) / len(items)
    results = []
    for (c, o, img), pixels in zip(items, out):
        try:
            save_image(pixels, o, img.alpha, cfg.overwrite)
            dev = str(model.device)
            results.append(Result(c, o, True, None, w, h, seconds, dev, notes=img.notes))
        except OutputError as err:
            results.append(Result(c, None, False, str(err)))
        except (OSError, ImageError) as err:
            results.append(Result(c, None, False, f"{o}: could not write output ({err})"))
    return results


def stylize_images(
    model: Stylizer,
    images: list[LoadedImage],
    cache: StyleCache,
    alpha: float = 1.0,
    labels: torch.Tensor | None = None,
    work_size: int | None = DEFAULT_WORK_SIZE,
    lift: LiftConfig | None = None,
) -> np.ndarray:
    """Same-size images -> ``(B, H, W, 3)`` uint8: the network at the working size (the
    photos Lanczos-resized from their 8-bit pixels), its result lifted onto the
    full-resolution pixels; ``work_size=None``: the network on every pixel. What ``stylenas
    stylize`` writes, and what ``stylenas eval`` scores."""
    w, h = images[0].size
    size = work_shape(h, w, work_size) if work_size else (h, w)
    if all(img.pixels.dtype == np.uint8 for img in images):
        parts = [img.tensor() for img in images]  # uint8 views, no float copy
    else:
        parts = [img.rgb for img in images]
    full = parts[0] if len(parts) == 1 else torch.cat(parts)  # one photo: no copy at all
    small = None
    if size != (h, w):  # Lanczos from the 8-bit pixels: no full-size float copy
        small = torch.cat([img.resized(*size) for img in images])
    out = np.empty((len(images), h, w, 3), np.uint8)
    model.stylize_at(
        full,
        cache,
        alpha,
        content_labels=labels,
        work_size=work_size,
        lift_cfg=lift,
        small=small,
        out=torch.from_numpy(out).permute(0, 3, 1, 2),
    )
    return out

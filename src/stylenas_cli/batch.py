"""Batch stylisation of image files: the library side of ``stylenas stylize``.

Expands folders, plans outputs, and runs one style's jobs (:func:`run_group`): the style's
statistics computed once, contents of the same size stylised in one batch, one result per
content (errors included) so one bad file does not stop the others. Jobs, manifests and the
checks made before anything runs are :mod:`.jobs`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import stylestore
from .config import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_STYLE_SIZE,
    DEFAULT_TRANSFER,
    DEFAULT_WORK_SIZE,
    LiftConfig,
    TransferSettings,
)
from .errors import OutOfMemory, is_oom
from .files import STYLIZED_SUFFIX, OutputError, plan_outputs
from .images import (
    IMAGE_SUFFIXES,
    ImageError,
    LoadedImage,
    load_image,
    load_labels,
    oriented_size,
    save_image,
)
from .memory import check_fits, release_freed_memory
from .model import Stylizer
from .shape import check_side, work_shape
from .style import StyleCache

FIELDS = ("content", "style", "output", "alpha", "content_mask", "style_mask")
# Keys a failure report (jobs.write_failures) adds; a report read back as a manifest ignores them.
REPORT_FIELDS = ("error", "ok", "width", "height", "seconds", "device", "notes", "skipped")


@dataclass(frozen=True)
class Job:
    """One content, its style and its output (a row of a manifest, or one photo of a folder run)."""

    content: Path
    style: Path
    output: Path | None = None  # None: planned like a folder run's (see plan_jobs)
    alpha: float | None = None  # None: the run's --alpha
    content_mask: Path | None = None
    style_mask: Path | None = None
    where: str = field(default="", compare=False)  # "manifest:line" of a manifest's row
    size: tuple[int, int] | None = field(default=None, compare=False)  # content, as shown

    def as_dict(self) -> dict:
        values = {k: getattr(self, k) for k in FIELDS}
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items()}

    @property
    def inputs(self) -> list[Path]:
        """The files this job reads."""
        return [p for p in (self.content, self.style, self.content_mask, self.style_mask) if p]

    @classmethod
    def from_dict(cls, row: dict) -> Job:
        path = {k: Path(row[k]) if row.get(k) else None for k in FIELDS if k != "alpha"}
        alpha = row.get("alpha")
        return cls(alpha=None if alpha in (None, "") else float(alpha), **path)


@dataclass
class StylizeConfig:
    """How a batch is stylised (what each job does not say itself)."""

    alpha: float = 1.0  # a job's own alpha overrides it
    max_size: int | None = None  # long side of the outputs; None: each photo's own size
    batch_size: int = 4  # same-size contents stylised together
    overwrite: bool = False
    # Long side the network sees; the result is lifted to the photo's size (None: native).
    work_size: int | None = DEFAULT_WORK_SIZE
    lift: LiftConfig = field(default_factory=LiftConfig)
    cache: bool = True  # keep the style's statistics on disk across runs (stylestore)
    style_size: int = DEFAULT_STYLE_SIZE  # long side the style is read at
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # larger files are refused (bombs)
    skip_existing: bool = False  # an existing output counts as done (resume a killed batch)
    transfer: TransferSettings = DEFAULT_TRANSFER  # every setting of the transfer itself


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
    anything under ``exclude`` (the output folder) when it lies inside, so a second run does
    not stylise its own output. Returns the contents and, for each, its folder relative to
    the directory it was found in (``.`` for files given directly), which an output folder
    mirrors."""
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


def run_group(
    model: Stylizer,
    jobs: Sequence[Job],
    cfg: StylizeConfig,
    on_result: Callable[[Result], None] = lambda r: None,
    styles: dict | None = None,
) -> list[Result]:
    """Stylise jobs that share one style, style mask, strength and content mask (a group of
    :func:`~stylenas_cli.jobs.group_jobs`, already checked by
    :func:`~stylenas_cli.jobs.precheck_jobs`); one :class:`Result` per job. ``styles``:
    summaries of styles already read, kept across calls. Raises :class:`ImageError` when
    the style cannot be used."""
    first = jobs[0]
    if first.content_mask and len(jobs) != 1:
        raise ImageError("--content-mask works with exactly one content image")
    alpha = cfg.alpha if first.alpha is None else first.alpha
    cache = _style(model, first.style, first.style_mask, cfg, {} if styles is None else styles)
    style_notes, cache.notes = cache.notes, []  # said once, with the style's first result
    results: list[Result] = []

    def emit(r: Result) -> None:
        nonlocal style_notes
        r.notes, style_notes = style_notes + r.notes, []
        results.append(r)
        on_result(r)

    todo = []
    for job in jobs:
        done = existing_output(job.content, job.output, cfg)
        if done is None:
            todo.append(job)
        else:
            emit(done)
    # Three stages overlap: a thread decodes the next photos (and makes their working copies),
    # this one runs the network and the lift, a thread encodes and writes the results; both
    # queues hold about a batch, so memory stays bounded whatever the folder's size.
    pending: deque[Result | Future[Result]] = deque()
    with ThreadPoolExecutor(1, "stylenas-write") as writer:

        def drain(wait: bool) -> None:
            while pending and (wait or _ready(pending[0]) or len(pending) > 2 * cfg.batch_size):
                head = pending.popleft()
                emit(head if isinstance(head, Result) else head.result())

        batch: list[_Loaded] = []
        for item in _prefetch(todo, cfg):
            if item.error is not None:
                pending.append(Result(item.job.content, None, False, item.error))
                continue
            new_size = bool(batch) and item.image.size != batch[0].image.size
            if new_size or len(batch) >= cfg.batch_size:
                pending.extend(_run_batch(model, batch, cache, cfg, alpha, writer))
                batch = []
                drain(False)
            if new_size:
                release_freed_memory()  # a long folder of mixed sizes must not grow the process
            batch.append(item)
        pending.extend(_run_batch(model, batch, cache, cfg, alpha, writer))
        drain(True)
    release_freed_memory()
    return results


@dataclass
class _Loaded:
    """A job's photo as read: the full-size pixels, the working copy for the network
    ``(1, 3, h, w)`` (None: the photo is no larger), a drawn label map; or why not."""

    job: Job
    image: LoadedImage | None = None
    small: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    error: str | None = None


def _load(job: Job, cfg: StylizeConfig) -> _Loaded:
    try:
        img = load_image(job.content, cfg.max_size, cfg.max_pixels)
        check_side(*img.size, f"{job.content}: image")
        labels = None
        if job.content_mask:  # drawn at the photo's own size
            size = job.size or oriented_size(job.content) or img.size
            labels = load_labels(job.content_mask, size, cfg.max_pixels)
        w, h = img.size
        size = work_shape(h, w, cfg.work_size)
        small = img.resized(*size) if size != (h, w) else None  # Lanczos from the 8-bit pixels
        return _Loaded(job, img, small, labels)
    except ImageError as err:
        return _Loaded(job, error=str(err))


def _prefetch(jobs: Sequence[Job], cfg: StylizeConfig) -> Iterator[_Loaded]:
    """The jobs' photos loaded by a thread, in order, at most a batch ahead."""
    with ThreadPoolExecutor(1, "stylenas-read") as reader:
        ahead: deque[Future[_Loaded]] = deque()
        for job in jobs:
            ahead.append(reader.submit(_load, job, cfg))
            if len(ahead) > cfg.batch_size:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


def _ready(item: Result | Future) -> bool:
    return isinstance(item, Result) or item.done()


def _style(model: Stylizer, style: Path, mask: Path | None, cfg: StylizeConfig, styles: dict):
    max_side = min(cfg.max_size or cfg.style_size, cfg.style_size)
    settings = cfg.transfer
    key = (style.resolve(), mask and mask.resolve(), max_side, settings)
    if key not in styles:
        store = stylestore.cache_dir() if cfg.cache else None
        styles[key] = model.load_style(style, max_side, mask, store, cfg.max_pixels, settings)
    return styles[key]


def _run_batch(
    model, items: list[_Loaded], cache, cfg: StylizeConfig, alpha: float, writer: Executor
) -> list[Result | Future[Result]]:
    """Stylise same-size photos together and hand their outputs to ``writer``; too big a
    batch runs one by one, and a photo that cannot fit is reported (never a traceback)."""
    if not items:
        return []
    t0 = time.perf_counter()
    w, h = items[0].image.size
    first = items[0].job.content
    float_source = any(it.image.pixels.dtype != np.uint8 for it in items)
    try:
        check_fits(f"{first}", h, w, model.device, len(items), cfg.work_size, float_source)
        images = [it.image for it in items]
        small = None if items[0].small is None else torch.cat([it.small for it in items])
        out = stylize_images(model, images, cache, alpha, items[0].labels, cfg.work_size,
                             cfg.lift, cfg.transfer, small)  # fmt: skip
    except (RuntimeError, MemoryError, OutOfMemory) as err:
        if not is_oom(err):
            raise
        if len(items) > 1:  # retry one by one before giving up
            return [r for it in items for r in _run_batch(model, [it], cache, cfg, alpha, writer)]
        hint = (
            "use a smaller --work-size or --max-size" if cfg.work_size else "use --work-size 1024"
        )
        too_big = f"{first}: out of memory at {w}x{h}; {hint}"
        return [Result(first, None, False, str(err) if isinstance(err, OutOfMemory) else too_big)]
    seconds = (time.perf_counter() - t0) / len(items)
    device = str(model.device)
    return [writer.submit(_save, it, pixels, w, h, seconds, device, cfg.overwrite)
            for it, pixels in zip(items, out)]  # fmt: skip


def _save(item: _Loaded, pixels, w: int, h: int, seconds: float, device: str, overwrite: bool):
    c, o = item.job.content, item.job.output
    try:
        save_image(pixels, o, item.image.alpha, overwrite)
    except OutputError as err:
        return Result(c, None, False, str(err))
    except (OSError, ImageError) as err:
        return Result(c, None, False, f"{o}: could not write output ({err})")
    return Result(c, o, True, None, w, h, seconds, device, notes=item.image.notes)


def stylize_images(
    model: Stylizer,
    images: list[LoadedImage],
    cache: StyleCache,
    alpha: float = 1.0,
    labels: torch.Tensor | None = None,
    work_size: int | None = DEFAULT_WORK_SIZE,
    lift: LiftConfig | None = None,
    settings: TransferSettings = DEFAULT_TRANSFER,
    small: torch.Tensor | None = None,
) -> np.ndarray:
    """Same-size images -> ``(B, H, W, 3)`` uint8: the network at the working size (the
    photos Lanczos-resized from their 8-bit pixels, unless ``small`` brings those working
    copies ``(B, 3, h, w)``), its result lifted onto the full-resolution pixels;
    ``work_size=None``: the network on every pixel. What ``stylenas stylize`` writes, and
    what ``stylenas eval`` scores."""
    w, h = images[0].size
    size = work_shape(h, w, work_size)
    if all(img.pixels.dtype == np.uint8 for img in images):
        parts = [img.tensor() for img in images]  # uint8 views, no float copy
    else:
        parts = [img.rgb for img in images]
    full = parts[0] if len(parts) == 1 else torch.cat(parts)  # one photo: no copy at all
    if small is None and size != (h, w):  # Lanczos from the 8-bit pixels: no float copy
        small = torch.cat([img.resized(*size) for img in images])
    out = np.empty((len(images), h, w, 3), np.uint8)
    model.stylize_at(
        full,
        cache,
        alpha,
        settings,
        content_labels=labels,
        work_size=work_size,
        lift_cfg=lift,
        small=small,
        out=torch.from_numpy(out).permute(0, 3, 1, 2),
    )
    return out

"""One evaluation run (the library side of ``stylenas eval``): score our networks, the
colour-transfer baselines and other methods' outputs on every pair of a folder.

Every method is scored with :mod:`.metrics` at the content's resolution (other methods'
outputs are Lanczos-resized to it), and the run writes ``scores.csv`` (one row per pair and
method), ``summary.md`` (mean ± std per method and metric, wins/losses between methods) and
``contact_sheet.png`` (content | style | every method), plus our own outputs under
``outputs/<method>/``. The folder layout is described in :mod:`.pairs`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from ..batch import stylize_images
from ..config import DEFAULT_STYLE_SIZE, DEFAULT_TRANSFER, DEFAULT_WORK_SIZE, LiftConfig
from ..device import resolve_device, resolve_precision, synchronize
from ..errors import OutOfMemory, is_oom
from ..files import atomic_write
from ..images import LoadedImage, load_image
from ..model import Stylizer
from ..shape import check_side, work_shape
from .baselines import BASELINES
from .baselines import get as get_baseline
from .metrics import GRAM_LONG_SIDE, Scorer, as_rgb, gram_encoder, resize
from .pairs import CONTENT, STYLE, EvalError, Pair, find_pairs, load_mask
from .report import (
    contact_sheet,
    machine_name,
    save_png,
    summarise,
    summary_markdown,
    thumb,
    wins_losses,
    worst_markdown,
    worst_pairs,
    write_csv,
)

OURS_PREFIX = "ours-"
MASKED_SUFFIX = "+masks"
AUTO_SUFFIX = "+auto"  # automatic regions (regions.py)


# --- configuration and results -------------------------------------------------------------


@dataclass(frozen=True)
class EvalConfig:
    archs: tuple[str, ...] = ("photonas",)  # names, 32-bit genotypes or best.json paths
    weights: Mapping[str, Path] = field(default_factory=dict)  # arch -> file; else shipped
    masks: bool = True  # also stylise with the label maps where a pair has both
    baselines: tuple[str, ...] = tuple(BASELINES)
    max_size: int | None = None  # long side of content and style; None = as they are
    device: str = "auto"
    precision: str = "auto"
    limit: int | None = None  # first N pairs
    overwrite: bool = False
    cell: int = 192  # contact-sheet cell side (px)
    gram_size: int | None = None  # None: EVAL.md's long side (GRAM_LONG_SIDE)
    work_size: int | None = DEFAULT_WORK_SIZE  # the network's long side; None: native
    lift: LiftConfig = field(default_factory=LiftConfig)
    style_size: int = DEFAULT_STYLE_SIZE  # long side the style is read at for its statistics
    regions: int = 0  # > 0: also score ours with that many automatic regions (+auto)


@dataclass
class Method:
    """A column of the results: ``kind`` is ours, baseline or other."""

    name: str
    kind: str


@dataclass
class EvalReport:
    rows: list[dict]
    methods: list[Method]
    summary: dict[str, dict[str, dict[str, float]]]
    wins: dict[str, dict[str, dict[str, list[int]]]]
    markdown: str
    files: dict[str, Path]
    meta: dict

    def as_dict(self) -> dict:
        return {
            "meta": self.meta,
            "methods": [{"name": m.name, "kind": m.kind} for m in self.methods],
            "summary": self.summary,
            "wins": self.wins,
            "files": {k: str(v) for k, v in self.files.items()},
            "rows": self.rows,
        }


def arch_label(arch: str) -> str:
    """Column name of one of our architectures: ``ours-photonas``; a best.json path gives
    its parent folder's name (the search run)."""
    if arch.endswith(".json"):
        path = Path(arch)
        arch = path.parent.name or path.stem
    return OURS_PREFIX + arch


def planned_files(out_dir: Path, pairs: list[Pair], labels: list[str]) -> dict[str, Path]:
    files = {
        "csv": out_dir / "scores.csv",
        "markdown": out_dir / "summary.md",
        "contact_sheet": out_dir / "contact_sheet.png",
    }
    for label in labels:
        for p in pairs:
            files[f"{label}/{p.name}"] = out_dir / "outputs" / label / f"{p.name}.png"
    return files


# --- scoring -------------------------------------------------------------------------------


def _load(path: Path, max_size: int | None, role: str) -> LoadedImage:
    """A content or style photo, refused if our networks cannot take it."""
    img = load_image(path, max_size)
    check_side(*img.size, f"{path}: {role}")
    return img


def _our_methods(
    cfg: EvalConfig, use_masks: bool, other_names: list[str], pairs_dir: Path
) -> list[tuple[str, str, str]]:
    """Check the config against the folder; ``(label, arch, mode)`` per run of ours (mode:
    plain, masks (the pairs' label maps) or auto (automatic regions))."""
    unknown = sorted(set(cfg.weights) - set(cfg.archs))
    if unknown:
        raise EvalError(f"weights given for {', '.join(unknown)}, which is not among the archs")
    for name in cfg.baselines:
        get_baseline(name)
    labels = [arch_label(a) for a in cfg.archs]
    if len(set(labels)) != len(labels):
        raise EvalError(f"an architecture is asked for twice: {', '.join(cfg.archs)}")
    clash = sorted(set(labels) & set(other_names))
    if clash:
        raise EvalError(f"{pairs_dir}: a method folder is named like ours: {', '.join(clash)}")
    ours = []
    for arch, label in zip(cfg.archs, labels):
        ours.append((label, arch, "plain"))
        if use_masks:
            ours.append((label + MASKED_SUFFIX, arch, "masks"))
        if cfg.regions:
            ours.append((label + AUTO_SUFFIX, arch, "auto"))
    return ours


def _stylize_timed(
    model: Stylizer,
    content: LoadedImage,
    style: LoadedImage,
    masks,
    cfg: EvalConfig,
    regions: int = 0,
) -> tuple[np.ndarray, float]:
    """One whole stylisation as ``stylenas stylize`` makes it (style statistics included, the
    style read at the configured style size, working size and lift) -> ``(H, W, 3)``
    float64 of the 8-bit result, and its synchronised seconds."""
    c_lab, s_lab = masks if masks is not None else (None, None)
    try:
        synchronize(model.device)
        t0 = time.perf_counter()
        w, h = style.size
        sh, sw = work_shape(h, w, cfg.style_size)
        settings = replace(DEFAULT_TRANSFER, regions=regions)
        cache = model.style_cache(style.resized(sh, sw).to(model.device), s_lab, settings)
        out = stylize_images(model, [content], cache, 1.0, c_lab, cfg.work_size, cfg.lift,
                             settings)  # fmt: skip
        synchronize(model.device)
        seconds = time.perf_counter() - t0
    except (RuntimeError, MemoryError) as err:
        if not is_oom(err):
            raise
        raise OutOfMemory("out of memory: try --max-size 1024 or --device cpu") from None
    return out[0].astype(np.float64) / 255.0, seconds


def _worst_first(sheet_rows: list, rows: list[dict], ours: list[str]) -> list:
    """The contact sheet's rows: the first method of ours' worst pairs by gram, then by
    ssim (labelled with rank and score), then every pair in order."""
    if not ours:
        return sheet_rows
    by_name = dict(sheet_rows)
    first = []
    for metric in ("gram", "ssim"):
        for rank, (pair, value) in enumerate(worst_pairs(rows, ours[0], metric), 1):
            first.append((f"worst {metric} #{rank}: {pair} ({value:.2f})", by_name[pair]))
    return first + sheet_rows


def evaluate(
    pairs_dir: str | Path,
    out_dir: str | Path,
    cfg: EvalConfig | None = None,
    on_pair: Callable[[int, int, str], None] = lambda done, total, name: None,
) -> EvalReport:
    """Score every method on every pair of ``pairs_dir`` and write the report to ``out_dir``.

    ``on_pair(done, total, name)`` is called before the first pair and after each one."""
    cfg = cfg if cfg is not None else EvalConfig()
    pairs_dir, out_dir = Path(pairs_dir), Path(out_dir)
    pairs, other_names = find_pairs(pairs_dir)
    if cfg.limit is not None:
        if cfg.limit < 1:
            raise EvalError(f"limit must be >= 1, got {cfg.limit}")
        pairs = pairs[: cfg.limit]
        other_names = [n for n in other_names if any(n in p.others for p in pairs)]
    use_masks = cfg.masks and any(p.content_seg and p.style_seg for p in pairs)
    ours = _our_methods(cfg, use_masks, other_names, pairs_dir)
    files = planned_files(out_dir, pairs, [label for label, _, _ in ours])
    if not cfg.overwrite:
        for path in files.values():
            if path.exists():
                raise EvalError(f"{path} exists; pass --overwrite to replace it")

    device = resolve_device(cfg.device)
    models = {
        arch: Stylizer.from_pretrained(arch, cfg.weights.get(arch), str(device), cfg.precision)
        for arch in cfg.archs
    }
    encoder = gram_encoder(str(device))
    gram_size = cfg.gram_size if cfg.gram_size is not None else GRAM_LONG_SIDE
    methods = (
        [Method(label, "ours") for label, _, _ in ours]
        + [Method(name, "baseline") for name in cfg.baselines]
        + [Method(name, "other") for name in other_names]
    )
    kinds = {m.name: m.kind for m in methods}

    rows: list[dict] = []
    sheet_rows: list[tuple[str, list[Image.Image | None]]] = []
    on_pair(0, len(pairs), "")
    for i, pair in enumerate(pairs):
        c_img = _load(pair.content, cfg.max_size, CONTENT)
        s_img = _load(pair.style, cfg.max_size, STYLE)
        content, style = as_rgb(c_img.rgb), as_rgb(s_img.rgb)
        h, w = content.shape[:2]
        score = Scorer(content, style, encoder, gram_size)
        outputs: dict[str, tuple[np.ndarray, float | None]] = {}
        masks = None
        if use_masks and pair.content_seg and pair.style_seg:
            masks = (
                load_mask(pair.content_seg, pair.content, (h, w)),
                load_mask(pair.style_seg, pair.style, s_img.size[::-1]),
            )
        for label, arch, mode in ours:
            if mode == "masks" and masks is None:
                continue
            out, seconds = _stylize_timed(
                models[arch], c_img, s_img, masks if mode == "masks" else None, cfg,
                cfg.regions if mode == "auto" else 0,
            )  # fmt: skip
            outputs[label] = (out, seconds)
            save_png(outputs[label][0], files[f"{label}/{pair.name}"])
        for name in cfg.baselines:
            t0 = time.perf_counter()
            out = get_baseline(name)(content, style)
            outputs[name] = (np.round(out * 255.0) / 255.0, time.perf_counter() - t0)
        for name in other_names:
            if name in pair.others:
                other = as_rgb(load_image(pair.others[name]).rgb)
                outputs[name] = (resize(other, (w, h)), None)
        for name, (out, seconds) in outputs.items():
            rows.append(
                {
                    "pair": pair.name,
                    "method": name,
                    "kind": kinds[name],
                    "width": w,
                    "height": h,
                    **score(out),
                    "lab_c": score.lab_c,
                    "gram_c": score.gram_c,
                    "seconds": seconds,
                }
            )
        cells = [thumb(content, cfg.cell), thumb(style, cfg.cell)]
        cells += [
            thumb(outputs[m.name][0], cfg.cell) if m.name in outputs else None for m in methods
        ]
        sheet_rows.append((pair.name, cells))
        on_pair(i + 1, len(pairs), pair.name)

    names = [m.name for m in methods]
    summary = summarise(rows, names)
    wins = wins_losses(rows, names)
    meta = {
        "pairs_dir": str(pairs_dir),
        "pairs": len(pairs),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_name(device),
        "archs": list(cfg.archs),
        "weights": {a: str(p) for a, p in cfg.weights.items()},
        "masks": use_masks,
        "max_size": cfg.max_size,
        "precision": resolve_precision(cfg.precision, device),
        "work_size": cfg.work_size,
        "style_size": cfg.style_size,
        "lift": f"radius {cfg.lift.radius}, eps {cfg.lift.eps:g}",
    }
    our_names = [m.name for m in methods if m.kind == "ours"]
    markdown = summary_markdown(summary, wins, names, meta) + worst_markdown(rows, our_names)
    write_csv(rows, files["csv"])
    atomic_write(files["markdown"], lambda tmp: tmp.write_text(markdown, encoding="utf-8"))
    sheet = contact_sheet(_worst_first(sheet_rows, rows, our_names), [CONTENT, STYLE, *names],
                          cfg.cell)  # fmt: skip
    atomic_write(files["contact_sheet"], lambda tmp: sheet.save(tmp, format="PNG"))
    return EvalReport(rows, methods, summary, wins, markdown, files, meta)

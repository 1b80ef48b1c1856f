"""Benchmarking: score our networks, the colour-transfer baselines and other methods' outputs
on a folder of content/style pairs (the library side of ``stylenas eval``), and time them
(``stylenas bench-speed``).

A pair folder is laid out like ``../shared/data/bench/*``::

    PAIRS/content/NN.jpg      the content photos
    PAIRS/style/NN.jpg        the style photo of each pair (same stem)
    PAIRS/content_seg/NN.png  optional colour-coded label maps (any ``*_seg`` folder is a mask
    PAIRS/style_seg/NN.png    folder, never a method)
    PAIRS/<method>/NN.*       any other folder: another method's output for each pair

Every method is scored with :mod:`stylenas_cli.metrics` at the content's resolution (other
methods' outputs are Lanczos-resized to it), and the run writes ``scores.csv`` (one row per
pair and method), ``summary.md`` (mean ± std per method and metric, wins/losses between
methods) and ``contact_sheet.png`` (content | style | every method), plus our own outputs
under ``outputs/<method>/``.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io as _io
import math
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from . import baselines, metrics
from .files import atomic_write
from .images import IMAGE_SUFFIXES, load_image, load_labels
from .wct import resize_labels

CONTENT, STYLE = "content", "style"
MASK_SUFFIX = "_seg"
MIN_SIDE = 32  # our networks need relu5_1 (1/16) to be at least 2 px
METRICS: tuple[str, ...] = ("ssim", "edge_ssim", "lab_w1", "gain", "gram")
WIN_METRICS: tuple[str, ...] = ("ssim", "edge_ssim", "lab_w1", "gram")  # gain ranks as lab_w1
COLUMNS: tuple[str, ...] = (
    "pair",
    "method",
    "kind",
    "width",
    "height",
    *METRICS,
    "lab_c",
    "gram_c",
    "seconds",
)
OURS_PREFIX = "ours-"
MASKED_SUFFIX = "+masks"
REFERENCE = "content (unchanged)"


class EvalError(ValueError):
    """A pair folder, option or output location that cannot be used."""


# --- the pair folder -----------------------------------------------------------------------


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


# --- configuration and results -------------------------------------------------------------


@dataclass(frozen=True)
class EvalConfig:
    archs: tuple[str, ...] = ("photonas",)  # names, 32-bit genotypes or best.json paths
    weights: Mapping[str, Path] = field(default_factory=dict)  # arch -> file; else shipped
    masks: bool = True  # also stylise with the label maps where a pair has both
    baselines: tuple[str, ...] = tuple(baselines.BASELINES)
    max_size: int | None = None  # long side of content and style; None = as they are
    device: str = "auto"
    precision: str = "fp32"
    limit: int | None = None  # first N pairs
    overwrite: bool = False
    cell: int = 192  # contact-sheet cell side (px)
    gram_size: int | None = None  # None: EVAL.md's long side (metrics.GRAM_LONG_SIDE)


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


def _to_numpy(rgb: torch.Tensor) -> np.ndarray:
    """``(1, 3, H, W)`` -> ``(H, W, 3)`` float64, rounded to 8 bits as a saved output is."""
    arr = rgb[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return np.round(arr.astype(np.float64) * 255.0) / 255.0


def _oriented_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        w, h = img.size
        orientation = img.getexif().get(0x0112, 1)
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _close_enough(got: int, want: int) -> bool:
    """Side lengths that differ by rounding only: at most 1% (and at least 2 px)."""
    return abs(got - want) <= max(2, round(0.01 * want))


def _labels(path: Path, image_path: Path, hw: tuple[int, int]) -> torch.Tensor:
    """A label map checked against its image's original size, resized to ``hw``.

    Published benchmark masks are sometimes a row or column off their photo (DPST's pair 07:
    700x393 for a 700x394 photo), so sizes within rounding are accepted and resampled
    (nearest neighbour); anything further off is an error."""
    w, h = _oriented_size(image_path)
    labels = load_labels(path)
    mh, mw = labels.shape
    if not (_close_enough(mw, w) and _close_enough(mh, h)):
        raise EvalError(
            f"{path}: mask is {mw}x{mh} but its image is {w}x{h}: masks must match their "
            "image's size"
        )
    return resize_labels(labels, hw) if tuple(labels.shape) != tuple(hw) else labels


def _load(path: Path, max_size: int | None, role: str) -> torch.Tensor:
    img = load_image(path, max_size)
    w, h = img.size
    if min(w, h) < MIN_SIDE:
        raise EvalError(f"{path}: {role} is {w}x{h}; both sides must be >= {MIN_SIDE} px")
    return img.rgb


def _score(
    content: np.ndarray,
    output: np.ndarray,
    style_grams: dict,
    style_lab: np.ndarray,
    lab_c: float,
    encoder,
    gram_size: int,
) -> dict[str, float]:
    w1 = metrics.lab_w1_samples(metrics.lab_samples(output), style_lab)
    return {
        "ssim": metrics.ssim(content, output),
        "edge_ssim": metrics.edge_ssim(content, output),
        "lab_w1": w1,
        "gain": metrics.gain(w1, lab_c),
        "gram": metrics.gram_distance(
            metrics.gram_matrices(output, encoder, gram_size), style_grams
        ),
    }


def _thumb(image: np.ndarray, cell: int) -> Image.Image:
    img = Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    img.thumbnail((cell, cell), Image.Resampling.LANCZOS)
    return img


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _our_methods(
    cfg: EvalConfig, use_masks: bool, other_names: list[str], pairs_dir: Path
) -> list[tuple[str, str, bool]]:
    """Check the config against the folder; ``(label, arch, with masks)`` per run of ours."""
    unknown = sorted(set(cfg.weights) - set(cfg.archs))
    if unknown:
        raise EvalError(f"weights given for {', '.join(unknown)}, which is not among the archs")
    for name in cfg.baselines:
        baselines.get(name)
    labels = [arch_label(a) for a in cfg.archs]
    if len(set(labels)) != len(labels):
        raise EvalError(f"an architecture is asked for twice: {', '.join(cfg.archs)}")
    clash = sorted(set(labels) & set(other_names))
    if clash:
        raise EvalError(f"{pairs_dir}: a method folder is named like ours: {', '.join(clash)}")
    ours = []
    for arch, label in zip(cfg.archs, labels):
        ours.append((label, arch, False))
        if use_masks:
            ours.append((label + MASKED_SUFFIX, arch, True))
    return ours


def evaluate(
    pairs_dir: str | Path,
    out_dir: str | Path,
    cfg: EvalConfig | None = None,
    on_pair: Callable[[int, int, str], None] = lambda done, total, name: None,
) -> EvalReport:
    """Score every method on every pair of ``pairs_dir`` and write the report to ``out_dir``.

    ``on_pair(done, total, name)`` is called before the first pair and after each one."""
    from .device import resolve_device
    from .model import Stylizer

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
    encoder = metrics.gram_encoder(str(device))
    gram_size = cfg.gram_size if cfg.gram_size is not None else metrics.GRAM_LONG_SIDE
    methods = (
        [Method(label, "ours") for label, _, _ in ours]
        + [Method(name, "baseline") for name in cfg.baselines]
        + [Method(name, "other") for name in other_names]
    )

    rows: list[dict] = []
    sheet_rows: list[tuple[str, list[Image.Image | None]]] = []
    on_pair(0, len(pairs), "")
    for i, pair in enumerate(pairs):
        c_t = _load(pair.content, cfg.max_size, "content")
        s_t = _load(pair.style, cfg.max_size, "style")
        content, style = metrics.as_rgb(c_t), metrics.as_rgb(s_t)
        h, w = content.shape[:2]
        style_grams = metrics.gram_matrices(style, encoder, gram_size)
        style_lab = metrics.lab_samples(style)
        lab_c = metrics.lab_w1_samples(metrics.lab_samples(content), style_lab)
        gram_c = metrics.gram_distance(
            metrics.gram_matrices(content, encoder, gram_size), style_grams
        )
        outputs: dict[str, tuple[np.ndarray, float | None]] = {}
        masks = None
        if use_masks and pair.content_seg and pair.style_seg:
            masks = (
                _labels(pair.content_seg, pair.content, (h, w)),
                _labels(pair.style_seg, pair.style, tuple(s_t.shape[-2:])),
            )
        for label, arch, masked in ours:
            if masked and masks is None:
                continue
            model = models[arch]
            c_lab, s_lab = masks if masked else (None, None)
            _sync(model.device)
            t0 = time.perf_counter()
            cache = model.style_cache(s_t.to(model.device), s_lab)
            out = model.stylize(c_t.to(model.device), cache, 1.0, content_labels=c_lab)
            _sync(model.device)
            seconds = time.perf_counter() - t0
            outputs[label] = (_to_numpy(out), seconds)
            _save(outputs[label][0], files[f"{label}/{pair.name}"])
        for name in cfg.baselines:
            t0 = time.perf_counter()
            out = baselines.get(name)(content, style)
            outputs[name] = (np.round(out * 255.0) / 255.0, time.perf_counter() - t0)
        for name in other_names:
            if name in pair.others:
                other = metrics.as_rgb(load_image(pair.others[name]).rgb)
                outputs[name] = (metrics.resize(other, (w, h)), None)
        kinds = {m.name: m.kind for m in methods}
        for name, (out, seconds) in outputs.items():
            scores = _score(content, out, style_grams, style_lab, lab_c, encoder, gram_size)
            rows.append(
                {
                    "pair": pair.name,
                    "method": name,
                    "kind": kinds[name],
                    "width": w,
                    "height": h,
                    **scores,
                    "lab_c": lab_c,
                    "gram_c": gram_c,
                    "seconds": seconds,
                }
            )
        cells = [_thumb(content, cfg.cell), _thumb(style, cfg.cell)]
        cells += [
            _thumb(outputs[m.name][0], cfg.cell) if m.name in outputs else None for m in methods
        ]
        sheet_rows.append((pair.name, cells))
        on_pair(i + 1, len(pairs), pair.name)

    summary = summarise(rows, [m.name for m in methods])
    wins = wins_losses(rows, [m.name for m in methods])
    meta = {
        "pairs_dir": str(pairs_dir),
        "pairs": len(pairs),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_name(device),
        "archs": list(cfg.archs),
        "weights": {a: str(p) for a, p in cfg.weights.items()},
        "masks": use_masks,
        "max_size": cfg.max_size,
        "precision": cfg.precision,
    }
    markdown = summary_markdown(summary, wins, [m.name for m in methods], meta)
    _write_csv(rows, files["csv"])
    atomic_write(files["markdown"], lambda tmp: tmp.write_text(markdown, encoding="utf-8"))
    sheet = contact_sheet(sheet_rows, [CONTENT, STYLE, *(m.name for m in methods)], cfg.cell)
    atomic_write(files["contact_sheet"], lambda tmp: sheet.save(tmp, format="PNG"))
    return EvalReport(rows, methods, summary, wins, markdown, files, meta)


def _save(image: np.ndarray, dest: Path) -> None:
    img = Image.fromarray((image * 255.0 + 0.5).astype(np.uint8), "RGB")
    atomic_write(dest, lambda tmp: img.save(tmp, format="PNG"))


def _write_csv(rows: list[dict], dest: Path) -> None:
    def fmt(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        return f"{v:.6g}" if isinstance(v, float) else str(v)

    buf = _io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([fmt(r[c]) for c in COLUMNS])
    atomic_write(dest, lambda tmp: tmp.write_text(buf.getvalue(), encoding="utf-8"))


def machine_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import os

    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {os.cpu_count()} cores, torch {torch.get_num_threads()} threads"


# --- summaries -----------------------------------------------------------------------------


def _finite(values) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def summarise(rows: list[dict], methods: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """``{method: {metric: {"mean", "std", "n"}}}``; std is the sample std (0 for one pair).
    The reference row ``content (unchanged)`` holds what doing nothing scores."""

    def stats(values: list[float]) -> dict[str, float]:
        n = len(values)
        if n == 0:
            return {"mean": float("nan"), "std": float("nan"), "n": 0}
        std = float(np.std(values, ddof=1)) if n > 1 else 0.0
        return {"mean": float(np.mean(values)), "std": std, "n": n}

    out = {}
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        out[m] = {k: stats(_finite(r[k] for r in mine)) for k in METRICS}
    per_pair = {r["pair"]: r for r in rows}  # lab_c / gram_c are per pair
    ref = list(per_pair.values())
    n = len(ref)
    out[REFERENCE] = {
        "ssim": stats([1.0] * n),
        "edge_ssim": stats([1.0] * n),
        "lab_w1": stats(_finite(r["lab_c"] for r in ref)),
        "gain": stats([0.0] * n),
        "gram": stats(_finite(r["gram_c"] for r in ref)),
    }
    return out


def wins_losses(rows: list[dict], methods: list[str]) -> dict[str, dict[str, dict[str, list[int]]]]:
    """``{a: {b: {metric: [wins, losses, ties]}}}`` of ``a`` against ``b`` over the pairs both
    were scored on, for every ``a`` before ``b`` in ``methods``."""
    by = {(r["pair"], r["method"]): r for r in rows}
    pair_names = sorted({r["pair"] for r in rows})
    out: dict = {}
    for a, b in combinations(methods, 2):
        out.setdefault(a, {})[b] = {}
        for k in WIN_METRICS:
            sign = 1.0 if metrics.HIGHER_IS_BETTER[k] else -1.0
            wlt = [0, 0, 0]
            for p in pair_names:
                ra, rb = by.get((p, a)), by.get((p, b))
                if ra is None or rb is None:
                    continue
                va, vb = ra[k], rb[k]
                if not (math.isfinite(va) and math.isfinite(vb)):
                    continue
                d = sign * (va - vb)
                wlt[0 if d > 0 else 1 if d < 0 else 2] += 1
            out[a][b][k] = wlt
    return out


def _cell(s: dict[str, float], digits: int) -> str:
    if s["n"] == 0:
        return "—"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def summary_markdown(summary: dict, wins: dict, methods: list[str], meta: dict) -> str:
    """The Markdown report: run details, the mean ± std table, the wins/losses table."""
    digits = {"ssim": 3, "edge_ssim": 3, "lab_w1": 2, "gain": 3, "gram": 3}
    ref = summary[REFERENCE]
    heads = {
        "ssim": "ssim ↑",
        "edge_ssim": "edge_ssim ↑",
        "lab_w1": f"lab_w1 ↓ (content {ref['lab_w1']['mean']:.2f})",
        "gain": "gain ↑",
        "gram": f"gram ↓ (content {ref['gram']['mean']:.3f})",
    }
    lines = [
        f"# Evaluation on `{meta['pairs_dir']}`",
        "",
        f"{meta['pairs']} pairs · {meta['date']} · {meta['machine']} · precision "
        f"{meta['precision']} · max size {meta['max_size'] or 'original'} · masks "
        f"{'yes' if meta['masks'] else 'no'}",
        "",
        "Mean ± sample std over the pairs (metrics as defined in EVAL.md).",
        "",
        "| method | n | " + " | ".join(heads[k] for k in METRICS) + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    for m in [*methods, REFERENCE]:
        s = summary[m]
        n = max(v["n"] for v in s.values())
        cells = [_cell(s[k], digits[k]) for k in METRICS]
        lines.append(f"| {m} | {n} | " + " | ".join(cells) + " |")
    if len(methods) > 1:
        lines += [
            "",
            "Wins–losses(–ties) of the first method against the second, pair by pair "
            "(gain ranks as lab_w1).",
            "",
            "| method | vs | " + " | ".join(WIN_METRICS) + " |",
            "|---|---|" + "---|" * len(WIN_METRICS),
        ]
        for a, row in wins.items():
            for b, per in row.items():
                cells = []
                for k in WIN_METRICS:
                    w, lo, t = per[k]
                    cells.append(f"{w}–{lo}" + (f"–{t}" if t else ""))
                lines.append(f"| {a} | {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def contact_sheet(
    rows: list[tuple[str, list[Image.Image | None]]], titles: list[str], cell: int
) -> Image.Image:
    """One row per pair (its name in the corner), one column per title; ``None`` = no output."""
    header = 20
    sheet = Image.new("RGB", (cell * len(titles), header + cell * max(1, len(rows))), "white")
    draw = ImageDraw.Draw(sheet)
    for col, title in enumerate(titles):
        draw.text((col * cell + 4, 4), title, fill="black")
    for r, (name, cells) in enumerate(rows):
        y = header + r * cell
        for col, img in enumerate(cells):
            x = col * cell
            if img is None:
                draw.text((x + cell // 3, y + cell // 2), "missing", fill="gray")
                continue
            sheet.paste(img, (x + (cell - img.width) // 2, y + (cell - img.height) // 2))
        draw.text((4, y + 4), name, fill="white", stroke_width=1, stroke_fill="black")
    return sheet


# --- speed ---------------------------------------------------------------------------------


@dataclass
class SpeedRow:
    """Seconds per megapixel of one method at one size (``None``: out of memory)."""

    method: str
    size: int
    seconds_per_mp: float | None
    peak_bytes: int | None
    peak_kind: str
    params: int | None = None
    gflops_per_mp: float | None = None

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "size": self.size,
            "seconds_per_mp": self.seconds_per_mp,
            "peak_bytes": self.peak_bytes,
            "peak_kind": self.peak_kind,
            "params": self.params,
            "gflops_per_mp": self.gflops_per_mp,
        }


def _speed_photos(size: int) -> tuple[np.ndarray, np.ndarray]:
    from skimage import data

    def square(img: np.ndarray) -> np.ndarray:
        pil = Image.fromarray(img).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(pil, dtype=np.float64) / 255.0

    return square(data.astronaut()), square(data.coffee())


def _is_oom(err: BaseException) -> bool:
    return (
        isinstance(err, (torch.OutOfMemoryError, MemoryError))
        or "out of memory" in str(err).lower()
    )


def bench_speed(
    archs: tuple[str, ...] = ("photonas", "photonet", "wct5"),
    sizes: tuple[int, ...] = (512, 1024, 2048),
    device: str = "auto",
    precision: str = "fp32",
    repeats: int = 5,
    with_baselines: bool = True,
    on_step: Callable[[str, int], None] = lambda method, size: None,
) -> list[SpeedRow]:
    """Time a whole ``stylize(content, style)`` (style statistics included) of square
    ``size × size`` photos for each architecture, and each colour-transfer baseline on the
    CPU, in one process. Networks run with freshly initialised decoders: their speed does not
    depend on the weight values, so no trained weights are needed."""
    from .device import resolve_device
    from .genotype import resolve
    from .model import Stylizer

    dev = resolve_device(device)
    models = {}
    for arch in archs:
        models[arch] = Stylizer(resolve(arch), precision=precision).to(dev).eval()
    rows: list[SpeedRow] = []
    for arch, model in models.items():
        params = metrics.parameters(model.decoder)
        gflops = metrics.flops_per_megapixel(model.decoder) / 1e9
        for size in sizes:
            on_step(arch, size)
            c, s = _speed_photos(size)
            c_t = torch.from_numpy(c).float().permute(2, 0, 1)[None].to(dev)
            s_t = torch.from_numpy(s).float().permute(2, 0, 1)[None].to(dev)

            def run(model=model, c_t=c_t, s_t=s_t):
                return model.stylize(c_t, s_t)

            rows.append(_time_one(arch, size, run, repeats, dev, params, gflops))
            del c_t, s_t
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    if with_baselines:
        for name, fn in baselines.BASELINES.items():
            for size in sizes:
                on_step(name, size)
                c, s = _speed_photos(size)
                rows.append(_time_one(name, size, lambda fn=fn, c=c, s=s: fn(c, s), repeats, None))
    return rows


def _time_one(name, size, fn, repeats, device, params=None, gflops=None) -> SpeedRow:
    kind = "cuda_max_allocated" if device is not None and device.type == "cuda" else "rss"
    try:
        peak = metrics.peak_memory(fn, device or "cpu")  # doubles as the warm-up call
        spm = metrics.seconds_per_megapixel(fn, size * size, repeats, warmup=0, device=device)
    except (RuntimeError, MemoryError) as err:
        if not _is_oom(err):
            raise
        return SpeedRow(name, size, None, None, kind, params, gflops)
    return SpeedRow(name, size, spm, peak.bytes, peak.kind, params, gflops)


def _ratio(x: float) -> str:
    return f"{x:.2f}" if x >= 0.1 else f"{x:.2g}"


def speed_markdown(rows: list[SpeedRow], reference: str = "photonet") -> str:
    """One table: a row per method, seconds/megapixel (and the ratio to ``reference``) per
    size, decoder parameters and GFLOP/MP, peak memory at the largest size."""
    sizes = sorted({r.size for r in rows})
    methods = list(dict.fromkeys(r.method for r in rows))
    by = {(r.method, r.size): r for r in rows}
    big = sizes[-1]
    mem_kind = next((r.peak_kind for r in rows if r.peak_bytes is not None), "rss")
    lines = [
        "| method | params | GFLOP/MP | "
        + " | ".join(f"s/MP @{s}² (× {reference})" for s in sizes)
        + f" | peak MiB @{big}² ({mem_kind}) |",
        "|---|---|---|" + "---|" * len(sizes) + "---|",
    ]
    for m in methods:
        cells = []
        for s in sizes:
            r, ref = by.get((m, s)), by.get((reference, s))
            if r is None or r.seconds_per_mp is None:
                cells.append("OOM" if r is not None else "—")
                continue
            ratio = (
                f" ({_ratio(r.seconds_per_mp / ref.seconds_per_mp)}×)"
                if ref is not None and ref.seconds_per_mp
                else ""
            )
            cells.append(f"{r.seconds_per_mp:.3f}{ratio}")
        first = by[(m, sizes[0])]
        params = f"{first.params / 1e6:.2f} M" if first.params is not None else "—"
        gflops = f"{first.gflops_per_mp:.1f}" if first.gflops_per_mp is not None else "—"
        last = by.get((m, big))
        mem = "—"
        if last is not None and last.peak_bytes:
            mem = f"{last.peak_bytes / 2**20:.0f}"
            mem += f" ({last.peak_kind})" if last.peak_kind != mem_kind else ""
        lines.append(f"| {m} | {params} | {gflops} | " + " | ".join(cells) + f" | {mem} |")
    return "\n".join(lines) + "\n"

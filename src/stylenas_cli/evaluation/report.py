"""What an evaluation writes: per-pair score rows -> ``scores.csv``, the summary (mean ± std
per method and metric, wins/losses between methods) as Markdown, the contact sheet.

Everything here is a pure function of the rows (dicts with the keys of :data:`COLUMNS`)
except the two writers, which write atomically.
"""

from __future__ import annotations

import csv
import io
import math
import os
import platform
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..files import atomic_write
from .metrics import HIGHER_IS_BETTER

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
REFERENCE = "content (unchanged)"
SHEET_HEADER = 20  # px above the first row of the contact sheet, for the column titles


def machine_name(device: torch.device) -> str:
    """The GPU's name, or the CPU with its core and torch thread counts (for report headers)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
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
            sign = 1.0 if HIGHER_IS_BETTER[k] else -1.0
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


WORST = 5  # pairs shown first on the contact sheet, per metric


def worst_pairs(rows: list[dict], method: str, metric: str, n: int = WORST) -> list[tuple]:
    """The ``n`` pairs where ``method`` scores worst on ``metric`` (highest gram or lab_w1,
    lowest ssim, edge_ssim or gain), worst first, as ``(pair, value)``."""
    scored = [(r["pair"], float(r[metric])) for r in rows if r["method"] == method]
    scored = [(p, v) for p, v in scored if np.isfinite(v)]
    higher_is_worse = metric in ("gram", "lab_w1")
    return sorted(scored, key=lambda pv: pv[1], reverse=higher_is_worse)[:n]


def worst_markdown(rows: list[dict], methods: list[str]) -> str:
    """A Markdown table per method of its worst pairs by gram and by ssim."""
    lines = []
    for m in methods:
        by_gram, by_ssim = worst_pairs(rows, m, "gram"), worst_pairs(rows, m, "ssim")
        lines += [
            "",
            f"Worst pairs of {m} (first on the contact sheet):",
            "",
            "| rank | by gram | gram | by ssim | ssim |",
            "|---|---|---|---|---|",
        ]
        for i, ((pg, g), (ps, v)) in enumerate(zip(by_gram, by_ssim), 1):
            lines.append(f"| {i} | {pg} | {g:.3f} | {ps} | {v:.3f} |")
    return "\n".join(lines) + "\n" if lines else ""


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
        f"{'yes' if meta['masks'] else 'no'} · network at "
        + (
            f"{meta['work_size']} px, lifted ({meta['lift']})"
            if meta.get("work_size")
            else "native"
        ),
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


# --- files ---------------------------------------------------------------------------------


def write_csv(rows: list[dict], dest: Path) -> None:
    """The rows as ``scores.csv`` (:data:`COLUMNS`; floats to 6 significant digits, NaN and
    ``None`` as empty cells)."""

    def fmt(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        return f"{v:.6g}" if isinstance(v, float) else str(v)

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([fmt(r[c]) for c in COLUMNS])
    atomic_write(dest, lambda tmp: tmp.write_text(buf.getvalue(), encoding="utf-8"))


def save_png(image: np.ndarray, dest: Path) -> None:
    """An ``(H, W, 3)`` float image in [0, 1] as an 8-bit PNG."""
    img = Image.fromarray((image * 255.0 + 0.5).astype(np.uint8), "RGB")
    atomic_write(dest, lambda tmp: img.save(tmp, format="PNG"))


# --- contact sheet -------------------------------------------------------------------------


def thumb(image: np.ndarray, cell: int) -> Image.Image:
    """An ``(H, W, 3)`` float image in [0, 1] shrunk to fit a ``cell × cell`` square."""
    img = Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    img.thumbnail((cell, cell), Image.Resampling.LANCZOS)
    return img


def contact_sheet(
    rows: list[tuple[str, list[Image.Image | None]]], titles: list[str], cell: int
) -> Image.Image:
    """One row per pair (its name in the corner), one column per title; ``None`` = no output."""
    header = SHEET_HEADER
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

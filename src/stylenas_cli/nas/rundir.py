"""A search run on disk, durable across crashes.

::

    <run>/config.json     what the run searches and how (checked on --resume)
    <run>/records.jsonl   one line per finished candidate, appended and fsynced at once
    <run>/best.json       {"genotype", "checkpoint", "objectives", ...}: loads with
                          ``stylenas stylize --arch <run>/best.json``
    <run>/pareto.png      cost vs quality; Pareto front, winner and included genotypes marked
    <run>/candidates/     candidate decoders (only the best and the Pareto front are kept
                          unless asked to keep all)

A finished evaluation is on disk before anything else happens; a rerun with ``resume``
reads ``records.jsonl`` back as the engine's cache, so nothing finished is lost or repeated.
A torn last line (a kill in the middle of a write) is dropped.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import StylenasError
from ..files import atomic_write, jsonable, write_json
from ..genotype import N_BITS, NAMED, SEARCHABLE_BITS, Genotype
from .evolution import (
    Executor,
    Feasible,
    Normalise,
    Result,
    Scores,
    evolve,
    pareto_front,
    random_search,
)

CONFIG, RECORDS, BEST, PLOT, CANDIDATES = (
    "config.json",
    "records.jsonl",
    "best.json",
    "pareto.png",
    "candidates",  # <run>/candidates/<genotype>.pt, written by the objectives
)
# Settings a resumed run may change: they do not change what a candidate scores.
MAY_CHANGE = frozenset({"workers", "backend", "address", "budget", "keep_checkpoints"})
MAY_CHANGE |= {"final_steps", "device", "precision", "threads", "rerank", "rerank_seeds"}
STRATEGIES = ("evolution", "random")


class RunError(StylenasError):
    """A run directory or search plan that cannot be used as asked."""


def record_of(result: Result) -> dict:
    """One line of ``records.jsonl`` (NaN and infinities as null: strict JSON)."""
    s = result.scores
    info = jsonable(s.info)
    return {
        "index": result.index,
        "genotype": str(result.genotype),
        "objectives": jsonable(s.objectives),
        "fitness": None if s.failed else s.fitness,
        "train_seconds": info.pop("train_seconds", None),
        "seconds": round(result.seconds, 3),
        "worker": result.worker,
        "attempts": result.attempts,
        "error": s.error,
        "checkpoint": info.pop("checkpoint", None),
        "info": info,
        "finished": time.time(),
    }


def read_jsonl(path: Path) -> list[dict]:
    """Every line of a JSON-lines file appended by :func:`append_jsonl`, in order; a torn
    last line (a kill in the middle of a write) is dropped; none for a missing file."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    out = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(lines) - 1:
                break
            raise RunError(f"{path}: line {n + 1} is not JSON") from None
    return out


def repair_jsonl(path: Path) -> None:
    """Drop a torn last line of ``path`` so that appends start on a line of their own."""
    if path.exists() and (text := path.read_text()) and not text.endswith("\n"):
        good = "".join(json.dumps(r) + "\n" for r in read_jsonl(path))
        atomic_write(path, lambda tmp: tmp.write_text(good))


def append_jsonl(path: Path, record: dict) -> None:
    """Append one line, on disk (fsynced) before anything else happens."""
    with open(path, "a") as f:
        f.write(json.dumps(jsonable(record)) + "\n")
        f.flush()
        os.fsync(f.fileno())


def scores_of(record: dict) -> Scores:
    """The engine's :class:`Scores` of one record (a failure's fitness is infinite)."""
    info = dict(record.get("info") or {})
    for key in ("train_seconds", "checkpoint"):
        if record.get(key) is not None:
            info[key] = record[key]
    fitness = record.get("fitness")
    return Scores(
        dict(record.get("objectives") or {}),
        math.inf if fitness is None else float(fitness),
        info,
        record.get("error"),
    )


@dataclass
class Plan:
    """How to search (the engine's side of config.json)."""

    strategy: str = "evolution"
    budget: int = 24
    population: int = 8
    sample: int = 3
    seed: int = 0
    include: tuple[Genotype, ...] = ()
    space: tuple[int, ...] = SEARCHABLE_BITS
    axes: tuple[str, str] = ("gflops", "quality")  # (cost, quality) of the Pareto plot
    keep_checkpoints: bool = False
    title: str = "search"
    feasible: Feasible | None = None  # a constraint every proposed genotype meets
    normalise: Normalise | None = None  # one name per network: equivalent genotypes are one

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise RunError(f"unknown strategy {self.strategy!r}: use {' or '.join(STRATEGIES)}")
        if self.budget < 1:
            raise RunError(f"budget must be at least 1, got {self.budget}")
        if self.strategy == "evolution" and not 1 <= self.sample <= self.population:
            raise RunError(
                f"need 1 <= sample <= population, got {self.sample} and {self.population}"
            )
        outside = [g for g in self.include if any(g.bits[i] == "1" for i in self._off)]
        if outside:
            raise RunError(f"included genotype {outside[0]} is outside the search space")
        if self.feasible:
            barred = [g for g in self.include if not self.feasible(g)]
            if barred:
                raise RunError(f"included genotype {barred[0]} does not meet the cost cap")

    @property
    def _off(self) -> list[int]:
        return [i for i in range(N_BITS) if i not in set(self.space)]


@dataclass
class Run:
    """A run directory; see the module docstring."""

    path: Path
    _tail_ok: bool = field(default=True, repr=False)

    @classmethod
    def open(cls, path: str | Path, config: dict, resume: bool = False) -> Run:
        """Create ``path`` for a new run, or reopen it with ``resume`` (the config must
        match but for :data:`MAY_CHANGE`). A run with no finished candidate yet is simply
        started again."""
        run = cls(Path(path))
        config = jsonable(config)
        if (run.path / CONFIG).exists() and run.records():
            if not resume:
                raise RunError(
                    f"{run.path} already holds a run: pass --resume to continue it or "
                    "choose another --out"
                )
            old = json.loads((run.path / CONFIG).read_text())
            changed = [
                f"{k} was {old.get(k)!r}, now {config.get(k)!r}"
                for k in sorted(set(old) | set(config))
                if k not in MAY_CHANGE and old.get(k) != config.get(k)
            ]
            if changed:
                raise RunError(f"cannot resume {run.path}: {'; '.join(changed)}")
            run._repair()
        elif (run.path / RECORDS).exists():
            raise RunError(f"{run.path} has records but no {CONFIG}: not a run directory")
        write_json(run.path / CONFIG, config)
        return run

    @property
    def records_path(self) -> Path:
        """``<run>/records.jsonl``."""
        return self.path / RECORDS

    def records(self) -> list[dict]:
        """Every finished candidate so far, in finishing order (a torn last line dropped)."""
        return read_jsonl(self.records_path)

    def _repair(self) -> None:
        """Drop a torn last line so that appends start on a line of their own."""
        repair_jsonl(self.records_path)

    def cache(self) -> dict[Genotype, Scores]:
        """Every finished candidate's scores: the engine never evaluates these again."""
        return {Genotype(r["genotype"]): scores_of(r) for r in self.records()}

    def append(self, result: Result) -> dict:
        """Record a finished candidate, on disk (fsynced) before anything else happens."""
        record = record_of(result)
        append_jsonl(self.records_path, record)
        return record

    # --- outputs ------------------------------------------------------------------------

    def summary(self, plan: Plan) -> dict:
        """Winner, Pareto front and counts over every record; writes best.json and the plot,
        and deletes candidate checkpoints that are neither (unless they are kept)."""
        records = self.records()
        ok = [r for r in records if r.get("error") is None]
        if not ok:
            return {"evaluated": len(records), "failed": len(records), "best": None}
        winner = min(ok, key=lambda r: r["fitness"])
        front = [ok[i] for i in pareto_front([[r["objectives"][a] for a in plan.axes] for r in ok])]
        best = {
            "genotype": winner["genotype"],
            "checkpoint": winner.get("checkpoint"),
            "objectives": winner["objectives"],
            "fitness": winner["fitness"],
            "strategy": plan.strategy,
            "evaluated": len(records),
            "failed": len(records) - len(ok),
            "pareto_front": [{"genotype": r["genotype"], **r["objectives"]} for r in front],
        }
        old = self.best()
        if old and old.get("genotype") == best["genotype"] and "final" in old:
            best["checkpoint"], best["final"] = old["checkpoint"], old["final"]
        self.write_best(best)
        if not plan.keep_checkpoints:
            keep = {winner["genotype"], *(r["genotype"] for r in front)}
            self.tidy({r["genotype"] for r in records} - keep)
        marks = {str(g): _label(g) for g in plan.include}
        plot_pareto(self.path / PLOT, ok, plan.axes, winner["genotype"], marks, plan.title)
        return best

    def best(self) -> dict | None:
        """``best.json`` as written last, or None before the first summary."""
        path = self.path / BEST
        return json.loads(path.read_text()) if path.exists() else None

    def write_best(self, best: dict) -> Path:
        return write_json(self.path / BEST, best)

    def tidy(self, drop: set[str]) -> None:
        """Delete the checkpoints of these genotypes (never one still being evaluated)."""
        for g in drop:
            (self.path / CANDIDATES / f"{g}.pt").unlink(missing_ok=True)


def _label(g: Genotype) -> str:
    return next((name for name, n in NAMED.items() if n == g), str(g)[:8] + "…")


def execute(
    run: Run,
    plan: Plan,
    executor: Executor,
    on_result: Callable[[Result, dict], None] | None = None,
) -> dict:
    """Run (or continue) the search of ``plan`` in ``run``; returns the summary."""
    cache = run.cache()

    def record(result: Result) -> None:
        run.append(result)
        summary = run.summary(plan)
        if on_result:
            on_result(result, summary)

    kwargs = dict(
        space=plan.space,
        include=plan.include,
        executor=executor,
        cache=cache,
        on_result=record,
        feasible=plan.feasible,
        normalise=plan.normalise,
    )
    rng = random.Random(plan.seed)
    if plan.strategy == "evolution":
        evolve(None, plan.budget, plan.population, plan.sample, rng, **kwargs)
    else:
        random_search(None, plan.budget, rng, **kwargs)
    if not plan.keep_checkpoints:  # nothing is in flight now: drop leftovers of a crash
        recorded = {r["genotype"] for r in run.records()}
        run.tidy({f.stem for f in (run.path / CANDIDATES).glob("*.pt")} - recorded)
    return run.summary(plan)


# --- the plot -----------------------------------------------------------------------------


def plot_pareto(
    dest: Path,
    records: Sequence[dict],
    axes: tuple[str, str],
    winner: str | None = None,
    marks: dict[str, str] | None = None,
    title: str = "",
) -> Path:
    """Cost (x, log scale when it spans a decade) vs quality (y), lower is better on both;
    every candidate grey, the Pareto front blue, the winner red, ``marks`` orange.

    Drawn with PIL (no plotting library needed)."""
    from PIL import Image, ImageDraw, ImageFont

    marks = marks or {}
    w, h, left, right, top, bottom = 900, 620, 90, 30, 80, 70
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    pts = [(r["objectives"][axes[0]], r["objectives"][axes[1]], r["genotype"]) for r in records]
    xs, ys = [p[0] for p in pts] or [1.0], [p[1] for p in pts] or [1.0]
    log_x = min(xs) > 0 and max(xs) / min(xs) >= 10

    def tx(v: float) -> float:
        return math.log10(v) if log_x else v

    x0, x1 = _padded(min(map(tx, xs)), max(map(tx, xs)))
    y0, y1 = _padded(min(ys), max(ys))

    def px(x: float, y: float) -> tuple[float, float]:
        return (
            left + (tx(x) - x0) / (x1 - x0) * (w - left - right),
            h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom),
        )

    draw.rectangle([left, top, w - right, h - bottom], outline="black")
    for k in range(6):
        gx = x0 + (x1 - x0) * k / 5
        sx = left + (w - left - right) * k / 5
        draw.line([sx, top, sx, h - bottom], fill=(230, 230, 230))
        draw.text((sx, h - bottom + 6), _fmt(10**gx if log_x else gx), "black", font, "ma")
        gy = y0 + (y1 - y0) * k / 5
        sy = h - bottom - (h - top - bottom) * k / 5
        draw.line([left, sy, w - right, sy], fill=(230, 230, 230))
        draw.text((left - 6, sy), _fmt(gy), "black", font, "rm")
    draw.rectangle([left, top, w - right, h - bottom], outline="black")
    xlabel = f"{axes[0]} (cost, lower is better{', log scale' if log_x else ''})"
    draw.text(((left + w - right) / 2, h - 25), xlabel, "black", font, "ma")
    draw.text((10, top - 24), f"{axes[1]} (lower is better)", "black", font)
    draw.text(((left + w - right) / 2, 12), title, "black", font, "ma")

    front = sorted(pts[i] for i in pareto_front([p[:2] for p in pts]))
    if len(front) > 1:  # a staircase: the boundary of what the front dominates
        steps = [front[0][:2]]
        for (_, y_prev, _), (x, y, _) in zip(front, front[1:]):
            steps += [(x, y_prev), (x, y)]
        draw.line([px(x, y) for x, y in steps], fill=(40, 90, 200), width=2)
    for x, y, g in pts:
        cx, cy = px(x, y)
        on_front = any(g == f[2] for f in front)
        colour = (40, 90, 200) if on_front else (150, 150, 150)
        draw.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], fill=colour)
        if g in marks:
            draw.polygon([(cx, cy - 8), (cx + 8, cy), (cx, cy + 8), (cx - 8, cy)], outline="orange")
            draw.text((cx + 10, cy - 8), marks[g], (200, 110, 0), font)
        if g == winner:
            draw.ellipse([cx - 9, cy - 9, cx + 9, cy + 9], outline="red", width=3)
            draw.text((cx + 10, cy + 4), "winner", "red", font)
    legend = [((150, 150, 150), "candidate"), ((40, 90, 200), "Pareto front")]
    legend += [("red", "winner (scalarised)"), ("orange", "included genotype")]
    for k, (colour, text) in enumerate(legend):  # one row above the plot
        lx, ly = w - right - 680 + 170 * k, 44
        if k < 2:
            draw.ellipse([lx - 4, ly - 4, lx + 4, ly + 4], fill=colour)
        elif k == 2:
            draw.ellipse([lx - 6, ly - 6, lx + 6, ly + 6], outline=colour, width=2)
        else:
            draw.polygon([(lx, ly - 6), (lx + 6, ly), (lx, ly + 6), (lx - 6, ly)], outline=colour)
        draw.text((lx + 11, ly), text, "black", font, "lm")
    return atomic_write(dest, lambda tmp: img.save(tmp, format="PNG"))


def _padded(lo: float, hi: float) -> tuple[float, float]:
    pad = (hi - lo) * 0.08 or max(abs(lo) * 0.1, 1e-3)
    return lo - pad, hi + pad


def _fmt(v: float) -> str:
    return f"{v:.3g}"

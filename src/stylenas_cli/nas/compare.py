"""Search strategies side by side: aging evolution against random search at the same budget,
over several seeds, on one (cheap, memoised) fitness.

:func:`compare_strategies` runs each strategy once per seed and returns, for each, the best
fitness after every model (the "best after N models" curves), their mean and standard
deviation over the seeds, and each run's winner. :class:`ScoreBook` memoises an objective on
disk, one JSON line per genotype, so the runs share evaluations and a stopped comparison
resumes where it was.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

from ..genotype import Genotype
from .evolution import Evaluate, Feasible, Normalise, Result, Scores, evolve, random_search

STRATEGIES = ("evolution", "random")


class ScoreBook:
    """``evaluate`` memoised in memory and in ``path`` (JSON lines ``{"genotype",
    "objectives", "fitness", "error", "info"}``; a torn last line is ignored)."""

    def __init__(self, evaluate: Evaluate, path: str | Path | None = None) -> None:
        self.evaluate = evaluate
        self.path = Path(path) if path else None
        self.scores: dict[Genotype, Scores] = {}
        self.new = 0
        if self.path and self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                fitness = math.inf if row["fitness"] is None else row["fitness"]
                self.scores[Genotype(row["genotype"])] = Scores(
                    row["objectives"], fitness, row.get("info", {}), row.get("error")
                )

    def __call__(self, genotype: Genotype) -> Scores:
        if genotype not in self.scores:
            scores = self.evaluate(genotype)
            self.scores[genotype] = scores
            self.new += 1
            if self.path:
                fitness = scores.fitness if math.isfinite(scores.fitness) else None
                row = {"genotype": str(genotype), "objectives": scores.objectives,
                       "fitness": fitness, "error": scores.error, "info": scores.info}  # fmt: skip
                with self.path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
        return self.scores[genotype]


def best_so_far(results: Sequence[Result]) -> list[float]:
    """Best fitness after each model, in proposal order (failures count as models)."""
    curve, best = [], math.inf
    for r in sorted(results, key=lambda r: r.index):
        best = min(best, r.fitness)
        curve.append(best)
    return curve


def run_strategy(
    strategy: str,
    evaluate: Evaluate,
    budget: int,
    seed: int,
    space: Sequence[int],
    population: int = 50,
    sample: int = 10,
    feasible: Feasible | None = None,
    normalise: Normalise | None = None,
) -> list[Result]:
    """One search of ``budget`` distinct models (no shared cache: each run counts its own),
    within ``feasible`` and naming networks by ``normalise`` as the search does."""
    rng = random.Random(seed)
    rules = {"space": space, "feasible": feasible, "normalise": normalise}
    if strategy == "evolution":
        return evolve(evaluate, budget, population, sample, rng, **rules)
    if strategy == "random":
        return random_search(evaluate, budget, rng, **rules)
    raise ValueError(f"unknown strategy {strategy!r}; use one of {STRATEGIES}")


def _distinct(results: list[Result]) -> list[Result]:
    """The first result of each genotype (repeated proposals are not new models)."""
    seen, out = set(), []
    for r in sorted(results, key=lambda r: r.index):
        if r.genotype not in seen:
            seen.add(r.genotype)
            out.append(r)
    return out


def compare_strategies(
    evaluate: Evaluate,
    budget: int,
    seeds: Sequence[int],
    space: Sequence[int],
    population: int = 50,
    sample: int = 10,
    strategies: Sequence[str] = STRATEGIES,
    on_run: Callable[[str, int, list[float]], None] | None = None,
    feasible: Feasible | None = None,
    normalise: Normalise | None = None,
) -> dict:
    """Each strategy once per seed at ``budget`` models (``feasible``, ``normalise``: as
    :func:`run_strategy`). Returns ``{strategy: {"curves": [[best after n models]...],
    "mean": [...], "std": [...], "final": [...], "winners": [...]}}`` plus ``"budget"``,
    ``"seeds"``; ``on_run(strategy, seed, curve)`` after each."""
    report: dict = {"budget": budget, "seeds": list(seeds)}
    for strategy in strategies:
        curves, winners = [], []
        for seed in seeds:
            results = _distinct(
                run_strategy(
                    strategy, evaluate, budget, seed, space, population, sample, feasible, normalise
                )
            )
            curve = best_so_far(results)
            curves.append(curve)
            winners.append(str(min(results, key=lambda r: r.fitness).genotype))
            if on_run:
                on_run(strategy, seed, curve)
        columns = list(zip(*curves))
        report[strategy] = {
            "curves": curves,
            "mean": [statistics.fmean(c) for c in columns],
            "std": [statistics.pstdev(c) for c in columns],
            "final": [c[-1] for c in curves],
            "winners": winners,
        }
    return report


def summary_line(report: dict, strategy: str) -> str:
    """``strategy: best after N models mean ± std (over k seeds)``."""
    final = report[strategy]["final"]
    sd = statistics.pstdev(final)
    return (
        f"{strategy}: best fitness after {report['budget']} models "
        f"{statistics.fmean(final):.4f} ± {sd:.4f} over {len(final)} seeds"
    )

"""Benchmarking: score our networks, the colour-transfer baselines and other methods' outputs
on a folder of content/style pairs (``stylenas eval``), and time them (``stylenas bench-speed``).

- :mod:`.pairs`: the pair-folder layout, :func:`find_pairs` (the one pair finder), label maps
- :mod:`.metrics`: the metrics of EVAL.md (ssim, edge_ssim, lab_w1, gain, gram) and cost helpers
- :mod:`.baselines`: the colour-transfer baselines (Reinhard, histogram matching)
- :mod:`.runner`: one evaluation run, :func:`evaluate` with :class:`EvalConfig`
- :mod:`.report`: summaries, wins/losses, the Markdown, CSV and contact sheet
- :mod:`.speed`: the speed benchmark and its table
"""

from __future__ import annotations

from . import baselines, metrics
from .pairs import EvalError, Pair, find_pairs
from .report import (
    COLUMNS,
    METRICS,
    REFERENCE,
    contact_sheet,
    machine_name,
    summarise,
    summary_markdown,
    wins_losses,
)
from .runner import EvalConfig, EvalReport, Method, arch_label, evaluate
from .speed import SpeedReport, SpeedRow, bench_speed, speed_markdown

__all__ = [
    "COLUMNS",
    "METRICS",
    "REFERENCE",
    "EvalConfig",
    "EvalError",
    "EvalReport",
    "Method",
    "Pair",
    "SpeedReport",
    "SpeedRow",
    "arch_label",
    "baselines",
    "bench_speed",
    "contact_sheet",
    "evaluate",
    "find_pairs",
    "machine_name",
    "metrics",
    "speed_markdown",
    "summarise",
    "summary_markdown",
    "wins_losses",
]

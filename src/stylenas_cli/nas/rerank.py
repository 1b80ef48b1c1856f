"""Re-rank a supernet search's fittest candidates by short training (``search --rerank K``).

Weights inherited from the supernet rank genotypes less faithfully than a short training
from scratch does (``docs/search.md``, proxy fidelity), at a hundredth of its cost. So the
search runs on the supernet, then its ``K`` fittest genotypes (and the included ones, e.g.
``photonas``, as the reference) are each trained from scratch
with the run's training settings (``train_steps`` steps of ``batch`` crops of ``image_size``,
seeded by the run's seed and the genotype) and measured again on the same validation pairs
with the same objectives; the winner is the fittest after training.

::

    <run>/rerank.jsonl          one line per re-ranked genotype, appended and fsynced at once
    <run>/rerank/<decoder>.pt   its trained decoder (fp16; the genotype with its transfer
                                bits off, shared by its transfer variants): best.json names
                                the winner's

A rerun skips the genotypes already in ``rerank.jsonl``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..device import resolve_device
from ..files import atomic_write
from ..genotype import Genotype
from ..model import Stylizer
from .evolution import dominates, scalarise
from .objectives import derive_seed, short_train
from .proxy import SupernetObjective
from .rundir import Run, append_jsonl, read_jsonl, repair_jsonl

RERANK, RERANK_DIR = "rerank.jsonl", "rerank"

OnRerank = Callable[[dict], None]  # each re-ranked genotype's line of rerank.jsonl


def fittest(records: list[dict], k: int) -> list[str]:
    """The ``k`` fittest distinct genotypes of a run's records (failures left out)."""
    ok = sorted((r for r in records if r.get("fitness") is not None), key=lambda r: r["fitness"])
    return list(dict.fromkeys(r["genotype"] for r in ok))[:k]


def decoder_file(decoder: Genotype, seed_index: int) -> Path:
    """``rerank/<decoder>.pt`` for the first seed, ``rerank/<decoder>-s<k>.pt`` after."""
    suffix = f"-s{seed_index}" if seed_index else ""
    return Path(RERANK_DIR) / f"{decoder}{suffix}.pt"


def retrain(objective: SupernetObjective, genotype: Genotype, seeds: int = 1) -> dict:
    """Train ``genotype``'s decoder from scratch ``seeds`` times with ``objective``'s
    settings into ``<run>/rerank/`` and measure it; returns its line of ``rerank.jsonl``
    (the objectives averaged over the seeds; each seed's under ``per_seed``).

    Genotypes that differ only in transfer points share one decoder: it is trained once per
    seed (seeded by the decoder, not the genotype) and each of them is measured with it, so
    they differ by their WCTs alone, not by the luck of two trainings. Several seeds make
    two decoders' difference more than the luck of one training each."""
    t = objective.train
    if t.threads:
        torch.set_num_threads(t.threads)
    decoder = genotype.without_transfers()
    device = resolve_device(t.device)
    per_seed, losses, seconds = [], [], 0.0
    for i in range(seeds):
        checkpoint = decoder_file(decoder, i)
        path = Path(objective.run_dir) / checkpoint
        if path.is_file():  # trained for a genotype that shares its weights
            st = Stylizer.from_pretrained(str(genotype), path, str(device))
        else:
            seed = derive_seed(objective.seed, decoder if i == 0 else f"{decoder}:{i}")
            torch.manual_seed(seed)
            st = Stylizer(genotype).to(device)
            t0 = time.perf_counter()
            losses.append(short_train(st, t, seed))
            seconds += time.perf_counter() - t0
            state = {k: v.detach().half().cpu() for k, v in st.decoder.state_dict().items()}
            payload = {"genotype": str(decoder), "state_dict": state, "step": t.steps}
            atomic_write(path, lambda tmp, payload=payload: torch.save(payload, tmp))
        st.eval()
        st.weights_id = None  # no style cache: its entries are keyed by weights
        per_seed.append(objective.measure(st))
    objectives = {k: statistics.fmean(o[k] for o in per_seed) for k in per_seed[0]}
    line = {
        "genotype": str(genotype),
        "objectives": objectives,
        "fitness": scalarise(objectives, objective.weights),
        "train_seconds": round(seconds, 3),
        "train_loss": statistics.fmean(losses) if losses else None,
        "checkpoint": str(decoder_file(decoder, 0)),  # what best.json loads
        "seeds": seeds,
    }
    if seeds > 1:
        line["per_seed"] = per_seed
    return line


def rerank(
    run: Run,
    objective: SupernetObjective,
    k: int,
    on_rerank: OnRerank | None = None,
    also: Sequence[Genotype | str] = (),
    seeds: int = 1,
) -> list[dict]:
    """Re-rank the run's ``k`` fittest genotypes and ``also`` (the included ones: the
    reference trained alike), each trained ``seeds`` times, as in the module docstring;
    fittest first. A line of another number of seeds is measured again (its trainings
    are reused)."""
    path = run.path / RERANK
    repair_jsonl(path)
    done = {r["genotype"]: r for r in read_jsonl(path) if r.get("seeds", 1) == seeds}
    chosen = list(dict.fromkeys(fittest(run.records(), k) + [str(g) for g in also]))
    for g in chosen:
        if g not in done:
            done[g] = line = retrain(objective, Genotype(g), seeds)
            append_jsonl(path, line)
        if on_rerank:
            on_rerank(done[g])
    return sorted((done[g] for g in chosen), key=lambda r: r["fitness"])


DOMINANCE = ("dssim", "gram", "gflops")  # what a network must not lose to the reference on


def dominates_reference(row: dict, reference: dict) -> bool:
    """``row`` is no worse than ``reference`` in structure, style and cost
    (:data:`DOMINANCE`) and better in one: a network that could replace it."""
    a, b = row["objectives"], reference["objectives"]
    return dominates([a[k] for k in DOMINANCE], [b[k] for k in DOMINANCE])


def reranked_summary(summary: dict, ranked: list[dict], reference: str | None = None) -> dict:
    """The search's summary with the re-ranked winner in place of the supernet's (which is
    kept as ``supernet_winner``) and every re-ranked genotype listed under ``rerank``, each
    marked when it dominates the ``reference`` genotype (the first included one) after
    training alike."""
    win = ranked[0]
    ref = next((r for r in ranked if r["genotype"] == reference), None)
    rows = [{k: r[k] for k in ("genotype", "fitness", "objectives")} for r in ranked]
    if ref is not None:
        rows = [r | {"dominates_reference": dominates_reference(r, ref)} for r in rows]
    return {
        **summary,
        "genotype": win["genotype"],
        "checkpoint": win["checkpoint"],
        "objectives": win["objectives"],
        "fitness": win["fitness"],
        "supernet_winner": {k: summary[k] for k in ("genotype", "objectives", "fitness")},
        "rerank": rows,
        "rerank_reference": reference if ref is not None else None,
    }

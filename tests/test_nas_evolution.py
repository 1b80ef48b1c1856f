"""The search engine (nas.evolution) and durable run directories (nas.rundir) on toy fitness
functions: no training, no torch in the evaluations."""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from pathlib import Path

import pytest
from PIL import Image

from stylenas_cli.errors import StylenasError
from stylenas_cli.genotype import N_BITS, NAMED, SEARCHABLE_BITS, UNUSED_BIT, Genotype
from stylenas_cli.nas.evolution import (
    LocalPool,
    Scores,
    Serial,
    best,
    dominates,
    evolve,
    make_executor,
    mutate,
    mutate_feasible,
    pareto_front,
    random_feasible,
    random_genotype,
    random_search,
    scalarise,
)
from stylenas_cli.nas.rundir import Plan, Run, RunError, execute

TARGET = random_genotype(random.Random(123))  # hidden from the search
AXES = ("n_on", "distance")


def distance(g: Genotype) -> int:
    return sum(a != b for a, b in zip(g.bits, TARGET.bits))


def toy(g: Genotype) -> Scores:
    """Hamming distance to the hidden target, plus a per-genotype jitter in [0, 0.5)."""
    jitter = random.Random(str(g)).random() / 2
    return Scores.of({"distance": distance(g) + jitter, "n_on": g.n_on}, {"distance": 1.0})


BAD = NAMED["photonet"]


def toy_raising(g: Genotype) -> Scores:
    if g == BAD:
        raise RuntimeError("boom")
    return toy(g)


def toy_dying(g: Genotype) -> Scores:
    if g == BAD:
        os._exit(3)  # the worker process dies
    time.sleep(0.1)  # still busy when the other worker dies
    return toy(g)


class Counting:
    def __init__(self, fn=toy) -> None:
        self.fn, self.calls = fn, []

    def __call__(self, g: Genotype) -> Scores:
        self.calls.append(g)
        return self.fn(g)


def _trace(results) -> list[tuple[str, float]]:
    return [(str(r.genotype), r.fitness) for r in results]


# --- genotypes ----------------------------------------------------------------------------


def test_mutate_flips_exactly_one_searchable_bit():
    rng = random.Random(0)
    flipped = set()
    for _ in range(500):
        g = random_genotype(rng)
        child = mutate(g, rng)
        diff = [i for i in range(N_BITS) if g.bits[i] != child.bits[i]]
        assert len(diff) == 1 and diff[0] in SEARCHABLE_BITS
        flipped |= set(diff)
    assert flipped == set(SEARCHABLE_BITS)  # every searchable bit, never the unused one
    teacher = NAMED["photonas"]
    space = [i for i, b in enumerate(teacher.bits) if b == "1"]
    for _ in range(100):
        g = random_genotype(rng, space)
        assert g.is_subnet_of(teacher) and mutate(g, rng, space).is_subnet_of(teacher)
    assert all(random_genotype(rng).bits[UNUSED_BIT] == "0" for _ in range(50))


# --- scores and the Pareto front ----------------------------------------------------------


def test_scalarise_and_scores():
    assert scalarise({"a": 2.0, "b": 3.0, "c": 99.0}, {"a": 0.5, "b": 2.0}) == 7.0
    with pytest.raises(KeyError, match="missing"):
        scalarise({"a": 1.0}, {"missing": 1.0})
    s = Scores.of({"a": 2, "b": 1}, {"a": 1.0, "b": -1.0}, note="x")
    assert s.fitness == 1.0 and s.info == {"note": "x"} and not s.failed
    assert Scores.failure("oops").failed


@pytest.mark.parametrize("dims", [2, 3])
def test_pareto_front_is_exactly_the_non_dominated_points(dims):
    rng = random.Random(dims)
    points = [[rng.randint(0, 6) for _ in range(dims)] for _ in range(120)]  # with ties
    front = set(pareto_front(points))
    for i, p in enumerate(points):
        dominated = any(dominates(q, p) for q in points)
        assert (i in front) == (not dominated)
    assert pareto_front([[1, 2], [1, 2], [2, 1], [2, 2]]) == [0, 1, 2]


# --- the loops ----------------------------------------------------------------------------


def test_evolution_is_deterministic_under_a_seed():
    runs = [evolve(toy, 30, 8, 3, random.Random(seed)) for seed in (7, 7, 8)]
    assert _trace(runs[0]) == _trace(runs[1])
    assert _trace(runs[0]) != _trace(runs[2])
    assert len({r.genotype for r in runs[0]}) == 30


def test_evolution_beats_random_search_at_equal_budget():
    # Lower fitness is better. (Over seeds 0-39 evolution wins or ties all 40 runs.)
    evo, rnd = [], []
    for seed in range(8):
        evo.append(best(evolve(toy, 80, 10, 3, random.Random(seed))).fitness)
        rnd.append(best(random_search(toy, 80, random.Random(seed))).fitness)
    assert all(e <= r for e, r in zip(evo, rnd)), (evo, rnd)
    assert statistics.mean(evo) < statistics.mean(rnd) - 2, (evo, rnd)


def test_a_duplicate_genotype_is_evaluated_once():
    g = NAMED["photonas"]
    fn = Counting()
    results = random_search(fn, 3, random.Random(0), include=(g, g, g))
    assert fn.calls.count(g) == 1 and len(fn.calls) == 3
    assert [r.attempts for r in results[:3]] == [1, 0, 0]  # 0: served from the cache
    # A 3-bit space has 8 genotypes: evolution proposes many duplicates, trains each once.
    fn = Counting()
    results = evolve(fn, 8, 4, 2, random.Random(1), space=(0, 5, 9))
    assert sorted(map(str, fn.calls)) == sorted({str(r.genotype) for r in results})
    assert len(fn.calls) == 8 and len(results) > 8


def test_a_failing_evaluation_is_retried_once_then_recorded_as_failed():
    fn = Counting(toy_raising)
    results = random_search(fn, 3, random.Random(0), include=(BAD,))
    bad = next(r for r in results if r.genotype == BAD)
    assert fn.calls.count(BAD) == 2 and bad.attempts == 2
    assert bad.scores.failed and "RuntimeError: boom" in bad.scores.error
    assert sum(not r.scores.failed for r in results) == 2  # the others are unaffected

    flaky_calls = []

    def flaky(g: Genotype) -> Scores:
        flaky_calls.append(g)
        if len(flaky_calls) == 1:
            raise OSError("transient")
        return toy(g)

    (result,) = random_search(flaky, 1, random.Random(0), include=(BAD,))
    assert result.attempts == 2 and not result.scores.failed


def test_local_pool_matches_serial_and_survives_failures():
    serial = random_search(toy_raising, 9, random.Random(3), include=(BAD,))
    pool = LocalPool(toy_raising, 2, context="fork")
    try:
        results = random_search(None, 9, random.Random(3), include=(BAD,), executor=pool)
        evo = evolve(None, 10, 4, 2, random.Random(3), executor=pool)
    finally:
        pool.close()
    # Same genotypes, same scores (the failure too), whatever the finishing order.
    assert {r.genotype: r.scores for r in results} == {r.genotype: r.scores for r in serial}
    assert len({r.worker for r in results}) == 2  # both workers took candidates
    (bad,) = [r for r in results if r.genotype == BAD]
    assert bad.scores.failed and bad.attempts == 2
    assert all(r.scores == toy(r.genotype) for r in evo)


def test_a_dead_worker_process_is_retried_then_recorded():
    pool = LocalPool(toy_dying, 2, context="fork")
    try:
        results = random_search(None, 4, random.Random(0), include=(BAD,), executor=pool)
    finally:
        pool.close()
    # The bystander that was running when the pool died is rerun alone and succeeds.
    assert {r.genotype for r in results} >= {BAD} and len(results) == 4
    for r in results:
        assert r.scores.failed == (r.genotype == BAD)
        assert r.scores == toy(r.genotype) or r.genotype == BAD
    assert [r.attempts for r in results if r.genotype == BAD] == [2]
    assert any(r.attempts == 2 for r in results if r.genotype != BAD)  # the bystander
    assert "worker process died" in next(r for r in results if r.genotype == BAD).scores.error


def test_ray_backend_scores_equal_the_local_ones():
    ray = pytest.importorskip("ray")
    import sys

    # Ray workers cannot import this test module: ship the toy fitness by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    local = {r.genotype: r.scores for r in random_search(toy, 6, random.Random(5))}
    pool = make_executor(toy, 2, "ray", init_kwargs={"num_cpus": 2, "include_dashboard": False})
    try:
        remote = random_search(None, 6, random.Random(5), executor=pool)
    finally:
        pool.close()
    assert {r.genotype: r.scores for r in remote} == local


def at_most(n: int):
    """A toy cost cap: at most ``n`` bits on."""
    return lambda g: g.n_on <= n


def test_a_cost_cap_bounds_every_proposal_and_samples_the_feasible_set_uniformly():
    rng = random.Random(0)
    space = (0, 1, 2, 3)  # 16 genotypes; at most one bit on: 5 of them
    draws = [random_feasible(rng, space, at_most(1)) for _ in range(5000)]
    counts = {g: draws.count(g) for g in set(draws)}
    assert len(counts) == 5 and all(g.n_on <= 1 for g in counts)
    assert max(counts.values()) / min(counts.values()) < 1.2  # uniform over the feasible
    for _ in range(200):
        parent = random_feasible(rng, SEARCHABLE_BITS, at_most(6))
        child = mutate_feasible(parent, rng, SEARCHABLE_BITS, at_most(6))
        assert child.n_on <= 6 and sum(a != b for a, b in zip(parent.bits, child.bits)) == 1
    stuck = Genotype("1" + "0" * 31)  # no flip stays feasible: the parent comes back
    assert mutate_feasible(stuck, rng, (0,), lambda g: g == stuck) == stuck
    with pytest.raises(StylenasError, match="constraint"):
        random_feasible(rng, space, lambda g: False)


@pytest.mark.parametrize("strategy", ["evolution", "random"])
def test_a_capped_search_evaluates_only_feasible_genotypes(strategy):
    fn = Counting()
    rng = random.Random(3)
    if strategy == "evolution":
        results = evolve(fn, 40, 8, 3, rng, feasible=at_most(8))
    else:
        results = random_search(fn, 40, rng, feasible=at_most(8))
    assert len(set(fn.calls)) == 40 and all(g.n_on <= 8 for g in fn.calls)
    assert all(r.genotype.n_on <= 8 for r in results)


def test_a_converged_population_still_buys_new_networks():
    # 10 bits, a smooth fitness: the population soon holds copies of one optimum whose
    # one-bit neighbours are all known; its mutants must walk on to new networks.
    space = tuple(SEARCHABLE_BITS[:10])
    fn = Counting()
    results = evolve(fn, 300, 20, 10, random.Random(2), space=space, max_proposals=3000)
    assert len(set(fn.calls)) == len(fn.calls) == 300
    assert len({r.genotype for r in results}) == 300


def test_normalised_proposals_make_equivalent_genotypes_one_model():
    def fold(g: Genotype) -> Genotype:  # a toy equivalence: bits 16+ never matter
        return Genotype(g.bits[:16] + "0" * 16)

    for strategy in ("evolution", "random"):
        fn = Counting()
        rng = random.Random(5)
        if strategy == "evolution":
            results = evolve(fn, 30, 8, 3, rng, normalise=fold, max_proposals=5000)
        else:
            results = random_search(fn, 30, rng, normalise=fold, max_proposals=5000)
        assert len(fn.calls) == len(set(fn.calls)) == 30  # 30 distinct networks scored
        assert all(fold(g) == g for g in fn.calls) and all(
            fold(r.genotype) == r.genotype for r in results
        )


# --- durable runs -------------------------------------------------------------------------


def _plan(**kw) -> Plan:
    base = dict(budget=12, population=4, sample=2, seed=11, axes=AXES, include=(NAMED["photonas"],))
    return Plan(**(base | kw))


def test_resume_after_a_crash_repeats_nothing_and_loses_nothing(tmp_path: Path):
    config = {"toy": True}
    full = Run.open(tmp_path / "full", config)
    summary = execute(full, _plan(), Serial(toy))
    records = full.records()
    assert len(records) == 12 and summary["evaluated"] == 12
    assert (full.path / "pareto.png").exists() and Image.open(full.path / "pareto.png").size
    best_json = json.loads((full.path / "best.json").read_text())
    assert best_json["genotype"] == min(records, key=lambda r: r["fitness"])["genotype"]

    # The crash: 5 candidates on disk, the 6th torn in the middle of its line.
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    (crashed / "config.json").write_text(json.dumps(config))
    lines = (full.path / "records.jsonl").read_text().splitlines(keepends=True)
    (crashed / "records.jsonl").write_text("".join(lines[:5]) + lines[5][:40])
    with pytest.raises(RunError, match="--resume"):
        Run.open(crashed, config)
    run = Run.open(crashed, config, resume=True)
    fn = Counting()
    execute(run, _plan(), Serial(fn))
    assert [str(g) for g in fn.calls] == [r["genotype"] for r in records[5:]]
    resumed = run.records()
    assert [r["genotype"] for r in resumed] == [r["genotype"] for r in records]
    assert len({r["genotype"] for r in resumed}) == len(resumed)

    # Resuming a finished run evaluates nothing; a bigger budget only the extra ones.
    fn = Counting()
    execute(Run.open(crashed, config, resume=True), _plan(), Serial(fn))
    assert fn.calls == []
    execute(Run.open(crashed, config, resume=True), _plan(budget=15), Serial(fn))
    assert len(fn.calls) == 3 and len(run.records()) == 15


def test_a_failed_candidate_is_recorded_and_not_retried_on_resume(tmp_path: Path):
    run = Run.open(tmp_path, {})
    plan = _plan(budget=3, include=(BAD,), strategy="random")
    execute(run, plan, Serial(toy_raising))
    (bad,) = [r for r in run.records() if r["genotype"] == str(BAD)]
    assert bad["fitness"] is None and bad["attempts"] == 2 and "boom" in bad["error"]
    fn = Counting(toy_raising)
    execute(Run.open(tmp_path, {}, resume=True), plan, Serial(fn))
    assert fn.calls == []


def test_resume_refuses_a_different_search(tmp_path: Path):
    Run.open(tmp_path, {"seed": 2})
    Run.open(tmp_path, {"seed": 1})  # nothing finished yet: simply started again
    execute(Run.open(tmp_path, {"seed": 1, "workers": 1}), _plan(budget=1), Serial(toy))
    Run.open(tmp_path, {"seed": 1, "workers": 4}, resume=True)  # workers may change
    with pytest.raises(RunError, match="seed was 1, now 2"):
        Run.open(tmp_path, {"seed": 2, "workers": 1}, resume=True)


def test_plan_checks_its_settings():
    # User errors: one clean line from the command line, and still ValueErrors.
    with pytest.raises(StylenasError, match="strategy"):
        Plan(strategy="annealing")
    with pytest.raises(StylenasError, match="sample"):
        Plan(population=3, sample=5)
    with pytest.raises(StylenasError, match="outside"):
        Plan(space=(0, 1), include=(NAMED["photonet"],))
    with pytest.raises(StylenasError, match="cost cap"):
        Plan(include=(NAMED["photonet"],), feasible=at_most(8))
    with pytest.raises(StylenasError, match="backend"):
        make_executor(toy, 1, "slurm")
    with pytest.raises(ValueError, match="sample"):
        evolve(toy, 3, 2, 3, random.Random(0))

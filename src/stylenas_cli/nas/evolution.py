"""Architecture search engine (SPEC §5): pure functions over genotypes, no torch, no click.

The loop never trains anything itself: it takes an ``evaluate(genotype) -> Scores`` callable,
so tests drive it with a toy fitness and :mod:`.objectives` plugs in the real ones.

- :func:`random_genotype`, :func:`mutate` — sampling and one-bit mutation inside a *space*
  (the bits that may be on: every searchable bit, or the teacher's bits when pruning);
  with a ``feasible`` predicate (a cost cap) both stay inside it: uniform over the feasible
  genotypes by rejection, and a flip drawn among the feasible ones.
- :func:`evolve` — aging (regularized) evolution; :func:`random_search` — the baseline at the
  same budget. Both stop after ``budget`` distinct genotypes; a genotype already in ``cache``
  is never evaluated again (duplicates and resumed runs cost nothing).
- Child ``i`` draws its randomness from ``(seed, i)`` alone, so a serial run is reproducible
  and a resumed run replays its history from the cache and continues where it stopped.
- Executors evaluate children: :class:`Serial` (in process), :class:`LocalPool` (worker
  processes, asynchronous: a finished worker takes the next child at once) and
  :class:`RayPool` (Ray tasks, optional). Each retries a failed evaluation once, then records
  it as failed — never drops it.
"""

from __future__ import annotations

import math
import os
import random
import socket
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import Protocol

from ..errors import StylenasError
from ..genotype import N_BITS, SEARCHABLE_BITS, Genotype
from ..raycluster import CONNECT_TIMEOUT, import_ray, init_ray

RETRIES = 1  # a failed evaluation is tried once more, then recorded as failed

Evaluate = Callable[[Genotype], "Scores"]
Feasible = Callable[[Genotype], bool]  # a constraint, e.g. a cost cap; None: every genotype
Normalise = Callable[[Genotype], Genotype]  # one name per network (equivalent bits off)
MAX_DRAWS = 100_000  # random draws to find one feasible genotype before giving up


class SearchError(StylenasError):
    """A search that cannot run as asked (its settings, its backend)."""


# --- scores -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    """Every objective of one candidate, each a cost (lower is better), and their weighted
    sum ``fitness``. ``info`` holds what is not an objective (train time, checkpoint...)."""

    objectives: dict[str, float]
    fitness: float
    info: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    @classmethod
    def of(cls, objectives: Mapping[str, float], weights: Mapping[str, float], **info) -> Scores:
        """Scalarise ``objectives``; a non-finite fitness (a diverged training) is a failure
        that keeps its objectives."""
        objectives = {k: float(v) for k, v in objectives.items()}
        fitness = scalarise(objectives, weights)
        if math.isfinite(fitness):
            return cls(objectives, fitness, info)
        return cls(objectives, math.inf, info, f"non-finite fitness ({fitness})")

    @classmethod
    def failure(cls, error: str) -> Scores:
        """A candidate that could not be scored: no objectives, infinite fitness."""
        return cls({}, math.inf, error=error)


def scalarise(objectives: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """``Σ weight·objective`` over the weighted objectives (lower is better)."""
    missing = [k for k, w in weights.items() if w and k not in objectives]
    if missing:
        raise KeyError(f"weighted objective(s) {missing} not among {sorted(objectives)}")
    return float(sum(w * objectives[k] for k, w in weights.items() if w))


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` is no worse than ``b`` everywhere and better somewhere (minimisation)."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points (every coordinate minimised), in input order."""
    return [i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)]


# --- genotypes ----------------------------------------------------------------------------


def random_genotype(rng: random.Random, space: Sequence[int] = SEARCHABLE_BITS) -> Genotype:
    """Each bit of ``space`` on with probability 1/2; every other bit off."""
    bits = ["0"] * N_BITS
    for i in space:
        bits[i] = rng.choice("01")
    return Genotype("".join(bits))


def mutate(
    genotype: Genotype, rng: random.Random, space: Sequence[int] = SEARCHABLE_BITS
) -> Genotype:
    """Flip exactly one bit of ``space``."""
    return genotype.flip(rng.choice(space))


def random_feasible(
    rng: random.Random, space: Sequence[int], feasible: Feasible | None
) -> Genotype:
    """:func:`random_genotype` drawn again until ``feasible``: uniform over the feasible
    genotypes of ``space``."""
    if feasible is None:
        return random_genotype(rng, space)
    for _ in range(MAX_DRAWS):
        g = random_genotype(rng, space)
        if feasible(g):
            return g
    raise SearchError(f"no genotype met the constraint in {MAX_DRAWS} random draws: loosen it")


def mutate_feasible(
    genotype: Genotype, rng: random.Random, space: Sequence[int], feasible: Feasible | None
) -> Genotype:
    """:func:`mutate` restricted to the flips that stay ``feasible`` (each equally likely);
    ``genotype`` itself when none does."""
    if feasible is None:
        return mutate(genotype, rng, space)
    for i in rng.sample(list(space), len(space)):
        child = genotype.flip(i)
        if feasible(child):
            return child
    return genotype  # a duplicate: it costs nothing and the search draws again


def check_space(space: Iterable[int]) -> tuple[int, ...]:
    """``space`` as a sorted tuple; it must be a non-empty set of searchable bits."""
    space = tuple(sorted(set(space)))
    if not space or not set(space) <= set(SEARCHABLE_BITS):
        raise SearchError(f"a search space is a non-empty set of searchable bits, got {space}")
    return space


# --- results and executors ----------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One finished child: its scores and how they were obtained."""

    genotype: Genotype
    scores: Scores
    seconds: float = 0.0
    worker: str = ""
    attempts: int = 0  # 0: taken from the cache
    index: int = -1  # position in the search's proposal order

    @property
    def fitness(self) -> float:
        return self.scores.fitness


def worker_name() -> str:
    """``host:pid`` of this process (which worker evaluated a candidate)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def attempt(evaluate: Evaluate, genotype: Genotype) -> tuple[Scores | None, str, float, str]:
    """Run ``evaluate`` once: (scores or None, error text, seconds, worker).

    Exceptions come back as text: some cannot be pickled across processes."""
    t0 = time.perf_counter()
    try:
        scores, error = evaluate(genotype), ""
    except Exception as err:  # any failure of one candidate is that candidate's
        scores = None
        error = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=4)}"
    return scores, error, time.perf_counter() - t0, worker_name()


class Executor(Protocol):
    """Evaluates submitted genotypes, ``slots`` at a time; results in finishing order."""

    slots: int

    def submit(self, genotype: Genotype) -> None: ...

    def next_result(self) -> Result: ...

    def close(self) -> None: ...


class _Retrying:
    """Retry bookkeeping shared by the executors."""

    def _settle(self, g: Genotype, tries: int, out, suspect: bool = False) -> Result | None:
        """A finished attempt -> a Result, or None when it was resubmitted."""
        scores, error, seconds, worker = out
        if scores is not None:
            return Result(g, scores, seconds, worker, tries)
        if tries <= RETRIES:
            self._launch(g, tries + 1, suspect)
            return None
        last = error.strip().splitlines()[0] if error.strip() else "unknown error"
        return Result(g, Scores.failure(f"{last} (after {tries} attempts)"), seconds, worker, tries)

    def _launch(self, g: Genotype, tries: int, suspect: bool = False) -> None:
        raise NotImplementedError


class Serial(_Retrying):
    """Evaluate in this process, one child at a time."""

    slots = 1

    def __init__(self, evaluate: Evaluate) -> None:
        self.evaluate = evaluate
        self._queue: deque[tuple[Genotype, int]] = deque()

    def submit(self, genotype: Genotype) -> None:
        self._launch(genotype, 1)

    def _launch(self, g: Genotype, tries: int, suspect: bool = False) -> None:
        self._queue.append((g, tries))

    def next_result(self) -> Result:
        while True:
            g, tries = self._queue.popleft()
            result = self._settle(g, tries, attempt(self.evaluate, g))
            if result is not None:
                return result

    def close(self) -> None:
        self._queue.clear()


DIED = (None, "worker process died (killed, out of memory or crashed)", 0.0, "?")


class LocalPool(_Retrying):
    """``workers`` local processes; results come back in the order they finish.

    A worker process that dies takes the whole pool down with every task in it, and nobody
    can tell whose fault it was: each lost task is charged one attempt and rerun *alone*, so
    the culprit fails on its own and the bystanders do not.

    ``context``: the multiprocessing start method; ``spawn`` (default) is safe with torch
    and CUDA, ``fork`` starts faster when the evaluation does not use torch threads."""

    def __init__(self, evaluate: Evaluate, workers: int, context: str = "spawn") -> None:
        import multiprocessing

        if workers < 1:
            raise SearchError(f"workers must be at least 1, got {workers}")
        self.evaluate, self.slots = evaluate, workers
        self._ctx = multiprocessing.get_context(context)
        self._pool = ProcessPoolExecutor(workers, mp_context=self._ctx)
        self._running: dict[Future, tuple[Genotype, int]] = {}
        self._queue: deque[tuple[Genotype, int]] = deque()
        self._suspects: deque[tuple[Genotype, int]] = deque()
        self._alone = False  # a suspect is running alone
        self._ready: deque[Result] = deque()

    def submit(self, genotype: Genotype) -> None:
        self._launch(genotype, 1)

    def _launch(self, g: Genotype, tries: int, suspect: bool = False) -> None:
        (self._suspects if suspect else self._queue).append((g, tries))
        self._dispatch()

    def _dispatch(self) -> None:
        while not self._alone:
            if self._suspects:
                if self._running:
                    return  # wait for the pool to empty, then run the suspect alone
                (g, tries), self._alone = self._suspects.popleft(), True
            elif self._queue and len(self._running) < self.slots:
                g, tries = self._queue.popleft()
            else:
                return
            self._running[self._pool.submit(attempt, self.evaluate, g)] = (g, tries)

    def next_result(self) -> Result:
        while not self._ready:
            done, _ = wait(list(self._running), return_when=FIRST_COMPLETED)
            for future in done:
                if future not in self._running:
                    continue  # lost with a broken pool, already handled
                g, tries = self._running.pop(future)
                try:
                    out = future.result()
                except BrokenProcessPool:
                    self._restart([(g, tries)])
                    continue
                except Exception as err:  # e.g. the evaluation could not be pickled
                    out = (None, f"{type(err).__name__}: {err}", 0.0, "?")
                self._alone = False
                result = self._settle(g, tries, out)
                if result is not None:
                    self._ready.append(result)
            self._dispatch()
        return self._ready.popleft()

    def _restart(self, lost: list[tuple[Genotype, int]]) -> None:
        lost += list(self._running.values())
        self._running.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = ProcessPoolExecutor(self.slots, mp_context=self._ctx)
        self._alone = False
        for g, tries in lost:
            result = self._settle(g, tries, DIED, suspect=True)
            if result is not None:
                self._ready.append(result)

    def close(self) -> None:
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()  # do not wait for a long training to finish
        self._running.clear()
        self._queue.clear()
        self._suspects.clear()


class RayPool(_Retrying):
    """Evaluations as Ray tasks (``pip install 'stylenas-cli[ray]'``).

    ``address``: a running cluster (``ray://...`` or ``auto``, reached within
    ``connect_timeout`` seconds), else a local Ray is started.
    ``workers``: tasks in flight (default: the cluster's CPUs). Each task asks for
    ``cpus_per_task`` CPUs and ``gpus_per_task`` GPUs. Workers must see the same paths
    (data folders, run directory) as this process: a shared filesystem."""

    def __init__(
        self,
        evaluate: Evaluate,
        workers: int | None = None,
        address: str | None = None,
        cpus_per_task: float = 1,
        gpus_per_task: float = 0,
        init_kwargs: dict | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        ray = import_ray()
        self._ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            init_ray(ray, address, connect_timeout, **(init_kwargs or {}))
        self.slots = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        remote = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=0)
        self._task = remote(attempt)
        self._evaluate = ray.put(evaluate)
        self._running: dict = {}

    def submit(self, genotype: Genotype) -> None:
        self._launch(genotype, 1)

    def _launch(self, g: Genotype, tries: int, suspect: bool = False) -> None:
        self._running[self._task.remote(self._evaluate, g)] = (g, tries)

    def next_result(self) -> Result:
        while True:
            (ref,), _ = self._ray.wait(list(self._running), num_returns=1)
            g, tries = self._running.pop(ref)
            try:
                out = self._ray.get(ref)
            except Exception as err:  # the worker died or the task could not run
                out = (None, f"{type(err).__name__}: {err}", 0.0, "?")
            result = self._settle(g, tries, out)
            if result is not None:
                return result

    def close(self) -> None:
        for ref in self._running:
            self._ray.cancel(ref, force=True)
        self._running.clear()
        if self._owns:
            self._ray.shutdown()


def make_executor(
    evaluate: Evaluate,
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    context: str = "spawn",
    **ray_kwargs,
) -> Executor:
    """``local`` with 1 worker: in process; ``local`` with N: N processes; ``ray``: Ray tasks."""
    if backend == "ray":
        return RayPool(evaluate, workers, address, **ray_kwargs)
    if backend != "local":
        raise SearchError(f"unknown backend {backend!r}: use local or ray")
    return Serial(evaluate) if workers == 1 else LocalPool(evaluate, workers, context)


# --- the search loops ---------------------------------------------------------------------

# (child index, its random source, whether a genotype was proposed before)
Propose = Callable[[int, random.Random, Callable[[Genotype], bool]], Genotype]


def _drive(
    propose: Propose,
    accept: Callable[[Result], None],
    executor: Executor,
    budget: int,
    rng: random.Random,
    cache: dict[Genotype, Scores] | None,
    on_result: Callable[[Result], None] | None,
    max_proposals: int | None,
    normalise: Normalise | None = None,
) -> list[Result]:
    """Keep every slot busy until ``budget`` distinct genotypes are evaluated (or found in
    ``cache``); returns every finished child in finishing order, cache hits included.

    ``on_result`` sees each *new* evaluation once, as it finishes (to record it).
    ``normalise``: each proposal is renamed by it first, so equivalent genotypes are one
    model (a mutant equivalent to its parent is a free duplicate)."""
    base = rng.getrandbits(64)
    cache = {} if cache is None else cache
    max_proposals = budget * 50 if max_proposals is None else max_proposals
    history: list[Result] = []
    known = set(cache)  # distinct genotypes finished, in flight or cached
    waiting: dict[Genotype, list[int]] = {}  # in flight -> indices of the children waiting
    index = 0

    def name(g: Genotype) -> Genotype:
        return normalise(g) if normalise else g

    proposed: set[Genotype] = set()  # by this loop so far: a resumed run replays it exactly

    def is_known(g: Genotype) -> bool:
        return name(g) in proposed

    def finish(result: Result) -> None:
        history.append(result)
        accept(result)

    while True:
        while len(waiting) < executor.slots and len(known) < budget and index < max_proposals:
            g = name(propose(index, random.Random(f"{base}:{index}"), is_known))
            proposed.add(g)
            if g in cache:
                finish(Result(g, cache[g], index=index))
            elif g in waiting:
                waiting[g].append(index)
            else:
                waiting[g] = [index]
                known.add(g)
                executor.submit(g)
            index += 1
        if not waiting:
            return history
        result = executor.next_result()
        cache[result.genotype] = result.scores
        indices = waiting.pop(result.genotype)
        result = replace(result, index=indices[0])
        if on_result:
            on_result(result)
        finish(result)
        for i in indices[1:]:
            finish(replace(result, attempts=0, index=i))


def evolve(
    evaluate: Evaluate | None,
    budget: int,
    population: int,
    sample: int,
    rng: random.Random,
    *,
    space: Sequence[int] = SEARCHABLE_BITS,
    include: Sequence[Genotype] = (),
    executor: Executor | None = None,
    cache: dict[Genotype, Scores] | None = None,
    on_result: Callable[[Result], None] | None = None,
    max_proposals: int | None = None,
    feasible: Feasible | None = None,
    normalise: Normalise | None = None,
) -> list[Result]:
    """Aging (regularized) evolution (Real et al. 2019; SPEC §5).

    The first ``population`` children are ``include`` then random genotypes. After that,
    each child is a one-bit mutant of the fittest of ``sample`` members drawn at random from
    the population (the ``population`` youngest finished models): when it finishes it joins
    the population and the oldest member retires. Failed children take no place in it. A
    mutant that was proposed before is mutated again, a bit at a time, until it is new (a
    converged population would otherwise propose only known networks).
    ``feasible``: random genotypes and mutants are drawn among the genotypes it accepts;
    ``normalise``: see :func:`_drive`."""
    if not 1 <= sample <= population:
        raise SearchError(
            f"need 1 <= sample <= population, got sample {sample}, population {population}"
        )
    space = check_space(space)
    alive: deque[Result] = deque(maxlen=population)  # appending retires the oldest

    def propose(i: int, r: random.Random, known: Callable[[Genotype], bool]) -> Genotype:
        if i < len(include):
            return include[i]
        if i < population or not alive:
            return random_feasible(r, space, feasible)
        contenders = r.sample(list(alive), min(sample, len(alive)))
        parent = min(contenders, key=lambda c: c.fitness)
        child = mutate_feasible(parent.genotype, r, space, feasible)
        for _ in range(len(space)):  # a known child mutates on: the budget buys new networks
            if not known(child):
                break
            child = mutate_feasible(child, r, space, feasible)
        return child

    def accept(result: Result) -> None:
        if not result.scores.failed:
            alive.append(result)

    executor = executor or Serial(evaluate)
    return _drive(
        propose, accept, executor, budget, rng, cache, on_result, max_proposals, normalise
    )


def random_search(
    evaluate: Evaluate | None,
    budget: int,
    rng: random.Random,
    *,
    space: Sequence[int] = SEARCHABLE_BITS,
    include: Sequence[Genotype] = (),
    executor: Executor | None = None,
    cache: dict[Genotype, Scores] | None = None,
    on_result: Callable[[Result], None] | None = None,
    max_proposals: int | None = None,
    feasible: Feasible | None = None,
    normalise: Normalise | None = None,
) -> list[Result]:
    """The baseline: ``include`` then independent random (``feasible``) genotypes, same
    budget rules."""
    space = check_space(space)

    def propose(i: int, r: random.Random, known: Callable[[Genotype], bool]) -> Genotype:
        return include[i] if i < len(include) else random_feasible(r, space, feasible)

    executor = executor or Serial(evaluate)

    def accept(result: Result) -> None:  # random search keeps no population
        pass

    return _drive(
        propose, accept, executor, budget, rng, cache, on_result, max_proposals, normalise
    )


def best(results: Iterable[Result]) -> Result | None:
    """The fittest result that did not fail (the first among equals)."""
    ok = [r for r in results if not r.scores.failed]
    return min(ok, key=lambda r: r.fitness) if ok else None

"""A whole search or prune from Python, no click: :func:`search` (StyleNAS) and :func:`prune`
(PhotoNAS P-step), each driven by a config dataclass.

::

    from stylenas_cli.nas import SearchConfig, search

    summary = search(SearchConfig("runs/search", "photos/", "pairs/", budget=24, workers=2))
    summary["genotype"], summary["run"]  # the winner; <run>/best.json loads with --arch

Both check the inputs before touching the run directory, open it (``resume`` continues it),
prepare the validation data once, evaluate the candidates with the chosen executor (see
:mod:`.rundir` for what lands on disk), then train the winner ``final_steps`` more steps into
``<run>/winner.pt``. They return the summary: ``best.json`` plus ``run`` and
``wall_seconds``. Progress comes back through optional callbacks, so a caller draws its own
progress bars (the command line, :mod:`stylenas_cli.cli.search`, is a thin layer over this).
Ctrl-C loses nothing finished: rerun with ``resume=True``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..evaluation import find_pairs
from ..files import exclusive_dir
from ..genotype import SEARCHABLE_BITS, Genotype, resolve
from ..model import Stylizer
from ..raycluster import CONNECT_TIMEOUT
from ..train import list_images
from ..weights import resolve_arch_and_weights, sha256_of, weights_dir
from .evolution import Result, SearchError, make_executor
from .objectives import (
    PSTEP_WEIGHTS,
    STYLENAS_WEIGHTS,
    GflopsCap,
    PStepObjective,
    StyleNASObjective,
    TrainSettings,
    gflops,
    prepare_pstep,
    prepare_stylenas,
    train_winner,
)
from .proxy import PROXY_SPACE, PROXY_WEIGHTS, SupernetObjective, prepare_proxy, search_genotype
from .rerank import RERANK, OnRerank, rerank, reranked_summary
from .rundir import Plan, Run, execute, read_jsonl

AXES = ("gflops", "quality")  # (cost, quality) of the Pareto plot

# on_start(phase, total, done, info): phase "search" (total: the budget, done: candidates
# finished by an earlier run), "rerank" (total: genotypes re-ranked, done: by an earlier
# run) or "final" (total: the winner's steps, info: its genotype).
OnStart = Callable[[str, int, int, str], None]
OnResult = Callable[[Result, dict], None]  # each new candidate and the summary so far
OnStep = Callable[[int, dict], None]  # (step, info) of the winner's training
Log = Callable[[str], None]
# (run, training settings, validation pairs) -> (objective, search space, plot title)
Prepare = Callable[[Run, TrainSettings, str], tuple[Callable, tuple[int, ...], str]]


@dataclass
class RunConfig:
    """What a search and a prune share (the options of ``stylenas search`` and ``prune``)."""

    out: str | Path  # the run directory
    train_data: str | Path  # training photos (searched recursively; every 20th held aside)
    val_pairs: str | Path  # content/ and style/ subfolders of same-named photos
    val_count: int = 4  # validation pairs used, evenly spread over the folder
    val_size: int = 128  # side of the square centre crops candidates are measured on
    strategy: str = "evolution"  # or "random": the baseline at the same budget
    population: int = 8  # aging-evolution population (the paper: 50)
    sample: int = 3  # contenders drawn from the population to pick a parent (the paper: 10)
    budget: int = 24  # distinct genotypes trained and evaluated in all (the paper: 200)
    # Evaluated first and marked in the plot: names or 32-bit strings (a str: comma-separated).
    include: str | Sequence[str | Genotype] = ("photonas",)
    train_steps: int = 100  # reconstruction training steps per candidate
    image_size: int = 64  # training crop side
    batch: int = 4  # photos per step
    lr: float = 5e-4  # peak learning rate (warm-up, cosine)
    precision: str = "auto"  # training autocast; auto: bf16 on CUDA, fp32 on the CPU
    workers: int = 1  # candidates in parallel: local processes, or Ray tasks in flight
    backend: str = "local"  # or "ray" (pip install 'stylenas-cli[ray]')
    address: str | None = None  # Ray cluster (ray://host:10001 or auto); None: a local Ray
    connect_timeout: float = CONNECT_TIMEOUT  # seconds to reach `address`
    gpus_per_task: float = 0.0  # GPUs each Ray task asks for (fractions share a GPU)
    device: str = "auto"  # where each candidate trains: auto, cpu, cuda or cuda:N
    keep_checkpoints: bool = False  # keep every candidate's decoder, not only the front's
    seed: int = 0  # of the search and of each candidate's training
    resume: bool = False  # continue the run in `out`: finished candidates are not repeated
    final_steps: int = 0  # then train the winner this many more steps into <out>/winner.pt
    # Search only genotypes whose decoder costs at most this: GFLOPs at 512×512, or an
    # architecture's (a name or 32-bit string, e.g. "photonas"); None: no cap.
    max_gflops: float | str | None = None


PROXIES = ("supernet", "train")
SUPERNET_FILE = "supernet.pt"  # in the shipped weights folder


@dataclass
class SearchConfig(RunConfig):
    """StyleNAS. ``proxy`` "supernet": every bit the shipped pipeline uses (the decoder's own
    transfer points are off in it), each candidate's decoder inherited
    from ``supernet`` and scored on validation pairs of held-aside training photos
    (``val_pairs`` unused); "train": every searchable bit, each candidate trained
    ``train_steps`` and scored on reconstruction, stylisation of ``val_pairs`` and cost."""

    val_photos: int = 8  # held-aside training photos the reconstruction loss is measured on
    weights: dict[str, float] | None = None  # None: the proxy's defaults
    proxy: str = "supernet"
    supernet: str | Path | None = None  # None: the shipped weights/supernet.pt
    # supernet proxy: then train this many of the fittest (and the included genotypes) from
    # scratch (train_steps) and pick the winner among them (.rerank)
    rerank: int = 0
    rerank_seeds: int = 1  # trainings of each re-ranked decoder, their scores averaged


def supernet_file(path: str | Path | None) -> Path:
    """``path``, or the shipped supernet weights; a one-line error when missing."""
    path = Path(path) if path else weights_dir() / SUPERNET_FILE
    if not path.is_file():
        raise SearchError(
            f"supernet weights not found: {path} (train them with `stylenas supernet` "
            "or pass --proxy train)"
        )
    return path.resolve()


@dataclass
class PruneConfig(RunConfig):
    """PhotoNAS P-step: sub-networks of a teacher, scored against its stylisations."""

    teacher: str = "photonet"  # a name, a 32-bit genotype or a run's best.json
    teacher_weights: str | Path | None = None  # None: the shipped weights of `teacher`
    warm_start: bool = True  # start each student from the teacher's matching layers
    weights: dict[str, float] = field(default_factory=lambda: dict(PSTEP_WEIGHTS))
    final_steps: int = 400


@dataclass(frozen=True)
class _Hooks:
    on_start: OnStart | None
    on_result: OnResult | None
    on_step: OnStep | None
    log: Log
    on_rerank: OnRerank | None = None


def search(
    config: SearchConfig,
    *,
    on_start: OnStart | None = None,
    on_result: OnResult | None = None,
    on_step: OnStep | None = None,
    on_rerank: OnRerank | None = None,
    log: Log = print,
) -> dict:
    """StyleNAS (SPEC §5): search decoder architectures in ``config.out``; returns the
    summary (module docstring). ``log`` gets the winner's training messages."""
    include = _genotypes(config.include)
    if config.proxy not in PROXIES:
        raise SearchError(f"unknown proxy {config.proxy!r}; use one of {', '.join(PROXIES)}")
    if config.proxy == "supernet":
        hooks = _Hooks(on_start, on_result, on_step, log, on_rerank)
        return _supernet_search(config, include, hooks)
    if config.rerank:
        raise SearchError("--rerank re-ranks a supernet search: use it with --proxy supernet")
    weights = dict(config.weights or STYLENAS_WEIGHTS)

    def prepare(run: Run, settings: TrainSettings, val_pairs: str):
        prepare_stylenas(
            run.path, settings.data, val_pairs, config.val_photos, config.val_count, config.val_size
        )
        objective = StyleNASObjective(str(run.path.resolve()), settings, weights, seed=config.seed)
        return objective, SEARCHABLE_BITS, f"StyleNAS {config.strategy}"

    extra = {"weights": weights, "val_photos": config.val_photos, "proxy": "train"}
    hooks = _Hooks(on_start, on_result, on_step, log)
    return _run("search", config, include, extra, prepare, hooks)


def _supernet_search(config: SearchConfig, include: tuple[Genotype, ...], hooks: _Hooks) -> dict:
    """The search with the supernet proxy: no candidate is trained."""
    weights = dict(config.weights or PROXY_WEIGHTS)
    _check_folder(config.train_data, "training data")  # the first thing a user gets wrong
    supernet = supernet_file(config.supernet)
    include = tuple(search_genotype(g) for g in include)  # the names it searches

    def prepare(run: Run, settings: TrainSettings, val_pairs: str):
        prepare_proxy(run.path, settings.data, config.val_count, config.val_size)
        objective = SupernetObjective(
            str(run.path.resolve()), str(supernet), settings, weights, seed=config.seed
        )
        return objective, PROXY_SPACE, f"StyleNAS {config.strategy} (supernet proxy)"

    extra = {
        "weights": weights,
        "proxy": "supernet",
        "supernet": f"{supernet}:{sha256_of(supernet)}",
        "rerank": config.rerank,
        "rerank_seeds": config.rerank_seeds,
        "canonical": True,  # equivalent genotypes are one candidate
    }

    def finish(run: Run, objective: SupernetObjective, summary: dict) -> dict:
        if not config.rerank:
            return summary
        done = len(read_jsonl(run.path / RERANK))
        total = config.rerank + len(include)  # at most: an included one may be among the fittest
        if hooks.on_start:
            hooks.on_start("rerank", total, min(done, total), "")

        def on_rerank(line: dict) -> None:
            hooks.log(f"re-ranked {line['genotype']}: fitness {line['fitness']:.4f} trained")
            if hooks.on_rerank:
                hooks.on_rerank(line)

        ranked = rerank(run, objective, config.rerank, on_rerank, include, config.rerank_seeds)
        reference = str(include[0]) if include else None
        summary = reranked_summary(summary, ranked, reference)
        run.write_best(summary)
        return summary

    return _run("search", config, include, extra, prepare, hooks, False, finish, search_genotype)


def prune(
    config: PruneConfig,
    *,
    on_start: OnStart | None = None,
    on_result: OnResult | None = None,
    on_step: OnStep | None = None,
    log: Log = print,
) -> dict:
    """PhotoNAS P-step (SPEC §5): prune the teacher into a small student in ``config.out``;
    returns the summary (module docstring)."""
    teacher, teacher_file = resolve_arch_and_weights(config.teacher, config.teacher_weights)
    include = _genotypes(config.include)
    bad = [g for g in include if not g.is_subnet_of(teacher)]
    if bad:
        raise SearchError(f"--include {bad[0]} is not a sub-network of the teacher {teacher}")
    teacher_id = f"{teacher_file.resolve()}:{sha256_of(teacher_file)}"
    weights = dict(config.weights)

    def prepare(run: Run, settings: TrainSettings, val_pairs: str):
        st = Stylizer.from_pretrained(teacher, teacher_file, config.device)
        prepare_pstep(run.path, val_pairs, config.val_count, config.val_size, st, teacher_id)
        init = str(teacher_file.resolve()) if config.warm_start else None
        objective = PStepObjective(
            str(run.path.resolve()), settings, weights, seed=config.seed, init=init
        )
        space = tuple(i for i, b in enumerate(teacher.bits) if b == "1")  # its sub-networks
        return objective, space, f"PhotoNAS P-step from {teacher}"

    extra = {
        "weights": weights,
        "teacher": str(teacher),
        "teacher_weights": teacher_id,
        "warm_start": config.warm_start,
    }
    hooks = _Hooks(on_start, on_result, on_step, log)
    return _run("prune", config, include, extra, prepare, hooks)


def _run(
    kind: str,
    config: RunConfig,
    include: tuple[Genotype, ...],
    extra: dict,
    prepare: Prepare,
    hooks: _Hooks,
    pairs: bool = True,
    finish: Callable[[Run, Callable, dict], dict] | None = None,
    normalise: Callable[[Genotype], Genotype] | None = None,
) -> dict:
    """What both share: check the data, open the run, search, train the winner.

    ``prepare(run, settings, val_pairs)`` writes the run's validation data and returns
    (objective, search space, plot title). ``pairs``: the objective reads ``val_pairs``.
    ``finish(run, objective, summary)``: what happens to the summary before the winner's
    training. ``normalise``: the one name of each proposed genotype's network."""
    t0 = time.perf_counter()
    train_data = _check_folder(config.train_data, "training data")
    val_pairs = _check_folder(config.val_pairs, "validation pairs") if pairs else ""
    list_images(train_data)  # fail on bad data before creating the run
    if pairs:
        find_pairs(val_pairs)
    settings = TrainSettings(
        data=train_data,
        steps=config.train_steps,
        batch=config.batch,
        size=config.image_size,
        lr=config.lr,
        device=config.device,
        precision=config.precision,
        threads=_threads(config.workers),
    )
    cap = None if config.max_gflops is None else GflopsCap.of(config.max_gflops)
    barred = [g for g in include if cap and not cap(g)]
    if barred:  # before the run folder is made
        raise SearchError(
            f"--include {barred[0]} costs {gflops(barred[0]):.1f} GFLOPs: it does not meet "
            f"the cost cap of {cap.limit:.1f} (--max-gflops)"
        )
    saved = _saved_config(kind, config, include, settings, val_pairs) | extra
    saved["max_gflops"] = None if cap is None else round(cap.limit, 6)
    # one process per run folder: two would interleave their records
    with exclusive_dir(config.out, kind):
        run = Run.open(config.out, saved, config.resume)
        objective, space, title = prepare(run, settings, val_pairs)
        plan = Plan(
            config.strategy,
            config.budget,
            config.population,
            config.sample,
            config.seed,
            include,
            space,
            AXES,
            config.keep_checkpoints,
            title,
            cap,
            normalise,
        )
        ray = {"gpus_per_task": config.gpus_per_task, "connect_timeout": config.connect_timeout}
        ray = ray if config.backend == "ray" else {}
        executor = make_executor(objective, config.workers, config.backend, config.address, **ray)
        try:
            if hooks.on_start:
                hooks.on_start("search", plan.budget, min(len(run.records()), plan.budget), "")
            summary = execute(run, plan, executor, hooks.on_result)
        finally:
            executor.close()  # frees the workers (and their GPU memory) before the final training
        if summary.get("genotype") is None:
            raise SearchError(f"every candidate failed: see {run.records_path}")
        if finish:
            summary = finish(run, objective, summary)
        if config.final_steps:
            summary = _train_final(run, objective, summary, config.final_steps, hooks)
        return {"run": str(run.path), **summary, "wall_seconds": round(time.perf_counter() - t0, 1)}


def _train_final(run: Run, objective, summary: dict, steps: int, hooks: _Hooks) -> dict:
    """Train the winner ``steps`` more steps; best.json then names winner.pt."""
    if hooks.on_start:
        hooks.on_start("final", steps, 0, summary["genotype"])
    genotype = Genotype(summary["genotype"])
    start = summary["checkpoint"] if "rerank" in summary else None  # trained beats inherited
    dest, objectives, seconds = train_winner(
        objective, genotype, steps, hooks.log, hooks.on_step, start
    )
    final = {"steps": steps, "train_seconds": round(seconds, 1), **objectives}
    summary = {**summary, "checkpoint": dest.name, "final": final}
    run.write_best(summary)
    return summary


def _saved_config(
    kind: str,
    config: RunConfig,
    include: tuple[Genotype, ...],
    settings: TrainSettings,
    val_pairs: str,
) -> dict:
    """``config.json``: what the run searches and how (a resume must match it but for
    :data:`~.rundir.MAY_CHANGE`)."""
    keys = ("strategy", "population", "sample", "budget", "seed", "val_count", "val_size")
    keys += ("workers", "backend", "address", "final_steps", "keep_checkpoints")
    where = ("device", "precision", "threads")  # how candidates run, not what they score
    return {
        "command": kind,
        **{k: getattr(config, k) for k in keys},
        "include": [str(g) for g in include],
        "train": {k: v for k, v in vars(settings).items() if k not in where},
        "val_pairs": val_pairs,
        "device": config.device,
        "precision": config.precision,
    }


def _genotypes(include: str | Sequence[str | Genotype]) -> tuple[Genotype, ...]:
    """Names, 32-bit strings or genotypes (a string: comma-separated) -> genotypes."""
    items = include.split(",") if isinstance(include, str) else include
    return tuple(resolve(g.strip() if isinstance(g, str) else g) for g in items if str(g).strip())


def _check_folder(path: str | Path, what: str) -> str:
    """``path`` resolved, or a one-line error before anything is written."""
    path = Path(path)
    if not path.is_dir():
        raise SearchError(f"{what} folder not found: {path}")
    return str(path.resolve())


def _threads(workers: int) -> int:
    """Torch threads per worker: the cores shared out, unless OMP_NUM_THREADS is set."""
    if "OMP_NUM_THREADS" in os.environ:
        return 0
    return max(1, (os.cpu_count() or 1) // workers)

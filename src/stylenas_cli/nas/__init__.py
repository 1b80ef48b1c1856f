"""Architecture search (SPEC §5): StyleNAS and the PhotoNAS P-step.

- :mod:`.evolution` — the pure engine: scores, Pareto front, aging evolution and random
  search over genotypes, executors (in process, local processes, Ray). No torch.
- :mod:`.objectives` — what evaluating a candidate means: brief training, then the
  StyleNAS or P-step objectives on the run's validation data; the winner's final training.
- :mod:`.rundir` — a run directory on disk, durable across crashes and resumable.
- :mod:`.run` — a whole search or prune from Python: :func:`search`, :func:`prune`.
- :mod:`.supernet` — a weight-sharing PhotoNet supernet: any genotype's decoder inherits
  its weights (:func:`inherit`, :func:`decoder_for`); :func:`train_supernet` fine-tunes it.
"""

from .evolution import (
    Executor,
    LocalPool,
    RayPool,
    Result,
    Scores,
    SearchError,
    Serial,
    best,
    dominates,
    evolve,
    make_executor,
    mutate,
    pareto_front,
    random_genotype,
    random_search,
    scalarise,
)
from .objectives import (
    PSTEP_WEIGHTS,
    STYLENAS_WEIGHTS,
    PStepObjective,
    StyleNASObjective,
    TrainSettings,
    derive_seed,
    prepare_pstep,
    prepare_stylenas,
    pstep_score,
    resolve_precision,
    short_train,
    train_winner,
)
from .run import PruneConfig, RunConfig, SearchConfig, prune, search
from .rundir import Plan, Run, RunError, execute, plot_pareto
from .supernet import (
    SuperDecoder,
    SupernetConfig,
    SupernetError,
    decoder_for,
    export_supernet,
    inherit,
    sandwich,
    train_supernet,
)

__all__ = [
    "PSTEP_WEIGHTS",
    "STYLENAS_WEIGHTS",
    "Executor",
    "LocalPool",
    "Plan",
    "PStepObjective",
    "PruneConfig",
    "RayPool",
    "Result",
    "Run",
    "RunConfig",
    "RunError",
    "Scores",
    "SearchConfig",
    "SearchError",
    "Serial",
    "StyleNASObjective",
    "SuperDecoder",
    "SupernetConfig",
    "SupernetError",
    "TrainSettings",
    "best",
    "decoder_for",
    "derive_seed",
    "dominates",
    "evolve",
    "execute",
    "export_supernet",
    "inherit",
    "make_executor",
    "mutate",
    "pareto_front",
    "plot_pareto",
    "prepare_pstep",
    "prepare_stylenas",
    "prune",
    "pstep_score",
    "random_genotype",
    "random_search",
    "resolve_precision",
    "sandwich",
    "scalarise",
    "search",
    "short_train",
    "train_supernet",
    "train_winner",
]

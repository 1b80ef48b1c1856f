"""Jobs on Ray (``stylenas stylize --backend ray``; ``pip install 'stylenas-cli[ray]'``).

Ray Data streams the jobs through a pool of actors; each actor loads the model once and runs
:func:`~stylenas_cli.jobs.stylize_jobs` on a batch of jobs, so it writes the same files the
local run writes (every worker must see the same paths: one machine or a shared
filesystem, and the package installed). One GPU per actor where the cluster has GPUs, else
one CPU per actor. The jobs come checked (:func:`~stylenas_cli.jobs.precheck_jobs`); existing
outputs are skipped here, before any job is sent.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .batch import Result, StylizeConfig, existing_output
from .errors import StylenasError
from .images import first_line
from .jobs import Job, group_jobs, stylize_jobs
from .raycluster import CONNECT_TIMEOUT, import_ray, init_ray

JOBS_PER_CALL = 8  # one actor call: enough to share a style summary and batches


@dataclass(frozen=True)
class ModelSpec:
    """What each actor loads (:meth:`~stylenas_cli.model.Stylizer.from_pretrained`)."""

    arch: str = "photonas"
    weights: str | None = None
    device: str = "auto"
    precision: str = "auto"


class StylizeActor:
    """One model per actor; called with batches of jobs (JSON strings), returns results."""

    def __init__(self, spec: ModelSpec, cfg: StylizeConfig) -> None:
        from .model import Stylizer

        self.model = Stylizer.from_pretrained(spec.arch, spec.weights, spec.device,
                                              spec.precision)  # fmt: skip
        self.cfg = cfg
        self.styles: dict = {}  # style summaries kept across calls

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        jobs = [_job(json.loads(s)) for s in batch["job"]]
        results = stylize_jobs(self.model, jobs, self.cfg, styles=self.styles)
        return {"result": np.array([json.dumps(r.as_dict()) for r in results])}


def _job(row: dict) -> Job:
    """A job sent to an actor, with the size its precheck read."""
    size = row.pop("size", None)
    return replace(Job.from_dict(row), size=tuple(size) if size else None)


def stylize_jobs_on_ray(
    jobs: list[Job],
    cfg: StylizeConfig,
    spec: ModelSpec,
    workers: int | None = None,
    address: str | None = None,
    on_result: Callable[[Result], None] = lambda r: None,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> list[Result]:
    """Run checked jobs on Ray; one :class:`~stylenas_cli.batch.Result` per job, as
    :func:`~stylenas_cli.jobs.stylize_jobs` gives locally.

    ``address``: a running cluster (``ray://host:10001`` or ``auto``), else a local Ray is
    started (and stopped at the end); ``connect_timeout``: seconds to reach the cluster
    (:func:`~stylenas_cli.raycluster.init_ray`). ``workers``: actors (default: the cluster's
    GPUs, else its CPUs)."""
    ray = import_ray()
    importlib.import_module("ray.data")  # the jobs stream through Ray Data
    results: list[Result] = []
    send: list[Job] = []
    for job in jobs:
        done = existing_output(job.content, job.output, cfg)
        if done is None:
            send.append(job)
        else:
            done.style = job.style
            results.append(done)
            on_result(done)
    if not send:
        return results
    owns = not ray.is_initialized()
    if owns:
        init_ray(ray, address, connect_timeout, include_dashboard=False, log_to_driver=False)
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    try:
        results += _run(ray, send, cfg, spec, workers, on_result)
    except ray.exceptions.RayError as err:
        raise StylenasError(
            f"a Ray worker failed ({first_line(err)}); finished outputs are complete: "
            "re-run with --skip-existing"
        ) from None
    finally:
        if owns:
            ray.shutdown()
    return results


def _run(ray, jobs: list[Job], cfg, spec, workers, on_result) -> list[Result]:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the command line draws its own
    gpus = int(ray.cluster_resources().get("GPU", 0))
    size = workers or gpus or max(1, int(ray.cluster_resources().get("CPU", 1)))
    # Grouped by style and size, so each call holds few styles and same-size batches.
    rows = [
        {"job": json.dumps(j.as_dict() | {"size": j.size})} for g in group_jobs(jobs) for j in g
    ]
    per_call = max(1, min(JOBS_PER_CALL, len(rows) // size))  # every actor gets work
    calls = -(-len(rows) // per_call)
    size = min(size, calls)
    ds = ray.data.from_items(rows, override_num_blocks=calls)
    out = ds.map_batches(
        StylizeActor,
        fn_constructor_kwargs={"spec": spec, "cfg": cfg},
        batch_size=per_call,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=size),
        num_gpus=1 if gpus else 0,
        num_cpus=1,
    )
    results = []
    for row in out.iter_rows():
        r = Result.from_dict(json.loads(row["result"]))
        results.append(r)
        on_result(r)
    return results

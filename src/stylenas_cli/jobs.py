"""Jobs: one content, its style and its output. A folder run is jobs sharing one style; a
pairs manifest (CSV or JSONL, one row per job) gives each content its own style, output,
strength and masks. Jobs run grouped by style (each style summarised once) and, inside
:func:`~stylenas_cli.batch.stylize_files`, by size (same-size photos share a batch).

A manifest row has ``content`` and ``style`` (required), ``output``, ``alpha``,
``content_mask``, ``style_mask`` (optional). Relative paths are relative to the manifest's
own folder, so a manifest travels with its photos; a relative ``output`` is relative to the
output folder when one is given (and must stay inside it). No output may replace an input of
the run (:func:`check_outputs`). The failure report a run writes (:func:`write_failures`) is
itself a manifest: ``--pairs failures.jsonl`` retries them.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from .batch import Result, StylizeConfig, precheck, stylize_files
from .errors import StylenasError
from .files import OutputError, atomic_write, check_name, plan_outputs
from .images import IMAGE_SUFFIXES, ImageError, oriented_size
from .model import Stylizer

FIELDS = ("content", "style", "output", "alpha", "content_mask", "style_mask")
# Keys a failure report adds; a report read back as a manifest ignores them.
REPORT_FIELDS = ("error", "ok", "width", "height", "seconds", "device", "notes", "skipped")


class ManifestError(StylenasError):
    """A pairs manifest that cannot be read."""


@dataclass(frozen=True)
class Job:
    content: Path
    style: Path
    output: Path | None = None  # None: planned like a folder run's (see plan_jobs)
    alpha: float | None = None  # None: the run's --alpha
    content_mask: Path | None = None
    style_mask: Path | None = None
    where: str = field(default="", compare=False)  # "manifest:line" of a manifest's row

    def as_dict(self) -> dict:
        values = {k: getattr(self, k) for k in FIELDS}
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in values.items()}

    @property
    def inputs(self) -> list[Path]:
        """The files this job reads."""
        return [p for p in (self.content, self.style, self.content_mask, self.style_mask) if p]

    @classmethod
    def from_dict(cls, row: dict) -> Job:
        path = {k: Path(row[k]) if row.get(k) else None for k in FIELDS if k != "alpha"}
        alpha = row.get("alpha")
        return cls(alpha=None if alpha in (None, "") else float(alpha), **path)


def jobs_for(contents: list[Path], style: Path, outputs: list[Path]) -> list[Job]:
    """A folder or list run: every content with one style."""
    return [Job(c, style, o) for c, o in zip(contents, outputs)]


def read_manifest(path: Path, output_dir: str | Path | None = None) -> list[Job]:
    """Jobs from a CSV (header row naming the columns) or JSONL file (one object per line):
    ``.csv`` is CSV, ``.jsonl``/``.ndjson``/``.json`` JSON lines, anything else by its first
    character. Relative paths are read from the manifest's folder, a relative ``output`` from
    ``output_dir`` when it is given. Raises :class:`ManifestError` naming the file and line of
    a bad row."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise ManifestError(f"{path}: cannot read the pairs manifest ({err})") from None
    as_json = path.suffix.lower() in (".jsonl", ".ndjson", ".json") or (
        path.suffix.lower() != ".csv" and text.lstrip().startswith("{")
    )
    rows = _json_rows(path, text) if as_json else _csv_rows(path, text)
    out = None if output_dir is None else Path(output_dir)
    jobs = [_job(path, line, row, out) for line, row in rows]
    if not jobs:
        raise ManifestError(f"{path}: the pairs manifest has no rows")
    return jobs


def _json_rows(path: Path, text: str) -> Iterable[tuple[int, dict]]:
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ManifestError(f"{path}:{n}: not a JSON object ({err.msg})") from None
        if not isinstance(row, dict):
            raise ManifestError(f"{path}:{n}: each line must be a JSON object")
        yield n, row


def _csv_rows(path: Path, text: str) -> Iterable[tuple[int, dict]]:
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or "content" not in reader.fieldnames:
        raise ManifestError(
            f"{path}: the first row must name the columns (content,style[,output,alpha,"
            "content_mask,style_mask])"
        )
    for row in reader:
        if None in row:  # more cells than columns
            raise ManifestError(f"{path}:{reader.line_num}: more cells than named columns")
        if any(v and v.strip() for v in row.values()):
            yield reader.line_num, {k.strip(): (v or "").strip() for k, v in row.items()}


def _job(path: Path, line: int, row: dict, output_dir: Path | None) -> Job:
    where = f"{path}:{line}"
    unknown = set(row) - set(FIELDS) - set(REPORT_FIELDS)
    if unknown:
        raise ManifestError(
            f"{where}: unknown column {sorted(unknown)[0]!r} (known: {', '.join(FIELDS)})"
        )
    for key in ("content", "style"):
        if not row.get(key):
            raise ManifestError(f"{where}: the {key!r} column is empty")
    for key in set(FIELDS) - {"alpha"}:
        if row.get(key) is not None and not isinstance(row[key], str):
            raise ManifestError(f"{where}: {key!r} must be a path (a string)")
    try:
        job = Job.from_dict({k: v for k, v in row.items() if k in FIELDS})
    except (TypeError, ValueError):
        raise ManifestError(f"{where}: alpha must be a number, got {row['alpha']!r}") from None
    if job.alpha is not None and not 0.0 <= job.alpha <= 1.0:
        raise ManifestError(f"{where}: alpha must be between 0 and 1, got {job.alpha}")
    base = path.parent
    paths = {k: base / v for k, v in job.as_dict().items() if k != "alpha" and v is not None}
    if job.output is not None and output_dir is not None:
        paths["output"] = output_dir / job.output  # an absolute output stays as it is
    return replace(job, where=where, **{k: Path(v) for k, v in paths.items()})


def plan_jobs(jobs: list[Job], output: str | Path | None) -> list[Job]:
    """Every job with its output: a row's own, else ``<stem>_stylized.<ext>`` beside its
    content or in the folder ``output``. Raises :class:`OutputError` when two jobs would
    write one file (a content used with two styles needs an ``output`` per row)."""
    folder = None if output is None else str(output).rstrip("/\\") + "/"
    planned = [
        job
        if job.output is not None
        else replace(
            job, output=plan_outputs([job.content], folder, IMAGE_SUFFIXES, "an image")[0]
        )  # fmt: skip
        for job in jobs
    ]
    seen: dict[Path, Job] = {}
    for job in planned:
        if job.output.suffix.lower() not in IMAGE_SUFFIXES:
            raise OutputError(f"{job.output}: output needs an image extension")
        check_name(job.output)
        key = job.output.resolve()
        if key in seen:
            raise OutputError(
                f"{job.output}: written by two jobs ({seen[key].content} and {job.content}); "
                "give each an 'output' column"
            )
        seen[key] = job
    return planned


class FileSet:
    """Files to protect, matched by identity (hard and symbolic links, ``..``) when they
    exist and by resolved path when they do not."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.ids: set[tuple[int, int]] = set()
        self.names: set[Path] = set()
        for p in paths:
            self.add(p)

    @staticmethod
    def _id(path: Path) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return None
        return st.st_dev, st.st_ino

    def add(self, path: Path) -> None:
        found = self._id(path)
        if found is not None:
            self.ids.add(found)
        self.names.add(Path(os.path.realpath(path)))

    def __contains__(self, path: Path) -> bool:
        found = self._id(path)
        return (found is not None and found in self.ids) or Path(
            os.path.realpath(path)
        ) in self.names


def check_outputs(
    jobs: list[Job], output_dir: str | Path | None = None, inputs: Iterable[Path] = ()
) -> tuple[list[Job], list[Result]]:
    """Planned jobs whose output may be written, and a failed :class:`Result` (one line
    naming the manifest's file:line) for each job whose output would replace an input of
    any job (or one of ``inputs``, e.g. the manifest) or, with ``output_dir``, would land
    outside it (after ``..`` and links). Checked before anything runs, ``--overwrite`` or not."""
    protected = FileSet([p for job in jobs for p in job.inputs] + list(inputs))
    root = None if output_dir is None else Path(os.path.realpath(output_dir))
    ok, refused = [], []
    for job in jobs:
        where = f"{job.where}: " if job.where else ""
        if job.output in protected:
            msg = f"{where}output {job.output} would replace an input of this run; choose another"
        elif root is not None and not Path(os.path.realpath(job.output)).is_relative_to(root):
            msg = f"{where}output {job.output} is outside -o {output_dir}; give a path inside it"
        else:
            ok.append(job)
            continue
        refused.append(Result(job.content, None, False, msg, style=job.style))
    return ok, refused


def _group_key(job: Job) -> tuple:
    # A content mask belongs to one content: such a job runs alone.
    return (str(job.style), str(job.style_mask), job.alpha, str(job.content_mask),
            str(job.content) if job.content_mask else "")  # fmt: skip


def group_jobs(jobs: list[Job]) -> list[list[Job]]:
    """Jobs sharing a style, style mask, strength (and content mask) together, groups in
    the order of their style's first appearance; inside a group, same sizes next to each
    other."""
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        groups.setdefault(_group_key(job), []).append(job)
    order = sorted(groups, key=lambda k: k[0])  # styles together (one summary each)
    return [sorted(groups[k], key=lambda j: oriented_size(j.content) or (0, 0)) for k in order]


def precheck_jobs(jobs: list[Job], cfg: StylizeConfig) -> tuple[list[Job], list[Result]]:
    """:func:`~stylenas_cli.batch.precheck` per style: a style that cannot be read fails
    its own jobs only. Returns the jobs to run and the failed results."""
    todo, failed = [], []
    for group in group_jobs(jobs):
        gcfg = _config(group[0], cfg)
        try:
            ok, bad = precheck([j.content for j in group], [j.output for j in group],
                               group[0].style, gcfg)  # fmt: skip
        except ImageError as err:
            ok, bad = [], [Result(j.content, None, False, str(err)) for j in group]
        for r in bad:
            r.style = group[0].style
        failed += bad
        keep = set(ok)
        todo += [j for j in group if (j.content, j.output) in keep]
    return todo, failed


def _config(job: Job, cfg: StylizeConfig) -> StylizeConfig:
    return replace(
        cfg,
        alpha=cfg.alpha if job.alpha is None else job.alpha,
        content_mask=job.content_mask or cfg.content_mask,
        style_mask=job.style_mask or cfg.style_mask,
    )


def stylize_jobs(
    model: Stylizer,
    jobs: list[Job],
    cfg: StylizeConfig,
    on_result: Callable[[Result], None] = lambda r: None,
    styles: dict | None = None,
) -> list[Result]:
    """Run planned jobs (:func:`plan_jobs`) with one loaded model; one :class:`Result` per
    job, each naming its style. A job's ``alpha``/masks override ``cfg``'s; a style that
    cannot be read fails its own jobs, not the run. ``styles``: style summaries kept
    across calls."""
    styles = {} if styles is None else styles
    results: list[Result] = []
    for group in group_jobs(jobs):
        style = group[0].style

        def tagged(r: Result, style: Path = style) -> None:
            r.style = style
            on_result(r)

        try:
            done = stylize_files(model, [j.content for j in group], style,
                                 [j.output for j in group], _config(group[0], cfg), tagged,
                                 styles)  # fmt: skip
        except ImageError as err:
            done = [Result(j.content, None, False, str(err)) for j in group]
            for r in done:
                tagged(r)
        results += done
    return results


def job_of(result: Result, jobs: Iterable[Job]) -> Job:
    """The job a result came from (its content, style and, when written, output)."""
    for job in jobs:
        if job.content == result.content and result.style in (None, job.style):
            if result.output in (None, job.output):
                return job
    return Job(result.content, result.style or Path(""), result.output)


def write_failures(
    path: Path, jobs: list[Job], results: list[Result], overwrite: bool = False
) -> int:
    """Each failed job as one JSON line (its columns, as absolute paths, and its ``error``),
    written atomically to ``path`` only when a job failed: a manifest that retries them.
    An existing ``path`` is replaced only with ``overwrite``. Returns the number of
    failures."""
    by_content: dict[Path, list[Job]] = {}  # a library of a million jobs: no scan per failure
    for job in jobs:
        by_content.setdefault(job.content, []).append(job)
    lines = []
    for r in results:
        if not r.ok:
            row = job_of(r, by_content.get(r.content, [])).as_dict()
            row = {k: os.path.abspath(v) if isinstance(v, str) else v for k, v in row.items()}
            lines.append(json.dumps(row | {"error": r.error}))
    if lines:
        text = "".join(f"{line}\n" for line in lines)
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite)
    return len(lines)

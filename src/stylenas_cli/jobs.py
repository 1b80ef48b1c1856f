"""Jobs: one content, its style and its output. A folder run is jobs sharing one style; a
pairs manifest (CSV or JSONL, one row per job) gives each content its own style, output,
strength and masks. Every job is checked once before any model loads
(:func:`precheck_jobs`: each input's header read once, the size kept with the job); jobs then
run grouped by style (each style summarised once, :func:`~stylenas_cli.batch.run_group`) and
by size (same-size photos share a batch).

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
from dataclasses import replace
from pathlib import Path

from .batch import FIELDS, REPORT_FIELDS, Job, Result, StylizeConfig, run_group
from .errors import StylenasError
from .files import OutputError, atomic_write, check_name, plan_outputs
from .images import IMAGE_SUFFIXES, ImageError, first_line, open_image, read_header
from .model import Stylizer


class ManifestError(StylenasError):
    """A pairs manifest that cannot be read."""


def jobs_for(
    contents: list[Path],
    style: Path,
    outputs: list[Path],
    content_mask: Path | None = None,
    style_mask: Path | None = None,
) -> list[Job]:
    """A folder or list run: every content with one style (and its masks)."""
    if content_mask is not None and len(contents) != 1:
        raise ImageError("--content-mask works with exactly one content image")
    return [Job(c, style, o, None, content_mask, style_mask) for c, o in zip(contents, outputs)]


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
    return [sorted(groups[k], key=lambda j: j.size or (0, 0)) for k in order]


def precheck_jobs(
    jobs: list[Job], cfg: StylizeConfig, check_styles: bool = True
) -> tuple[list[Job], list[Result]]:
    """Check every job before any model is loaded, each file once: a style must decode (a
    style that cannot be read fails its own jobs only; ``check_styles=False`` when the
    caller checked it, e.g. a LUT) and masks' headers be readable; each content's header
    must be readable and within ``cfg.max_pixels``. Returns the jobs to run, each with its
    content's size, and one failed :class:`Result` per job refused."""
    styles: dict[tuple, str | None] = {}  # (style, style mask) -> why it cannot be used
    todo, failed = [], []
    for job in jobs:
        key = (job.style, job.style_mask)
        if not check_styles:
            styles[key] = None
        elif key not in styles:
            styles[key] = _style_problem(job.style, job.style_mask, cfg.max_pixels)
        try:
            if styles[key] is not None:
                raise ImageError(styles[key])
            if job.content_mask is not None:
                read_header(job.content_mask, cfg.max_pixels, "mask")
            size = read_header(job.content, cfg.max_pixels)
        except ImageError as err:
            failed.append(Result(job.content, None, False, str(err), style=job.style))
            continue
        todo.append(replace(job, size=size))
    return todo, failed


def _style_problem(style: Path, mask: Path | None, max_pixels: int | None) -> str | None:
    """Why a style (and its mask) cannot be used, or None; the style is decoded whole (JPEGs
    at 1/8 scale: fast) so a truncated one fails here."""
    try:
        with open_image(style, max_pixels, "style") as img:
            try:
                img.draft("RGB", (img.width // 8, img.height // 8))
                img.load()
            except (OSError, SyntaxError, ValueError) as err:
                raise ImageError(f"{style}: not a readable style ({first_line(err)})") from None
        if mask is not None:
            read_header(mask, max_pixels, "mask")
    except ImageError as err:
        return str(err)
    return None


def stylize_jobs(
    model: Stylizer,
    jobs: list[Job],
    cfg: StylizeConfig,
    on_result: Callable[[Result], None] = lambda r: None,
    styles: dict | None = None,
) -> list[Result]:
    """Run checked jobs (:func:`precheck_jobs`) with one loaded model; one :class:`Result`
    per job, each naming its style. A job's ``alpha`` overrides ``cfg``'s; a style that
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
            done = run_group(model, group, cfg, tagged, styles)
        except ImageError as err:
            done = [Result(j.content, None, False, str(err)) for j in group]
            for r in done:
                tagged(r)
        results += done
    return results


def stylize_files(
    model: Stylizer,
    contents: list[Path],
    style: Path,
    outputs: list[Path],
    cfg: StylizeConfig,
    on_result: Callable[[Result], None] = lambda r: None,
) -> list[Result]:
    """Stylise every content with one style into its output: the jobs checked
    (:func:`precheck_jobs`, :func:`check_outputs`) and run; one :class:`Result` per content."""
    jobs, refused = check_outputs(jobs_for(contents, style, outputs))
    todo, failed = precheck_jobs(jobs, cfg)
    for r in refused + failed:
        on_result(r)
    return refused + failed + stylize_jobs(model, todo, cfg, on_result)


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

"""``stylenas stylize``: photos in, stylised photos out."""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import click

from ..config import DEFAULT_TRANSFER, IMAGE_SUFFIXES
from ._common import (
    alpha_option,
    arch_option,
    auto_masks_options,
    cache_option,
    command,
    console,
    device_option,
    lift_config,
    lift_options,
    max_pixels_option,
    note_precision,
    overwrite_option,
    precision_option,
    progress,
    quiet_option,
    ray_options,
    style_size_option,
    weights_option,
)


@command(
    "stylize",
    interrupted="interrupted: finished outputs are complete; re-run with --skip-existing "
    "to do the rest",
)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "-s",
    "--style",
    type=click.Path(path_type=Path),
    help="Style photo. If omitted, the last PATH is the style.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(),  # str: a trailing slash (= a directory) must survive
    help="Output file (one content) or directory. Default: <stem>_stylized.<ext> "
    "beside each content.",
)
@arch_option
@weights_option
@alpha_option
@click.option(
    "--max-size",
    type=click.IntRange(min=32),
    default=None,
    help="Resize so the long side is at most this (keeps aspect). Default: keep the original size.",
)
@lift_options
@style_size_option
@max_pixels_option
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=4,
    help="Contents of the same size stylised together.",
)
@device_option
@precision_option("auto", "the network (WCT statistics always in float64)")
@click.option(
    "--content-mask",
    type=click.Path(path_type=Path),
    help="Colour-coded label map of the content (one content only).",
)
@click.option(
    "--style-mask",
    type=click.Path(path_type=Path),
    help="Colour-coded label map of the style; same colours = same regions.",
)
@click.option(
    "--mask-snap",
    type=click.IntRange(min=0),
    default=None,
    metavar="PX",
    help=f"Snap --content-mask's boundaries to the photo's edges within about half this "
    f"radius (pixels at the working size), so no halo follows a loosely drawn outline; "
    f"0 = use the mask exactly as drawn.  [default: {DEFAULT_TRANSFER.label_snap}]",
)
@auto_masks_options
@click.option(
    "-r",
    "--recursive",
    is_flag=True,
    help="Walk sub-folders of folder arguments; an output folder mirrors the tree.",
)
@click.option(
    "--format",
    "out_format",
    type=click.Choice(["jpg", "png", "webp", "tiff"]),
    default=None,
    help="Format of the result written to stdout (-o -). Default: the input's.",
)
@click.option(
    "--pairs",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A manifest (CSV with a header row, or JSONL) of jobs: columns content, style "
    "(required), output, alpha, content_mask, style_mask; relative paths are relative to "
    "the manifest. Replaces PATHS and --style.",
)
@click.option(
    "--lut",
    type=click.Path(path_type=Path),
    default=None,
    help="Apply this 3D LUT (.cube, or a HALD CLUT image; from 'stylenas lut' or any other "
    "program) at full resolution instead of the network: every PATH is a content, no "
    "--style.",
)
@click.option(
    "--backend",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: this process; ray: a pool of Ray actors, one model each "
    "(pip install 'stylenas-cli[ray]'), writing the same files.",
)
@ray_options
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Ray actors. Default: the cluster's GPUs, else its CPUs.",
)
@click.option(
    "--failures",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write each failed job as a JSON line to this file (replaced each run; itself a "
    "--pairs manifest that retries them). Default with --backend ray: "
    "stylenas-failures.jsonl in the output folder (or here) when a job failed.",
)
@cache_option
@overwrite_option
@click.option(
    "--skip-existing",
    is_flag=True,
    help="Leave contents whose output exists alone (reported as skipped, exit 0): re-run a "
    "killed batch with it to resume.",
)
@quiet_option
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object per content on stdout."
)
def stylize_command(
    paths,
    style,
    output,
    arch,
    weights,
    alpha,
    max_size,
    work_size,
    lift_radius,
    lift_eps,
    style_size,
    max_pixels,
    batch_size,
    device,
    precision,
    content_mask,
    style_mask,
    mask_snap,
    auto_masks,
    regions,
    recursive,
    out_format,
    pairs,
    lut,
    backend,
    address,
    connect_timeout,
    workers,
    failures,
    no_cache,
    overwrite,
    skip_existing,
    quiet,
    as_json,
) -> None:
    """Give each CONTENT photo the colour and tone of a STYLE photo.

    A CONTENT of '-' is read from stdin; '-o -' writes the result to stdout (one content).

    \b
    stylenas stylize content.jpg style.jpg
    stylenas stylize photos/ --style ref.jpg -o out/ --recursive --skip-existing
    cat a.jpg | stylenas stylize - --style ref.jpg -o - > a_styled.jpg
    stylenas stylize --pairs pairs.csv -o out/ --backend ray
    """
    from rich.markup import escape

    from ..batch import StylizeConfig
    from ..config import TransferSettings
    from ..device import use_all_cores
    from ..jobs import check_outputs, precheck_jobs

    transfer = TransferSettings(regions=regions if auto_masks else 0)
    if mask_snap is not None:
        transfer = replace(transfer, label_snap=mask_snap)
    cfg = StylizeConfig(
        alpha,
        max_size,
        batch_size,
        overwrite,
        work_size,
        lift_config(lift_radius, lift_eps),
        cache=not no_cache,
        style_size=style_size,
        max_pixels=max_pixels,
        skip_existing=skip_existing,
        transfer=transfer,
    )
    if backend == "local" and (address or workers):
        raise click.UsageError("--address and --workers go with --backend ray")
    look = None
    if lut is not None:
        look = _lut_mode(lut, paths, style, pairs, backend, content_mask, style_mask, auto_masks,
                         arch, weights)  # fmt: skip
        style = lut  # each job's "style" is the look
    if pairs is not None:
        every = _manifest_jobs(pairs, paths, style, output, content_mask, style_mask)
        pipe = None
    else:
        paths = list(paths)
        if not paths:
            raise click.UsageError("give a content and a style: CONTENT... STYLE, or --pairs FILE")
        if style is None:
            if len(paths) < 2:
                raise click.UsageError("give a content and a style: CONTENT... STYLE or --style")
            style = paths.pop()
        pipe = Pipe(paths, output, out_format, as_json)
        every = _path_jobs(pipe, style, recursive, content_mask, style_mask)
    # Everything that can be known before the model loads, each file read once: outputs that
    # would replace an input or leave -o, unreadable inputs, folders that take no file.
    jobs, early = check_outputs(every, output if pairs is not None else None,
                                [pairs] if pairs else [])  # fmt: skip
    jobs, refused = precheck_jobs(jobs, cfg, check_styles=look is None)
    early += refused
    _check_before_running(jobs, every, failures, [pairs] if pairs else [], overwrite)
    err_console = console()

    def report(r) -> None:
        if as_json:
            click.echo(json.dumps(r.as_dict()))
        if not r.ok:
            click.echo(f"error: {r.error}", err=True)
        for note in r.notes if not quiet else ():
            click.echo(f"note: {note}", err=True)
        if r.skipped and not quiet:
            err_console.print(f"{escape(str(r.output))}  [dim]exists, skipped[/]")
        elif r.ok and not quiet:
            name = escape(str(r.output))  # a file name may hold [brackets]
            err_console.print(f"{name}  [dim]{r.width}x{r.height} {r.seconds:.2f}s {r.device}[/]")

    for r in early:  # refused before any model loads: reported first, the others run
        report(r)
    if not jobs:
        _write_failures(failures, backend, output, every, early, overwrite, quiet)
        _finish(early, quiet, as_json)
    if look is not None:
        from ..look import apply_lut_jobs

        def run(on_result):
            return apply_lut_jobs(look, jobs, cfg, on_result)
    elif backend == "ray":
        from ..ray_jobs import ModelSpec, stylize_jobs_on_ray

        spec = ModelSpec(arch, weights, device, precision)

        def run(on_result):
            return stylize_jobs_on_ray(jobs, cfg, spec, workers, address, on_result,
                                       connect_timeout)  # fmt: skip
    else:
        from ..jobs import stylize_jobs
        from ..model import Stylizer

        use_all_cores()
        model = Stylizer.from_pretrained(arch, weights, device, precision)
        note_precision(precision, model.device, quiet)

        def run(on_result):
            return stylize_jobs(model, jobs, cfg, on_result)

    bar = len(jobs) > 1 and not (quiet or as_json) and err_console.is_terminal
    if bar:  # count, images/s, time left
        with _progress_bar(err_console, len(jobs)) as (progress, task):

            def advance(r) -> None:
                report(r)
                progress.advance(task)

            results = run(advance)
    elif quiet or as_json:
        results = run(report)
    else:
        with err_console.status("stylising...", spinner="dots"):
            results = run(report)
    if pipe is not None:
        pipe.deliver(results)
    results = early + results
    _write_failures(failures, backend, output, every, results, overwrite, quiet)
    _finish(results, quiet, as_json)


def _lut_mode(lut, paths, style, pairs, backend, content_mask, style_mask, auto_masks, arch,
              weights):  # fmt: skip
    """The LUT of ``--lut``, read before anything runs, and the options that cannot go with
    it refused."""
    from ..lut import read_lut

    clash = {
        "--style": style is not None, "--pairs": pairs is not None,
        "--backend ray": backend == "ray", "--content-mask": content_mask is not None,
        "--style-mask": style_mask is not None, "--auto-masks": auto_masks,
        "--arch": arch is not None, "--weights": weights is not None,
    }  # fmt: skip
    given = [name for name, on in clash.items() if on]
    if given:
        raise click.UsageError(f"--lut applies a look without the network: no {given[0]} with it")
    if not paths:
        raise click.UsageError("give the photos to apply the LUT to: PATHS... --lut FILE")
    return read_lut(lut)


def _path_jobs(pipe: Pipe, style: Path, recursive: bool, content_mask, style_mask):
    """Jobs of the contents (files, folders, stdin) with one style, outputs planned."""
    from ..batch import expand_contents, plan_image_outputs
    from ..files import check_name
    from ..jobs import jobs_for

    paths, output = pipe.paths, pipe.output
    if output:
        check_name(Path(output))  # before any look at it: the system refuses a longer name
    out_dir = Path(output) if output and (Path(output).is_dir() or output.endswith("/")) else None
    contents, subdirs = expand_contents(paths, recursive, exclude=out_dir)
    outputs = plan_image_outputs(contents, output, subdirs)
    return jobs_for(contents, style, outputs, content_mask, style_mask)


def _manifest_jobs(pairs, paths, style, output, content_mask, style_mask):
    """Every row's job of a ``--pairs`` manifest, outputs planned."""
    from ..jobs import plan_jobs, read_manifest

    if paths or style or content_mask or style_mask:
        raise click.UsageError(
            "--pairs names the contents, styles and masks: no PATHS, --style or --*-mask with it"
        )
    if output is not None and Path(output).suffix.lower() in IMAGE_SUFFIXES:
        raise click.UsageError("with --pairs, -o is a folder (each row may name its output)")
    return plan_jobs(read_manifest(pairs, output), output)


def _check_before_running(jobs, every, failures, inputs: list[Path], overwrite: bool) -> None:
    """What can be known before the model loads: the folder of every output to write takes a
    file, and the ``--failures`` report would replace neither an input (of ``every`` job)
    nor, without ``--overwrite``, a file."""
    from ..files import OutputError, check_folders_writable
    from ..jobs import FileSet

    check_folders_writable(job.output.parent for job in jobs)
    if failures is None:
        return
    if failures.is_dir():
        raise OutputError(f"{failures}: --failures needs a file name, not a folder")
    if failures in FileSet([p for job in every for p in job.inputs] + inputs):
        raise OutputError(f"{failures}: --failures would replace an input; choose another file")
    if failures.exists() and not overwrite:
        raise OutputError(
            f"{failures}: --failures file exists; pass --overwrite to replace it or choose another"
        )
    check_folders_writable([failures.parent])


def _write_failures(path, backend, output, jobs, results, overwrite, quiet) -> None:
    """The failed jobs as a manifest, only when there are any: to ``path``, else (Ray) to
    the first free ``stylenas-failures[-N].jsonl`` in the output folder."""
    from ..jobs import write_failures

    if not any(not r.ok for r in results):
        return
    if path is None and backend == "ray":
        folder = Path(output) if output and not Path(output).suffix else Path(".")
        path = folder / "stylenas-failures.jsonl"
        for n in range(2, 1000):
            if not path.exists() or overwrite:
                break
            path = folder / f"stylenas-failures-{n}.jsonl"
    if path is None:
        return
    n = write_failures(path, jobs, results, overwrite)
    if not quiet:
        click.echo(f"note: {n} failed jobs listed in {path} (retry: --pairs {path})", err=True)


class Pipe:
    """'-' as a content (read from stdin into a temp file) and '-o -' (the result written to
    a temp file, then to stdout); nothing else is ever written to stdout then."""

    def __init__(self, paths: list[Path], output: str | None, fmt: str | None, as_json: bool):
        self.tmp: Path | None = None
        self.to_stdout = output == "-"
        stdin = [i for i, p in enumerate(paths) if str(p) == "-"]
        if len(stdin) > 1:
            raise click.UsageError("'-' (stdin) can be given once")
        if self.to_stdout and as_json:
            raise click.UsageError("-o - writes the image to stdout: --json cannot share it")
        if self.to_stdout and (len(paths) != 1 or Path(paths[0]).is_dir()):
            raise click.UsageError("-o - writes one image: give exactly one content")
        self.paths, self.output = list(paths), output
        if not (stdin or self.to_stdout):
            return
        self.tmp = Path(tempfile.mkdtemp(prefix="stylenas-pipe-"))
        atexit.register(shutil.rmtree, self.tmp, True)
        suffix = None
        if stdin:
            data = sys.stdin.buffer.read()
            suffix = _sniff_suffix(data)
            self.paths[stdin[0]] = self.tmp / f"stdin{suffix}"
            self.paths[stdin[0]].write_bytes(data)
        if self.to_stdout:
            suffix = f".{fmt}" if fmt else suffix or Path(self.paths[0]).suffix
            suffix = suffix if suffix in IMAGE_SUFFIXES else ".png"  # unknown input: PNG
            self.output = str(self.tmp / f"result{suffix}")

    def deliver(self, results) -> None:
        """With '-o -': the finished result's bytes to stdout."""
        if self.to_stdout and results and results[0].ok and not results[0].skipped:
            sys.stdout.buffer.write(Path(self.output).read_bytes())
            sys.stdout.buffer.flush()


def _sniff_suffix(data: bytes) -> str:
    """The file suffix of image bytes by their content ('.img' when unknown: refused later
    as not a readable image)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
    except (UnidentifiedImageError, OSError, ValueError):
        return ".img"
    return {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tiff", "BMP": ".bmp"}.get(
        fmt, ".img"
    )


@contextlib.contextmanager
def _progress_bar(err_console, total: int):
    """A bar with the count, images per second and the time left, on stderr."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        ProgressColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed or 0:.2f} images/s")

    columns = (BarColumn(), MofNCompleteColumn(), Rate(), TimeRemainingColumn())
    with progress(err_console, *columns) as bar:
        yield bar, bar.add_task("stylise", total=total)


def _finish(results, quiet: bool, as_json: bool) -> None:
    """The end of a run: with ``--json`` a last line ``{"summary": {...}}``; with several
    contents a count on stderr; exit 1 when any content failed (each was reported as it
    happened), else 0 (written or skipped)."""
    failed = sum(not r.ok for r in results)
    skipped = sum(r.skipped for r in results)
    written = len(results) - failed - skipped
    if as_json:
        summary = {"written": written, "skipped": skipped, "failed": failed}
        click.echo(json.dumps({"summary": summary}))
    if not quiet and (len(results) > 1 or failed):
        parts = [f"{written} written"] + [f"{skipped} skipped"] * bool(skipped)
        click.echo(", ".join(parts + [f"{failed} of {len(results)} failed"]), err=True)
    if failed:
        sys.exit(1)

"""``stylenas eval`` and ``stylenas bench-speed``: thin Click commands over
:mod:`stylenas_cli.evaluation`.

Registered on the main group in :mod:`.cli` with ``main.add_command``. Each command parses,
builds the library's config and prints; the library is imported inside the commands, and its
errors (and running out of memory) become one clean line in :class:`._common.Command`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..config import DEFAULT_WORK_SIZE
from ..files import jsonable
from ._common import (
    auto_masks_options,
    command,
    console,
    device_option,
    lift_config,
    lift_options,
    precision_option,
    progress,
    quiet_option,
    style_size_option,
)

DEFAULT_ARCHS = ("photonas",)
SPEED_ARCHS = ("photonas", "photonet")
MIN_SIZE = 32  # model.MIN_SIDE: the library is only imported when a command runs


def parse_weights(values: tuple[str, ...], archs: tuple[str, ...]) -> dict[str, Path]:
    """``ARCH=PATH`` items -> ``{arch: path}``; a bare ``PATH`` is allowed with one ``--arch``."""
    out: dict[str, Path] = {}
    for value in values:
        arch, sep, path = value.partition("=")
        if not (sep and arch in archs):
            if len(archs) != 1 or (sep and not Path(value).exists()):
                raise click.BadParameter(
                    f"{value!r}: use ARCH=PATH with ARCH one of the --arch values "
                    f"({', '.join(archs)})",
                    param_hint="--weights",
                )
            arch, path = archs[0], value
        if arch in out:
            raise click.BadParameter(f"two weights files for {arch}", param_hint="--weights")
        out[arch] = Path(path)
    return out


@command("eval")
@click.argument("pairs_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--arch",
    "archs",
    multiple=True,
    default=DEFAULT_ARCHS,
    show_default=True,
    help="Our architecture to stylise with (repeat for several): photonas, photonet, wct5, "
    "a 32-bit genotype or a search run's best.json.",
)
@click.option(
    "--weights",
    "weights",
    multiple=True,
    metavar="ARCH=PATH",
    help="Decoder weights for one --arch (repeatable); a bare PATH with a single --arch. "
    "Default: the shipped weights of each arch.",
)
@click.option(
    "--masks/--no-masks",
    default=True,
    show_default=True,
    help="Where a pair has content_seg/ and style_seg/ label maps, also stylise with them "
    "(extra methods named '<arch>+masks').",
)
@auto_masks_options
@click.option(
    "--max-size",
    type=click.IntRange(min=MIN_SIZE),
    default=None,
    show_default=True,
    help="Resize content and style so the long side is at most this; scores are taken at the "
    "resized content's size. Default: the photos' own sizes.",
)
@lift_options
@style_size_option
@device_option
@precision_option("auto", "our networks' convolutions")
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Report folder (scores.csv, summary.md, contact_sheet.png, outputs/). "
    "Default: runs/eval/<name of PAIRS_DIR>.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    show_default=True,
    help="Only the first N pairs (by name). Default: all.",
)
@click.option("--overwrite", is_flag=True, help="Replace an earlier report.")
@quiet_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    show_default=True,
    help="Print the report (summary, wins, every row) as one JSON object on stdout.",
)
def eval_command(
    pairs_dir,
    archs,
    weights,
    masks,
    auto_masks,
    regions,
    max_size,
    work_size,
    lift_radius,
    lift_eps,
    style_size,
    device,
    precision,
    out,
    limit,
    overwrite,
    quiet,
    as_json,
) -> None:
    """Score our networks, colour-transfer baselines and the other methods' outputs on the
    content/style pairs in PAIRS_DIR (metrics of EVAL.md).

    PAIRS_DIR holds content/ and style/ (same file names), optional content_seg/ and
    style_seg/ label maps, and any other folder is another method's outputs for the pairs.
    Prints the summary table (Markdown) on stdout.

    \b
    stylenas eval ../shared/data/bench/stylenas --arch photonas --arch photonet
    stylenas eval pairs/ --arch photonas --weights runs/photonas/last.pt --max-size 512
    """
    from ..evaluation import EvalConfig, evaluate

    archs = tuple(dict.fromkeys(archs))
    cfg = EvalConfig(
        archs=archs,
        weights=parse_weights(weights, archs),
        masks=masks,
        max_size=max_size,
        device=device,
        precision=precision,
        limit=limit,
        overwrite=overwrite,
        work_size=work_size,
        lift=lift_config(lift_radius, lift_eps),
        style_size=style_size,
        regions=regions if auto_masks else 0,
    )
    out = out if out is not None else Path("runs") / "eval" / pairs_dir.resolve().name
    stderr = console()
    if quiet:
        report = evaluate(pairs_dir, out, cfg)
    else:
        report = _with_progress(stderr, lambda on_pair: evaluate(pairs_dir, out, cfg, on_pair))
    if as_json:
        click.echo(json.dumps(jsonable(report.as_dict())))
    else:
        click.echo(report.markdown, nl=False)
    if not quiet:
        for key in ("csv", "markdown", "contact_sheet"):
            stderr.print(f"{key}: {report.files[key]}", markup=False, highlight=False)


def _with_progress(stderr, run):
    """``run(on_pair)`` under a progress bar on the ``stderr`` console."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("[bold]eval"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[name]}", markup=False),
        TimeElapsedColumn(),
    )
    with progress(stderr, *columns, transient=False) as bar:
        task = bar.add_task("eval", total=None, name="loading models")

        def on_pair(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, name=name or "")

        return run(on_pair)


def _parse_sizes(ctx, param, value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in value.split(",") if s.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: comma-separated pixel sizes, e.g. 512,1024") from None
    if not sizes or min(sizes) < MIN_SIZE:
        raise click.BadParameter(f"{value!r}: give sizes of at least {MIN_SIZE} px")
    return sizes


@command("bench-speed")
@click.option(
    "--arch",
    "archs",
    multiple=True,
    default=SPEED_ARCHS,
    show_default=True,
    help="Architecture to time (repeatable): a name or a 32-bit genotype. Include photonet for "
    "the ratio column.",
)
@click.option(
    "--sizes",
    default="512,1024",
    show_default=True,
    callback=_parse_sizes,
    help="Square content sides to time, comma-separated.",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Timed runs per measurement after a warm-up run; the median is reported.",
)
@click.option(
    "--work-size",
    type=click.IntRange(min=MIN_SIZE),
    default=DEFAULT_WORK_SIZE,
    show_default=True,
    help="Long side (px) the network sees in the lifted rows.",
)
@style_size_option
@click.option(
    "--baselines/--no-baselines",
    default=True,
    show_default=True,
    help="Also time the Reinhard and histogram-matching colour transfers (CPU, numpy).",
)
@click.option(
    "--overhead/--no-overhead",
    default=True,
    show_default=True,
    help="Time what a fresh process pays (--help, imports, model build, weights) and a style "
    "read back from the cache (needs the shipped photonas weights).",
)
@click.option(
    "--video",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Also stylise this clip at default settings (shipped photonas): frames/s and the "
    "share of the wall time outside inference.",
)
@device_option
@precision_option("auto", "the networks' convolutions")
@quiet_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def bench_speed_command(
    archs, sizes, repeats, work_size, style_size, baselines, overhead, video, device, precision,
    quiet, as_json,
):  # fmt: skip
    """Speed to the floor, in one run on one machine: process overhead, the encoder floor
    (VGG19 to relu5_1), the style pass, each architecture end to end with the style summarised
    (native: the network on every pixel; lifted: at --work-size) with its ratio to the floor
    and to photonet, the colour-transfer baselines, and video frames/s. Networks use freshly
    initialised decoders (speed does not depend on the weights)."""
    import datetime as dt

    from ..device import resolve_device
    from ..evaluation import bench_speed, machine_name, speed_markdown

    archs = tuple(dict.fromkeys(archs))
    stderr = console()
    dev = resolve_device(device)

    def on_step(what: str) -> None:
        if not quiet:
            stderr.print(f"timing {what}", markup=False, highlight=False)

    report = bench_speed(
        archs, sizes, device, precision, repeats, work_size, style_size, baselines, overhead,
        video, on_step,
    )  # fmt: skip
    meta = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_name(dev),
        "repeats": repeats,
    }
    if as_json:
        click.echo(json.dumps(jsonable({"meta": meta, **report.as_dict()})))
        return
    click.echo(f"Median of {repeats} warm runs · {meta['date']} · {meta['machine']}\n")
    click.echo(speed_markdown(report), nl=False)

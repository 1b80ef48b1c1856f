"""``stylenas`` command line: thin Click commands over the library."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import click

from . import __version__
from ._cli_options import arch_option, weights_option
from .cli_eval import bench_speed_command, eval_command
from .cli_search import prune_command, search_command
from .cli_video import eval_video_command, video_command

DEVICE_HELP = "Where to run: auto (CUDA if available), cpu, cuda or cuda:N."
PRECISION = click.Choice(["fp32", "fp16", "bf16"])


class StylenasError(click.ClickException):
    """One clean line on stderr, exit code 1."""

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def _fail(err: Exception) -> StylenasError:
    return StylenasError(str(err))


def _console():
    from rich.console import Console

    return Console(stderr=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="stylenas")
def main() -> None:
    """Ultrafast photorealistic style transfer (StyleNAS / PhotoNAS)."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
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
@click.option(
    "--alpha",
    type=float,
    default=1.0,
    help="Stylisation strength in [0, 1] (0 = content unchanged).",
)
@click.option(
    "--max-size",
    type=click.IntRange(min=32),
    default=None,
    help="Resize so the long side is at most this (keeps aspect). Default: keep the original size.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=4,
    help="Contents of the same size stylised together.",
)
@click.option("--device", default="auto", help=DEVICE_HELP)
@click.option(
    "--precision",
    type=PRECISION,
    default="fp32",
    help="Autocast precision of the convolutions (WCT always runs in float64).",
)
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
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object per content on stdout."
)
def stylize(
    paths,
    style,
    output,
    arch,
    weights,
    alpha,
    max_size,
    batch_size,
    device,
    precision,
    content_mask,
    style_mask,
    overwrite,
    quiet,
    as_json,
) -> None:
    """Give each CONTENT photo the colour and tone of a STYLE photo.

    \b
    stylenas stylize content.jpg style.jpg
    stylenas stylize photos/ --style ref.jpg -o out/
    """
    from rich.markup import escape

    from .io import ImageError
    from .model import Stylizer
    from .stylize import StylizeConfig, expand_contents, plan_outputs, stylize_files
    from .weights import WeightsError

    paths = list(paths)
    if style is None:
        if len(paths) < 2:
            raise click.UsageError("give a content and a style: CONTENT... STYLE or --style")
        style = paths.pop()
    if not 0.0 <= alpha <= 1.0:
        raise click.BadParameter(f"must be between 0 and 1, got {alpha}", param_hint="--alpha")
    cfg = StylizeConfig(alpha, max_size, batch_size, overwrite, content_mask, style_mask)
    try:
        if not style.is_file():
            raise ImageError(f"{style}: style file not found")
        contents = expand_contents(paths)
        outputs = plan_outputs(contents, output)
        model = Stylizer.from_pretrained(arch, weights, device, precision)
    except (ImageError, WeightsError, ValueError, FileNotFoundError) as err:
        raise _fail(err) from None

    console = _console()

    def report(r) -> None:
        if as_json:
            click.echo(json.dumps(r.as_dict()))
        if not r.ok:
            click.echo(f"error: {r.error}", err=True)
        elif not quiet:
            name = escape(str(r.output))  # a file name may hold [brackets]
            console.print(f"{name}  [dim]{r.width}x{r.height} {r.seconds:.2f}s {r.device}[/]")

    try:
        with console.status("stylising...", spinner="dots") if not quiet else _null():
            results = stylize_files(model, contents, style, outputs, cfg, report)
    except (ImageError, ValueError) as err:
        raise _fail(err) from None
    failed = sum(not r.ok for r in results)
    if failed:
        if not quiet:
            click.echo(f"{failed} of {len(results)} failed", err=True)
        sys.exit(1)


def _null():
    import contextlib

    return contextlib.nullcontext()


def _sigterm_interrupts() -> None:
    """Treat SIGTERM like Ctrl-C, so that a stopped job still checkpoints."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _gamma_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected LOW,HIGH, got {text!r}", param_hint="--gamma") from None
    if not 0 < low <= high:
        raise click.BadParameter(f"need 0 < LOW <= HIGH, got {text!r}", param_hint="--gamma")
    return low, high


@main.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--arch", default="photonas", help="photonas, photonet or a 32-bit genotype.")
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    default=Path("runs/train"),
    help="Run directory (checkpoint last.pt, log).",
)
@click.option("--steps", type=click.IntRange(min=1), default=4000, help="Optimiser steps.")
@click.option("--batch", type=click.IntRange(min=1), default=8, help="Photos per step.")
@click.option("--size", type=click.IntRange(min=32), default=256, help="Random crop side (px).")
@click.option(
    "--crop",
    type=click.Choice(["resized", "native"]),
    default="resized",
    show_default=True,
    help="resized: 25-100% of a photo scaled to --size; native: --size px at the photo's "
    "own resolution (matches full-size use).",
)
@click.option(
    "--gamma",
    default="1,1",
    show_default=True,
    help="Tone augmentation: each crop becomes crop**g with g log-uniform in LOW,HIGH "
    "(e.g. 0.7,2.0 teaches dark photos; 1,1 = off).",
)
@click.option("--lr", type=float, default=5e-4, help="Peak learning rate (warm-up, cosine).")
@click.option(
    "--clip-grad", type=float, default=1.0, help="Clip the global gradient norm to this (0 = off)."
)
@click.option(
    "--pixel-weight",
    type=float,
    default=10.0,
    help="Weight of the pixel MSE against the mean perceptual term.",
)
@click.option(
    "--levels",
    default="relu1_1,relu2_1,relu3_1,relu4_1,relu5_1",
    help="Encoder levels of the perceptual loss, comma-separated ('' = none).",
)
@click.option("--precision", type=PRECISION, default="bf16", help="Autocast precision.")
@click.option("--device", default="auto", help=DEVICE_HELP)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=1),
    default=200,
    help="Save a checkpoint every N steps.",
)
@click.option(
    "--val-every",
    type=click.IntRange(min=1),
    default=200,
    help="Validation PSNR on held-aside photos every N steps.",
)
@click.option(
    "--init",
    type=click.Path(exists=True, path_type=Path),
    help="Warm start from a checkpoint sharing layers.",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@click.option("--seed", type=int, default=0, help="Random seed.")
@click.option(
    "--export",
    type=click.Path(path_type=Path),
    help="After training, write fp16 weights to this file.",
)
def train(
    data,
    arch,
    out,
    steps,
    batch,
    size,
    crop,
    gamma,
    lr,
    clip_grad,
    pixel_weight,
    levels,
    precision,
    device,
    checkpoint_every,
    val_every,
    init,
    resume,
    seed,
    export,
) -> None:
    """Train a decoder to reconstruct the photos in DATA (encoder frozen, SPEC §4).

    Ctrl-C or SIGTERM (a scheduler stopping the job) saves a checkpoint in --out first;
    rerun with --resume to continue."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from .encoder import LEVELS
    from .train import TrainConfig, export_weights, set_threads
    from .train import train as run_train

    lv = tuple(x for x in levels.split(",") if x)
    bad = [x for x in lv if x not in LEVELS]
    if bad:
        raise click.BadParameter(
            f"unknown level(s) {bad}; use {','.join(LEVELS)}", param_hint="--levels"
        )
    cfg = TrainConfig(
        str(data),
        arch,
        str(out),
        steps,
        batch,
        size,
        lr,
        levels=lv,
        pixel_weight=pixel_weight,
        precision=precision,
        device=device,
        seed=seed,
        checkpoint_every=checkpoint_every,
        val_every=val_every,
        init=str(init) if init else None,
        clip_grad=clip_grad,
        crop=crop,
        gamma=_gamma_range(gamma),
    )
    cfg = replace(cfg, warmup=min(cfg.warmup, max(1, steps // 10)))
    set_threads()
    _sigterm_interrupts()
    console = _console()
    columns = (
        TextColumn("[bold]train"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("train", total=steps, info="")
            bar.update(task, completed=0)

            def on_step(step: int, info: dict) -> None:
                bar.update(task, completed=step, info=f"loss {info['loss']:.4f}")

            ckpt = run_train(cfg, resume, on_step, log=lambda m: bar.console.print(m))
    except KeyboardInterrupt:
        click.echo("interrupted; resume with --resume", err=True)
        sys.exit(130)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        raise _fail(err) from None
    click.echo(str(ckpt))
    if export:
        click.echo(str(export_weights(ckpt, export)))


@main.command()
@click.argument("archs", nargs=-1)
@click.option("--size", type=click.IntRange(min=32), default=512, help="Side for the FLOPs count.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per architecture.")
def arch(archs, size, as_json) -> None:
    """Describe decoder architectures: genotype bits, transfer points, parameters, FLOPs.

    ARCHS: names (photonas, photonet, wct5) or 32-bit genotypes; default all named ones.
    """
    from .decoder import Decoder, count_parameters, decoder_flops
    from .genotype import BIT_NAMES, NAMED, resolve

    try:
        genotypes = [(a, resolve(a)) for a in archs] or list(NAMED.items())
    except ValueError as err:
        raise _fail(err) from None
    for name, g in genotypes:
        dec = Decoder(g)
        info = {
            "name": name,
            "genotype": str(g),
            "bits_on": [BIT_NAMES[i] for i, b in enumerate(str(g)) if b == "1"],
            "transfer_points": dec.transfer_points,
            "parameters": count_parameters(dec),
            f"gflops_{size}": round(decoder_flops(dec, size, size) / 1e9, 2),
        }
        if as_json:
            click.echo(json.dumps(info))
        else:
            click.echo(
                f"{name}: {g}  params {info['parameters'] / 1e6:.2f} M  "
                f"decoder {info[f'gflops_{size}']} GFLOPs at {size}x{size}  "
                f"transfers {', '.join(dec.transfer_points) or 'none'}"
            )


main.add_command(eval_command)
main.add_command(bench_speed_command)
main.add_command(video_command)
main.add_command(eval_video_command)
main.add_command(search_command)
main.add_command(prune_command)

if __name__ == "__main__":  # pragma: no cover
    main()

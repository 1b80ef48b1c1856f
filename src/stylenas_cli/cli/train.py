"""``stylenas train``: reconstruction training of a decoder."""

from __future__ import annotations

import math
from pathlib import Path

import click

from ._common import Finite, command, console, device_option, precision_option


def _gamma_range(ctx, param, text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected LOW,HIGH, got {text!r}") from None
    if not (math.isfinite(high) and 0 < low <= high):
        raise click.BadParameter(f"need finite 0 < LOW <= HIGH, got {text!r}")
    return low, high


def _levels(ctx, param, text: str) -> tuple[str, ...]:
    from ..encoder import LEVELS

    levels = tuple(x for x in text.split(",") if x)
    bad = [x for x in levels if x not in LEVELS]
    if bad:
        raise click.BadParameter(f"unknown level(s) {bad}; use {','.join(LEVELS)}")
    return levels


@command("train", interrupted="interrupted; resume with --resume")
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
    help="resized: 25-100% of a photo scaled to --size; native: --size px at the photo's "
    "own resolution (matches full-size use).",
)
@click.option(
    "--gamma",
    default="1,1",
    callback=_gamma_range,
    help="Tone augmentation: each crop becomes crop**g with g log-uniform in LOW,HIGH "
    "(e.g. 0.7,2.0 teaches dark photos; 1,1 = off).",
)
@click.option(
    "--lr", type=Finite(min=0, min_open=True), default=5e-4,
    help="Peak learning rate (warm-up, cosine).",
)  # fmt: skip
@click.option(
    "--clip-grad", type=Finite(min=0), default=1.0,
    help="Clip the global gradient norm to this (0 = off).",
)  # fmt: skip
@click.option(
    "--pixel-weight",
    type=Finite(min=0),
    default=10.0,
    help="Weight of the pixel MSE against the mean perceptual term.",
)
@click.option(
    "--levels",
    default="relu1_1,relu2_1,relu3_1,relu4_1,relu5_1",
    callback=_levels,
    help="Encoder levels of the perceptual loss, comma-separated ('' = none).",
)
@precision_option("auto", "the training step", training=True)
@device_option
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
def train_command(
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

    from ..device import use_all_cores
    from ..train import TrainConfig, export_weights, train

    cfg = TrainConfig(
        str(data),
        arch,
        str(out),
        steps,
        batch,
        size,
        lr,
        levels=levels,
        pixel_weight=pixel_weight,
        precision=precision,
        device=device,
        seed=seed,
        checkpoint_every=checkpoint_every,
        val_every=val_every,
        init=str(init) if init else None,
        clip_grad=clip_grad,
        crop=crop,
        gamma=gamma,
    )
    use_all_cores()
    columns = (
        TextColumn("[bold]train"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console(), transient=False) as bar:
        task = bar.add_task("train", total=steps, info="")

        def on_step(step: int, info: dict) -> None:
            bar.update(task, completed=step, info=f"loss {info['loss']:.4f}")

        ckpt = train(cfg, resume, on_step, log=lambda m: bar.console.print(m))
    click.echo(str(ckpt))
    if export:
        click.echo(str(export_weights(ckpt, export)))


@command("supernet", interrupted="interrupted; resume with --resume")
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    default=Path("runs/supernet"),
    help="Run directory (checkpoint last.pt).",
)
@click.option("--steps", type=click.IntRange(min=1), default=2000, help="Optimiser steps.")
@click.option("--batch", type=click.IntRange(min=1), default=8, help="Photos per step.")
@click.option("--size", type=click.IntRange(min=32), default=128, help="Random crop side (px).")
@click.option(
    "--subnets",
    type=click.IntRange(min=0),
    default=2,
    help="Random sub-networks per step, besides the largest (photonet) and the smallest.",
)
@click.option(
    "--lr", type=Finite(min=0, min_open=True), default=1e-4,
    help="Peak learning rate (warm-up, cosine); low, the weights start trained.",
)  # fmt: skip
@click.option(
    "--pixel-weight",
    type=Finite(min=0),
    default=50.0,
    help="Weight of the pixel MSE against the mean perceptual term.",
)
@click.option(
    "--levels",
    default="relu1_1,relu2_1,relu3_1",
    callback=_levels,
    help="Encoder levels of the perceptual loss, comma-separated ('' = none).",
)
@precision_option("auto", "the training step", training=True)
@device_option
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=1),
    default=50,
    help="Save a checkpoint every N steps.",
)
@click.option(
    "--init",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PhotoNet weights to start from (default: the shipped photonet).",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@click.option("--seed", type=int, default=0, help="Random seed.")
@click.option(
    "--export",
    type=click.Path(path_type=Path),
    help="After training, write the supernet's fp16 weights to this file.",
)
def supernet_command(
    data, out, steps, batch, size, subnets, lr, pixel_weight, levels, precision, device,
    checkpoint_every, init, resume, seed, export,
) -> None:  # fmt: skip
    """Fine-tune PhotoNet as a weight-sharing supernet on the photos in DATA.

    Every step trains the largest sub-network (photonet), the smallest and --subnets random
    ones on one batch; afterwards any genotype's decoder can be cut from the shared weights
    (`stylenas search --proxy supernet`). Ctrl-C or SIGTERM saves a checkpoint in --out
    first; rerun with --resume to continue."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from ..device import use_all_cores
    from ..nas.supernet import SupernetConfig, export_supernet, train_supernet

    cfg = SupernetConfig(
        str(data),
        str(out),
        steps=steps,
        batch=batch,
        size=size,
        lr=lr,
        k=subnets,
        pixel_weight=pixel_weight,
        levels=levels,
        init=str(init) if init else None,
        seed=seed,
        checkpoint_every=checkpoint_every,
        device=device,
        precision=precision,
    )
    use_all_cores()
    columns = (
        TextColumn("[bold]supernet"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console(), transient=False) as bar:
        task = bar.add_task("supernet", total=steps, info="")

        def on_step(step: int, info: dict) -> None:
            largest, smallest = info["losses"][:2]
            bar.update(task, completed=step, info=f"loss {largest:.4f} … {smallest:.4f}")

        ckpt = train_supernet(cfg, resume, log=lambda m: bar.console.print(m), on_step=on_step)
    click.echo(str(ckpt))
    if export:
        click.echo(str(export_supernet(ckpt, export)))

"""What every command shares: the one place where library errors, shortage of memory and
interruptions become a clean line and an exit code; the stderr console; shared options.

Library code raises :class:`~stylenas_cli.errors.StylenasError` (one line for the user);
:class:`Command` turns it into ``error: <message>`` and exit 1, an allocator failure into a
line saying what to change, and Ctrl-C or SIGTERM into exit 130. Nothing here imports torch,
so ``--help`` and ``--version`` start instantly.
"""

from __future__ import annotations

import math
import signal
import sys
from pathlib import Path

import click

from ..config import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_REGIONS,
    DEFAULT_STYLE_SIZE,
    DEFAULT_TRANSFER,
    DEFAULT_WORK_SIZE,
    LiftConfig,
)
from ..errors import StylenasError, is_oom

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True}
INTERRUPTED = 130  # the shell's code for a process stopped by Ctrl-C (128 + SIGINT)


class CleanError(click.ClickException):
    """One line ``error: <message>`` on stderr, exit code 1."""

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


class Command(click.Command):
    """A command whose failures end as one clean line (see the module docstring).

    ``interrupted``: what to say when the command is stopped by Ctrl-C or SIGTERM (what
    ``timeout``, ``kill`` and ``docker stop`` send), e.g. how to resume."""

    def __init__(self, *args, interrupted: str = "interrupted", **kwargs) -> None:
        kwargs.setdefault("context_settings", CONTEXT)
        super().__init__(*args, **kwargs)
        self.interrupted = interrupted

    def invoke(self, ctx: click.Context):
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            return super().invoke(ctx)
        except StylenasError as err:
            raise CleanError(first_line(err)) from None
        except KeyboardInterrupt:
            click.echo(f"error: {self.interrupted}", err=True)
            sys.exit(INTERRUPTED)
        except (RuntimeError, MemoryError) as err:
            if not is_oom(err):
                raise
            raise CleanError(
                "out of memory: try a smaller --max-size or --batch-size, or --device cpu"
            ) from None
        except OSError as err:  # disk full, permission denied, ...
            where = f"{err.filename}: " if err.filename else ""
            raise CleanError(f"{where}{err.strerror or first_line(err)}") from None
        finally:
            signal.signal(signal.SIGTERM, previous)


def command(name: str | None = None, **attrs):
    """``@click.command`` with :class:`Command` and the shared context settings."""
    return click.command(name, cls=Command, **attrs)


def console():
    """A rich console on stderr (stdout stays for results)."""
    from rich.console import Console

    return Console(stderr=True)


def options(*decorators):
    """Several click decorators as one."""

    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


device_option = click.option(
    "--device", default="auto", help="Where to run: auto (CUDA if available), cpu, cuda or cuda:N."
)


def precision_option(default: str = "auto", what: str = "the convolutions", training=False):
    auto = (
        "bf16 on CUDA, fp32 on the CPU (training in emulated bf16 is many times slower)."
        if training
        else "bf16 on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX), else fp32."
    )
    return click.option(
        "--precision",
        type=click.Choice(["auto", "fp32", "fp16", "bf16"]),
        default=default,
        help=f"Autocast precision of {what}. auto: {auto}",
    )


arch_option = click.option(
    "--arch",
    default=None,
    help="photonas, photonet, a 32-bit genotype string or a search run's best.json. "
    "Default: the genotype stored in --weights, else photonas.",
)
weights_option = click.option(
    "--weights",
    type=click.Path(path_type=Path),
    help="Decoder weights file. Default: the shipped weights of --arch.",
)
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")


class Finite(click.FloatRange):
    """A float option, optionally within a range (as :class:`click.FloatRange`), that refuses
    NaN and infinities: ``--lift-eps inf`` would otherwise write a black image."""

    name = "float"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"must be a finite number, got {value!r}", param, ctx)
        return number


def alpha_option(f):
    return click.option(
        "--alpha",
        type=Finite(0.0, 1.0),
        default=1.0,
        help="Stylisation strength in [0, 1] (0 = the content unchanged, 1 = the full transfer).",
    )(f)


class RayAddress(click.ParamType):
    """A Ray cluster address, checked before anything starts
    (:func:`~stylenas_cli.raycluster.parse_address`)."""

    name = "auto|HOST:PORT|ray://HOST:PORT"

    def convert(self, value, param, ctx):
        from ..raycluster import parse_address

        try:
            return parse_address(str(value)).text
        except StylenasError as err:
            self.fail(str(err), param, ctx)


def ray_options(f):
    """``--address`` and ``--connect-timeout``: the Ray cluster a ``--backend ray`` run joins."""
    from ..raycluster import CONNECT_TIMEOUT

    f = click.option(
        "--connect-timeout",
        type=Finite(min=0, min_open=True),
        default=CONNECT_TIMEOUT,
        help="Seconds to reach the --address cluster before giving up.",
    )(f)
    return click.option(
        "--address",
        type=RayAddress(),
        default=None,
        help="Ray cluster to join: auto (the one running here or $RAY_ADDRESS), HOST:PORT or "
        "ray://HOST:PORT (Ray Client). Default: start a local Ray.",
    )(f)


def progress(console, *columns, **kwargs):
    """A rich progress display on ``console`` with these columns."""
    from rich.progress import Progress

    return Progress(*columns, console=console, **kwargs)


class WorkSize(click.ParamType):
    """``native`` (None: the network on every pixel) or a long side in pixels."""

    name = "PX|native"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int):
            return value
        if str(value).strip().lower() == "native":
            return None
        try:
            size = int(value)
        except ValueError:
            self.fail(f"expected a size in pixels or 'native', got {value!r}", param, ctx)
        if size < 32:
            self.fail(f"must be at least 32 px, got {size}", param, ctx)
        return size


def lift_options(f):
    """``--work-size``, ``--lift-radius``, ``--lift-eps``: the working-resolution network and
    the guided-filter lift to full resolution (build the LiftConfig with :func:`lift_config`)."""
    defaults = LiftConfig()
    f = click.option(
        "--lift-eps",
        type=Finite(min=0, min_open=True),
        default=defaults.eps,
        help="Regularisation of the lift's guided filter (larger: smoother colour, less "
        "edge-aware).",
    )(f)
    f = click.option(
        "--lift-radius",
        type=click.IntRange(min=1),
        default=defaults.radius,
        help="Window radius of the lift's guided filter, in pixels at the working size.",
    )(f)
    return click.option(
        "--work-size",
        type=WorkSize(),
        default=DEFAULT_WORK_SIZE,
        help="Long side (px) the network sees; its result is lifted to the photo's own size "
        "with an edge-aware colour model. 'native': the network on every pixel (slow; memory "
        "grows with the photo).",
    )(f)


style_size_option = click.option(
    "--style-size",
    type=click.IntRange(min=32),
    default=DEFAULT_STYLE_SIZE,
    help="Long side (px) the style photo is read at for its statistics (smaller ones as they are).",
)


max_pixels_option = click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse image files declaring more pixels than this (width x height): a tiny "
    "'decompression bomb' file can declare a huge image. Raise it for genuine giant photos.",
)


def note_precision(requested: str, device, quiet: bool = False) -> None:
    """Say on stderr when the requested precision is not the one that runs."""
    from ..device import precision_note

    note = precision_note(requested, device)
    if note and not quiet:
        click.echo(f"note: {note}", err=True)


def lift_config(radius: int, eps: float) -> LiftConfig:
    return LiftConfig(radius=radius, eps=eps)


cache_option = click.option(
    "--no-cache",
    "no_cache",
    is_flag=True,
    help="Do not read or write the style-statistics cache ($STYLENAS_CACHE, else "
    "~/.cache/stylenas; an empty STYLENAS_CACHE also turns it off).",
)


def auto_masks_options(f):
    """``--auto-masks`` and ``--regions``: semantic regions found without label maps."""
    f = click.option(
        "--regions",
        type=click.IntRange(2, 8),
        default=DEFAULT_REGIONS,
        show_default=True,
        help="Regions --auto-masks looks for in the style.",
    )(f)
    return click.option(
        "--auto-masks",
        is_flag=True,
        help="Match regions of the content and the style automatically (clusters of deep "
        "features: sky to sky, ground to ground, decided per segment of each photo, so "
        "boundaries follow its edges) and transfer per region, blended along the photos' "
        "edges. A photo that cannot tell the style's regions apart (their matching's median "
        f"margin under {DEFAULT_TRANSFER.min_match_margin}) is transferred as one region. "
        "Given masks take precedence.",
    )(f)

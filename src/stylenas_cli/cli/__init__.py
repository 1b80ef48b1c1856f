"""``stylenas`` command line: thin Click commands over the library, one module per group.

Each command module holds its commands only; :mod:`._common` holds what they share (errors,
console, options, signals). Library modules are imported inside the commands, so
``stylenas --help`` does not import torch.
"""

from __future__ import annotations

import click

from .. import __version__
from ._common import CONTEXT
from .arch import arch_command
from .eval import bench_speed_command, eval_command
from .lut import lut_command
from .search import prune_command, search_command
from .stylize import stylize_command
from .train import supernet_command, train_command
from .video import eval_video_command, video_command


def _version(ctx: click.Context, param, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from ..weights import describe

    click.echo(f"stylenas {__version__} (weights: {describe()})")
    ctx.exit()


@click.group(context_settings=CONTEXT)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_version,
    help="Show the version and the shipped weights' short sha256, then exit.",
)
def main() -> None:
    """Ultrafast photorealistic style transfer (StyleNAS / PhotoNAS)."""


for _command in (
    stylize_command,
    lut_command,
    video_command,
    train_command,
    supernet_command,
    arch_command,
    eval_command,
    eval_video_command,
    bench_speed_command,
    search_command,
    prune_command,
):
    main.add_command(_command)

__all__ = ["main"]

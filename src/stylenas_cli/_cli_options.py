"""Click options shared by the commands that load a trained network."""

from pathlib import Path

import click

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

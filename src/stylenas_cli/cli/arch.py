"""``stylenas arch``: describe decoder architectures."""

from __future__ import annotations

import json

import click

from ._common import command


@command("arch")
@click.argument("archs", nargs=-1)
@click.option("--size", type=click.IntRange(min=32), default=512, help="Side for the FLOPs count.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per architecture.")
def arch_command(archs, size, as_json) -> None:
    """Describe decoder architectures: genotype bits, transfer points (and those stylisation
    uses by default: the decoder's own are left out), parameters, FLOPs.

    ARCHS: names (photonas, photonet, wct5) or 32-bit genotypes; default all named ones.
    """
    from ..decoder import Decoder, count_parameters, decoder_flops
    from ..genotype import BIT_NAMES, NAMED, resolve
    from ..style import used_points

    genotypes = [(a, resolve(a)) for a in archs] or list(NAMED.items())
    for name, g in genotypes:
        dec = Decoder(g)
        info = {
            "name": name,
            "genotype": str(g),
            "bits_on": [BIT_NAMES[i] for i, b in enumerate(str(g)) if b == "1"],
            "transfer_points": dec.transfer_points,
            # the decoder's own points are left out by default (TransferSettings)
            "used_points": used_points(dec.transfer_points),
            "parameters": count_parameters(dec),
            f"gflops_{size}": round(decoder_flops(dec, size, size) / 1e9, 2),
        }
        if as_json:
            click.echo(json.dumps(info))
        else:
            click.echo(
                f"{name}: {g}  params {info['parameters'] / 1e6:.2f} M  "
                f"decoder {info[f'gflops_{size}']} GFLOPs at {size}x{size}  "
                f"transfers {', '.join(dec.transfer_points) or 'none'} "
                f"(used by default: {', '.join(info['used_points']) or 'none'})"
            )

"""``stylenas lut``: a stylisation exported as a 3D LUT (.cube or HALD CLUT)."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import click

from ._common import (
    alpha_option,
    arch_option,
    auto_masks_options,
    cache_option,
    command,
    console,
    device_option,
    max_pixels_option,
    note_precision,
    overwrite_option,
    precision_option,
    quiet_option,
    style_size_option,
    weights_option,
)


@command("lut")
@click.argument("contents", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-s", "--style", required=True, type=click.Path(path_type=Path), help="Style photo.")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The LUT file: .cube (Adobe Cube LUT 1.0) or .png (a HALD CLUT image).",
)
@click.option(
    "--size",
    type=click.IntRange(2, 256),
    default=None,
    help="Entries per axis. Default: 33 for .cube, 64 (HALD level 8, 512x512) for a HALD "
    "image, whose size must be a square.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["cube", "hald"]),
    default=None,
    help="File format. Default: by the output's suffix.",
)
@click.option("--title", default=None, help="The .cube TITLE. Default: the style's file name.")
@click.option(
    "--fit-size",
    type=click.IntRange(min=32),
    default=1024,
    help="Long side (px) each content is stylised at for the fit (the network at the working "
    "size, lifted to this).",
)
@arch_option
@weights_option
@alpha_option
@style_size_option
@max_pixels_option
@auto_masks_options
@device_option
@precision_option("auto", "the network (WCT statistics always in float64)")
@cache_option
@overwrite_option
@quiet_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def lut_command(
    contents,
    style,
    output,
    size,
    fmt,
    title,
    fit_size,
    arch,
    weights,
    alpha,
    style_size,
    max_pixels,
    auto_masks,
    regions,
    device,
    precision,
    no_cache,
    overwrite,
    quiet,
    as_json,
) -> None:
    """Export the look of STYLE on CONTENT photos as a 3D LUT for other tools (Resolve,
    Premiere, Photoshop, darktable, ffmpeg's lut3d/haldclut filters).

    The shipped pipeline stylises each content and one LUT is fitted to all their colours
    together (a look for a set of shots). A LUT maps each colour to one colour everywhere in
    a photo: what the network does differently in different places (and --auto-masks does
    per region) is averaged into one global mapping.

    \b
    stylenas lut shot1.jpg shot2.jpg --style ref.jpg -o look.cube
    stylenas stylize photos/ --lut look.cube -o out/
    ffmpeg -i in.mp4 -vf lut3d=file=look.cube:interp=trilinear out.mp4
    """
    from dataclasses import replace

    from .. import stylestore
    from ..config import DEFAULT_TRANSFER
    from ..device import use_all_cores
    from ..files import OutputError, check_folders_writable, check_name
    from ..images import open_image
    from ..look import fit_look, load_contents
    from ..lut import hald_level, write_lut
    from ..model import Stylizer

    kind = fmt or ("cube" if output.suffix.lower() == ".cube" else "hald")
    want = ".cube" if kind == "cube" else ".png"
    if output.suffix.lower() != want:
        raise click.UsageError(f"-o {output}: a {kind} LUT is written to a {want} file")
    size = size or (33 if kind == "cube" else 64)
    if kind == "hald":
        hald_level(size)  # a square, else one line
    check_name(output)
    if output.exists() and not overwrite:
        raise OutputError(f"{output}: output exists; pass --overwrite to replace it")
    check_folders_writable([output.parent])
    with open_image(style, max_pixels, "style"):  # a bad style fails before the model loads
        pass
    images = load_contents(contents, max_pixels)
    use_all_cores()
    model = Stylizer.from_pretrained(arch, weights, device, precision)
    note_precision(precision, model.device, quiet)
    settings = replace(DEFAULT_TRANSFER, regions=regions if auto_masks else 0)
    store = None if no_cache else stylestore.cache_dir()
    err = console()
    with err.status("fitting the look...", spinner="dots") if not quiet else nullcontext():
        cache = model.load_style(style, style_size, cache_dir=store, max_pixels=max_pixels,
                                 settings=settings)  # fmt: skip
        fit = fit_look(model, images, cache, alpha, settings, size, fit_size)
    fit.lut.title = title or style.stem
    write_lut(fit.lut, output, overwrite)
    summary = {
        "output": str(output),
        "format": kind,
        "size": size,
        "contents": [str(c) for c in contents],
        "style": str(style),
        "psnr": [round(p, 2) for p in fit.psnr],
        "mean_psnr": round(fit.mean_psnr, 2),
    }
    if as_json:
        click.echo(json.dumps(summary))
    if not quiet:
        err.print(
            f"{output}  [dim]{size}³ {kind}, fits the pipeline at {fit.mean_psnr:.1f} dB PSNR "
            f"on {len(contents)} content(s)[/]"
        )

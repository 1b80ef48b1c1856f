"""``stylenas video`` and ``stylenas eval-video``: thin commands over :mod:`stylenas_cli.video`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ._common import (
    Finite,
    alpha_option,
    arch_option,
    cache_option,
    command,
    console,
    device_option,
    lift_config,
    lift_options,
    note_precision,
    overwrite_option,
    precision_option,
    quiet_option,
    style_size_option,
    weights_option,
)


def _frames_option(ctx, param, value):
    if value is None:
        return (0, None)
    from ..video import parse_frames

    try:
        return parse_frames(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def _progress_columns():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class FpsColumn(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:5.1f} fps" if speed else "  ... fps", style="cyan")

    return (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames"),
        FpsColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )


@command("video", interrupted="interrupted; no output written")
@click.argument("video", type=click.Path(path_type=Path))
@click.option("-s", "--style", required=True, type=click.Path(path_type=Path), help="Style photo.")
@click.option(
    "-o",
    "--output",
    type=click.Path(),  # str: a trailing slash (= a directory) must survive
    help="Output video or directory. Default: <stem>_stylized.<ext> beside VIDEO (same container).",
)
@arch_option
@weights_option
@alpha_option
@click.option(
    "--max-size",
    type=click.IntRange(min=32),
    default=None,
    help="Resize frames so the long side is at most this (keeps aspect, even sides). "
    "Default: the source size. The style photo is resized to the long side the network "
    "sees (at most --style-size).",
)
@lift_options
@style_size_option
@click.option(
    "--frames",
    "frames",
    default=None,
    callback=_frames_option,
    metavar="START:END",
    help="Only source frames START..END-1 (either may be empty: 100: or :48); the audio is "
    "cut to match. Default: all frames.",
)
@click.option(
    "--preview",
    type=click.IntRange(min=1),
    default=None,
    help="Write only the first N frames (of --frames, if given).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Frames stylised together. Default: from the device and frame size "
    "(CUDA: what fits in half the free memory; CPU: 1-4).",
)
@device_option
@precision_option("auto", "the network (WCT statistics always in float64)")
@click.option(
    "--stabilize/--no-stabilize",
    default=True,
    help="Reduce flicker: where the input did not change, keep part of the previous output "
    "(moving regions are left alone; reset at shot cuts).",
)
@click.option(
    "--smoothing",
    type=Finite(0.0, 1.0, max_open=True),
    default=0.0,
    help="With --stabilize, also average the WCT content statistics over the shot with this "
    "weight on the past (0.9 ~ a 10-frame window; 0 = each frame's own).",
)
@click.option(
    "--mode",
    type=click.Choice(["lut", "frames"]),
    default="lut",
    help="lut: the network on keyframes only (each shot's first frame, then one every 2 s), "
    "every frame mapped through its keyframes' 3D LUTs blended in time: measured several "
    "times faster than frames and with less flicker, the look a global colour mapping. "
    "frames: the network on every frame (its local detail too).",
)
@click.option(
    "--export-lut",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write the clip's look, one LUT fitted over its keyframes, to this .cube (or "
    "HALD .png) file for an editor.",
)
@click.option(
    "--codec",
    default=None,
    help="ffmpeg video encoder (libx264, libx265, libvpx-vp9, libsvtav1...). "
    "Default: libx264, or libvpx-vp9 for .webm.",
)
@click.option(
    "--crf",
    type=click.IntRange(0, 63),
    default=None,
    help="Constant rate factor (lower = better, bigger). Default: the codec's "
    "(libx264 18, libx265 20, libvpx-vp9 31, AV1 30).",
)
@click.option(
    "--flicker",
    is_flag=True,
    help="Also measure the flicker ratio (output vs input frame-to-frame change).",
)
@cache_option
@overwrite_option
@quiet_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout at the end.")
def video_command(
    video,
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
    frames,
    preview,
    batch_size,
    device,
    precision,
    stabilize,
    smoothing,
    mode,
    export_lut,
    codec,
    crf,
    flicker,
    no_cache,
    overwrite,
    quiet,
    as_json,
) -> None:
    """Stylise a VIDEO with the colour and tone of a STYLE photo, keeping its frame rate,
    size, frame count, audio and other streams.

    \b
    stylenas video clip.mp4 --style ref.jpg
    stylenas video clip.mov -s ref.jpg -o out/ --max-size 720 --preview 48
    """
    from rich.markup import escape
    from rich.progress import Progress

    from ..device import use_all_cores
    from ..images import open_image
    from ..model import Stylizer
    from ..video import VideoConfig, plan_output, probe, stylize_video
    from ..video.ffmpeg import check_encoding, encoding_for

    cfg = VideoConfig(
        alpha=alpha,
        max_size=max_size,
        work_size=work_size,
        lift=lift_config(lift_radius, lift_eps),
        batch_size=batch_size,
        crf=crf,
        codec=codec,
        frames=frames,
        preview=preview,
        stabilize=stabilize,
        smoothing=smoothing,
        flicker=flicker,
        overwrite=overwrite,
        cache=not no_cache,
        style_size=style_size,
        mode=mode,
        export_lut=export_lut,
        lut_size=33 if export_lut is None or export_lut.suffix.lower() == ".cube" else 64,
    )
    if export_lut is not None:
        _check_lut_output(export_lut, overwrite)
    err_console = console()
    with open_image(style, what="style"):  # a bad style is refused before anything runs
        pass
    info = probe(video)
    dest = plan_output(video, output, overwrite)
    # An unknown --codec, or one the container cannot hold, fails before the model loads.
    check_encoding(dest, encoding_for(dest, codec, crf))
    use_all_cores()
    model = Stylizer.from_pretrained(arch, weights, device, precision)
    note_precision(precision, model.device, quiet)
    with Progress(*_progress_columns(), console=err_console, disable=quiet) as bar:
        task = bar.add_task("video", total=None)
        result = stylize_video(
            model,
            video,
            dest,
            style,
            cfg,
            info=info,
            on_start=lambda total: bar.update(task, total=total),
            on_frame=lambda: bar.advance(task),
        )
        bar.update(task, total=result.frames, completed=result.frames)
    if as_json:
        click.echo(json.dumps(result.as_dict()))
    if not quiet:
        line = (
            f"{escape(str(result.output))}  [dim]{result.frames} frames {result.width}x"
            f"{result.height} @ {float(result.video_fps):.3g} fps in {result.seconds:.1f}s "
            f"({result.fps:.2f} fps, {result.device}, batch {result.batch_size})[/]"
        )
        if result.flicker is not None:
            line += (
                f"  flicker ratio {_fmt(result.flicker['flicker_ratio'])}"
                f" (relative {_fmt(result.flicker['relative_flicker'])})"
            )
        err_console.print(line)
        for note in result.notes:
            err_console.print(f"[dim]note: {escape(note)}[/]")


def _check_lut_output(path: Path, overwrite: bool) -> None:
    from ..files import OutputError, check_folders_writable, check_name

    if path.suffix.lower() not in (".cube", ".png"):
        raise click.UsageError(f"--export-lut {path}: a LUT is written as .cube or a HALD .png")
    check_name(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: --export-lut file exists; pass --overwrite to replace it")
    check_folders_writable([path.parent])


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


@command("eval-video")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("stylized", type=click.Path(path_type=Path))
@click.option(
    "--frames",
    "frames",
    default=None,
    callback=_frames_option,
    metavar="START:END",
    help="The source frames STYLIZED was made from (as given to 'stylenas video --frames'). "
    "Default: from the first frame.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the metrics as one JSON object on stdout."
)
def eval_video_command(source, stylized, frames, as_json) -> None:
    """Temporal stability of STYLIZED against its SOURCE video.

    \b
    flicker ratio: mean |out_t - out_t-1| / mean |in_t - in_t-1| (1.0 = as stable as the source)
    relative:      the flicker ratio over the contrast ratio (output vs input spatial change):
                   a stylisation that stretches contrast changes more where things move too
    warp error:    change motion does not explain (needs OpenCV: pip install opencv-python-headless)
    """
    from ..video import has_flow, measure_videos

    report = measure_videos(source, stylized, frames)
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(
        f"flicker ratio  {_fmt(report['flicker_ratio'])}  (output change "
        f"{report['output_change']:.4f} / input change {report['input_change']:.4f}, "
        f"{report['frame_pairs']} frame pairs; 1.0 = as stable as the source)"
    )
    click.echo(
        f"relative       {_fmt(report['relative_flicker'])}  (flicker ratio / contrast ratio "
        f"{_fmt(report['contrast_ratio'])}; 1.0 = change in proportion to contrast)"
    )
    if has_flow():
        click.echo(
            f"warp error     {_fmt(report['warp_error'])}  (input "
            f"{_fmt(report['warp_error_input'])}; DIS optical flow)"
        )
    else:
        click.echo("warp error     n/a (needs OpenCV: pip install opencv-python-headless)")
    if "note" in report:
        click.echo(f"note: {report['note']}", err=True)

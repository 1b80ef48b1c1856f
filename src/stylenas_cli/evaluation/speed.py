"""Speed benchmark (the library side of ``stylenas bench-speed``), everything measured in one
run on one machine and reported against the floor of this family of networks:

- **process overhead**: ``stylenas --help``, the imports, building the model, loading weights
  (each in a fresh interpreter, as a user's invocation pays them);
- **the encoder floor**: VGG19 to the deepest level the genotypes need (relu5_1: every
  decoder starts from the bottleneck there) on the content, and on the style at its size;
- **the style pass**: summarising a style (:meth:`~stylenas_cli.model.Stylizer.style_cache`)
  against an encoder pass at the style's size, and the same style read back from the cache;
- **each architecture end to end** (style summarised) at each size, in the papers' mode (the
  network on every pixel) and lifted (the network at the working size), with the ratios to the
  encoder floor and to ``photonet``; the colour-transfer baselines beside them;
- **video**: frames/s of ``stylenas video`` at default settings on a clip, and the share of
  the wall time spent outside the network.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config import DEFAULT_STYLE_SIZE, DEFAULT_WORK_SIZE
from ..device import resolve_device
from ..errors import is_oom
from ..genotype import resolve
from ..model import Stylizer
from .baselines import BASELINES
from .metrics import flops_per_megapixel, median_seconds, parameters, peak_memory

MODES = ("native", "lifted")
REFERENCE = "photonet"


@dataclass
class SpeedRow:
    """Seconds of one method at one square size and mode (``None``: out of memory)."""

    method: str
    size: int
    mode: str  # "native", "lifted" or "baseline"
    seconds: float | None
    peak_bytes: int | None = None
    peak_kind: str = "rss"
    params: int | None = None
    gflops_per_mp: float | None = None

    @property
    def seconds_per_mp(self) -> float | None:
        return None if self.seconds is None else self.seconds / (self.size * self.size / 1e6)


@dataclass
class StylePass:
    """Summarising one style: the network's pass, an encoder pass at that size, the cache."""

    arch: str
    size: tuple[int, int]
    seconds: float
    encoder_seconds: float
    cached_seconds: float | None = None


@dataclass
class SpeedReport:
    precision: str
    work_size: int
    overhead: dict[str, float] = field(default_factory=dict)
    floor: dict[int, float] = field(default_factory=dict)  # content side -> encoder seconds
    styles: list[StylePass] = field(default_factory=list)
    rows: list[SpeedRow] = field(default_factory=list)
    video: dict | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        for row, out in zip(self.rows, d["rows"]):
            out["seconds_per_mp"] = row.seconds_per_mp
        return d

    def seconds(self, method: str, size: int, mode: str) -> float | None:
        return next(
            (r.seconds for r in self.rows if (r.method, r.size, r.mode) == (method, size, mode)),
            None,
        )


def _photo(which: str, size: int) -> torch.Tensor:
    """A real photo from scikit-image resized to ``(1, 3, size, size)`` in [0, 1]."""
    from skimage import data

    pil = Image.fromarray(getattr(data, which)()).convert("RGB")
    arr = np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    return torch.from_numpy(arr / 255.0).permute(2, 0, 1)[None].contiguous()


_OVERHEAD_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
from stylenas_cli.model import Stylizer
from stylenas_cli.weights import load_decoder_state, resolve_arch_and_weights
t1 = time.perf_counter()
genotype, path = resolve_arch_and_weights(sys.argv[1], None)
model = Stylizer(genotype)
t2 = time.perf_counter()
model.decoder.load_state_dict(load_decoder_state(path, genotype))
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "build_s": t2 - t1, "weights_s": t3 - t2}))
"""


def process_overhead(arch: str = "photonas", repeats: int = 3) -> dict[str, float]:
    """What every invocation pays before any pixel, each in a fresh interpreter (median of
    ``repeats``): ``stylenas --help``; importing torch and the library; building the model
    (encoder with its VGG19 weights, the decoder); loading the shipped decoder weights."""
    exe = Path(sys.executable)

    def help_seconds() -> float:
        t0 = time.perf_counter()
        subprocess.run([str(exe), "-m", "stylenas_cli", "--help"], capture_output=True, check=True)
        return time.perf_counter() - t0

    runs = []
    for _ in range(repeats):
        out = subprocess.run(
            [str(exe), "-c", _OVERHEAD_SCRIPT, arch], capture_output=True, text=True, check=True
        )
        runs.append(json.loads(out.stdout))
    result = {"help_s": statistics.median(help_seconds() for _ in range(repeats))}
    for key in runs[0]:
        result[key] = statistics.median(r[key] for r in runs)
    return result


def _time_row(method, size, mode, fn, repeats, device, params=None, gflops=None) -> SpeedRow:
    """One row: peak memory (its run doubles as the warm-up), then the timed runs; a row
    without seconds when the method runs out of memory at this size."""
    try:
        peak = peak_memory(fn, device or "cpu")
        seconds = median_seconds(fn, repeats, warmup=0, device=device)  # peak run warmed it
    except (RuntimeError, MemoryError) as err:
        if not is_oom(err):
            raise
        return SpeedRow(method, size, mode, None, None, "rss", params, gflops)
    return SpeedRow(method, size, mode, seconds, peak.bytes, peak.kind, params, gflops)


def bench_speed(
    archs: tuple[str, ...] = ("photonas", "photonet"),
    sizes: tuple[int, ...] = (512, 1024),
    device: str = "auto",
    precision: str = "auto",
    repeats: int = 3,
    work_size: int = DEFAULT_WORK_SIZE,
    style_size: int = DEFAULT_STYLE_SIZE,
    with_baselines: bool = True,
    with_overhead: bool = True,
    video: Path | None = None,
    on_step: Callable[[str], None] = lambda what: None,
) -> SpeedReport:
    """Measure everything of the module docstring in this process (overhead in fresh ones).

    Networks run with freshly initialised decoders (their speed does not depend on the weight
    values), so no trained weights are needed except for ``video`` and ``with_overhead``, which
    use the shipped ``photonas``. Contents are square ``size × size`` photos, the style a
    square photo at ``style_size``."""
    dev = resolve_device(device)
    probe = Stylizer(resolve(archs[0]), precision=precision).to(dev).eval()
    report = SpeedReport(precision=probe.precision, work_size=work_size)
    if with_overhead:
        on_step("process overhead")
        report.overhead = process_overhead()

    def encode(model: Stylizer, x: torch.Tensor) -> Callable[[], object]:
        def go():
            with torch.inference_mode(), model.autocast():
                return model.encoder(x)

        return go

    for size in sizes:
        on_step(f"encoder floor at {size}x{size}")
        x = _photo("astronaut", size).to(dev)
        report.floor[size] = median_seconds(encode(probe, x), repeats, device=dev)
    style = _photo("coffee", style_size).to(dev)
    style_encoder = median_seconds(encode(probe, style), repeats, device=dev)
    del probe

    for arch in archs:
        model = Stylizer(resolve(arch), precision=precision).to(dev).eval()
        on_step(f"{arch}: style pass at {style_size}x{style_size}")
        cache = model.style_cache(style)
        seconds = median_seconds(lambda m=model: m.style_cache(style), repeats, device=dev)
        report.styles.append(StylePass(arch, (style_size, style_size), seconds, style_encoder))
        params = parameters(model.decoder)
        gflops = flops_per_megapixel(model.decoder) / 1e9
        for size in sizes:
            content = _photo("astronaut", size).to(dev)
            for mode in MODES:
                on_step(f"{arch} {mode} at {size}x{size}")
                ws = None if mode == "native" else work_size

                def run(model=model, content=content, cache=cache, ws=ws):
                    return model.stylize_at(content, cache, work_size=ws)

                report.rows.append(_time_row(arch, size, mode, run, repeats, dev, params, gflops))
            del content
            if dev.type == "cuda":
                torch.cuda.empty_cache()  # the next size starts from an empty allocator
        del model, cache
    if with_overhead or video is not None:
        _cached_style_pass(report, dev, style_size)
    if with_baselines:
        for name, fn in BASELINES.items():
            for size in sizes:
                on_step(f"{name} at {size}x{size}")
                c = _photo("astronaut", size)[0].permute(1, 2, 0).double().numpy()
                s = _photo("coffee", size)[0].permute(1, 2, 0).double().numpy()
                run = lambda fn=fn, c=c, s=s: fn(c, s)  # noqa: E731
                report.rows.append(_time_row(name, size, "baseline", run, repeats, None))
    if video is not None:
        on_step(f"video {video.name}")
        report.video = video_speed(video, dev, precision)
    return report


def _cached_style_pass(report: SpeedReport, device: torch.device, style_size: int) -> None:
    """Time the shipped photonas reading a style back from the on-disk cache (second run)."""
    from skimage import data

    model = Stylizer.from_pretrained("photonas", device=str(device), precision=report.precision)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "style.png"
        Image.fromarray(data.coffee()).resize((style_size, style_size)).save(path)
        model.load_style(path, style_size, cache_dir=Path(tmp))  # writes the entry
        t0 = time.perf_counter()
        model.load_style(path, style_size, cache_dir=Path(tmp))
        seconds = time.perf_counter() - t0
    for style in report.styles:
        if style.arch == "photonas":
            style.cached_seconds = seconds


def video_speed(clip: Path, device: torch.device, precision: str) -> dict:
    """``stylenas video`` at default settings (shipped photonas) on ``clip``: frames/s and
    the share of the wall time outside the network (decoding, encoding, muxing, waiting)."""
    from skimage import data

    from ..video import VideoConfig, stylize_video

    model = Stylizer.from_pretrained("photonas", device=str(device), precision=precision)
    with tempfile.TemporaryDirectory() as tmp:
        style = Path(tmp) / "style.png"
        Image.fromarray(data.coffee()).save(style)
        cfg = VideoConfig(flicker=True, cache=False)
        r = stylize_video(model, clip, Path(tmp) / f"out{clip.suffix}", style, cfg)
    return {
        "clip": clip.name,
        "frames": r.frames,
        "size": f"{r.width}x{r.height}",
        "fps": r.fps,
        "seconds": r.seconds,
        "outside_inference": 1 - r.inference_seconds / r.seconds,
        "flicker_ratio": (r.flicker or {}).get("flicker_ratio"),
        "batch_size": r.batch_size,
    }


# --- the report ------------------------------------------------------------------------------


def _x(num: float | None, den: float | None) -> str:
    if num is None or not den:
        return "—"
    ratio = num / den
    return f"{ratio:.2f}×" if ratio >= 0.1 else f"{ratio:.2g}×"


def speed_markdown(report: SpeedReport) -> str:
    """The benchmark's tables: overhead, floor and style pass as lines, then one row per
    method and size with seconds and the ratios to the encoder floor and to photonet."""
    lines = [f"Precision {report.precision}; lifted = the network at {report.work_size} px.", ""]
    o = report.overhead
    if o:
        lines.append(
            f"* Process overhead: `stylenas --help` {o['help_s']:.2f} s; imports "
            f"{o['import_s']:.2f} s, model build {o['build_s']:.2f} s, weights "
            f"{o['weights_s']:.2f} s."
        )
    floor = ", ".join(f"{s}² {t:.3f} s" for s, t in report.floor.items())
    lines.append(f"* Encoder floor (VGG19 to relu5_1, content): {floor}.")
    for st in report.styles:
        cached = "" if st.cached_seconds is None else f"; from the cache {st.cached_seconds:.3f} s"
        lines.append(
            f"* Style pass, {st.arch}, {st.size[0]}×{st.size[1]}: {st.seconds:.3f} s = "
            f"{_x(st.seconds, st.encoder_seconds)} an encoder pass at that size "
            f"({st.encoder_seconds:.3f} s){cached}."
        )
    v = report.video
    if v:
        lines.append(
            f"* Video `{v['clip']}` ({v['frames']} frames, {v['size']}, default settings): "
            f"{v['fps']:.3f} frames/s, {v['outside_inference']:.0%} of the wall time outside "
            f"inference, flicker ratio {v['flicker_ratio']:.2f}."
        )
    lines += [
        "",
        "| method | decoder GFLOP/MP | size | mode | seconds | s/MP | × encoder floor "
        "| × photonet | peak MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.rows:
        ref = report.seconds(REFERENCE, r.size, r.mode)
        floor = report.floor.get(r.size) if r.mode != "baseline" else None
        secs = "OOM" if r.seconds is None else f"{r.seconds:.3f}"
        spm = "—" if r.seconds_per_mp is None else f"{r.seconds_per_mp:.3f}"
        peak = "—" if not r.peak_bytes else f"{r.peak_bytes / 2**20:.0f}"
        gflops = "—" if r.gflops_per_mp is None else f"{r.gflops_per_mp:.0f}"
        lines.append(
            f"| {r.method} | {gflops} | {r.size}² | {r.mode} | {secs} | {spm} "
            f"| {_x(r.seconds, floor)} | {_x(r.seconds, ref)} | {peak} |"
        )
    return "\n".join(lines) + "\n"

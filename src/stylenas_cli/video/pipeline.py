"""Streaming video stylisation: decode -> batched stylise -> encode, then mux the other streams.

Three stages overlap: a reader thread decodes frames with imageio-ffmpeg (one frame at a time)
into batches, the calling thread stylises them, a writer thread encodes them with ffmpeg. The
queues between the stages are bounded, so memory does not grow with the length of the clip and
the slowest stage sets the pace. The encoded video is then muxed with every non-video stream of
the input (audio, subtitles, data), copied unchanged, into a temp file that is renamed onto the
output only when all went well. Temporal stabilisation is :mod:`.stabilize`; everything that
talks to ffmpeg is :mod:`.ffmpeg`.
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from .. import stylestore
from ..config import (
    DEFAULT_STYLE_SIZE,
    DEFAULT_TRANSFER,
    DEFAULT_WORK_SIZE,
    LiftConfig,
    TransferSettings,
)
from ..device import synchronize
from ..errors import is_oom
from ..files import atomic_write, check_writable, make_temp, plan_outputs, remove_stale_temps
from ..lut import write_lut
from ..memory import FULL_BYTES_PER_PIXEL, NETWORK_BYTES_PER_PIXEL
from ..model import Stylizer
from ..shape import check_side, work_shape
from .ffmpeg import (
    CONTAINERS,
    Encoding,
    VideoError,
    VideoInfo,
    encoder_error,
    encoding_for,
    mux,
    probe,
    probe_frames,
    read_frames,
)
from .looks import LookPlayer, analyse
from .stabilize import StabilizeConfig, Stabilizer, stylize_frames
from .temporal import FlickerMeter

# --- planning ---------------------------------------------------------------------------------


@dataclass
class VideoConfig:
    """Everything ``stylenas video`` decides besides the model and the paths."""

    alpha: float = 1.0
    max_size: int | None = None  # long side of the output frames; None: the source size
    batch_size: int | None = None  # None: chosen from the device and the frame size
    crf: int | None = None  # None: the codec's default (libx264: 18)
    codec: str | None = None  # None: the container's usual encoder
    frames: tuple[int, int | None] = (0, None)  # [start, end) in source frames
    preview: int | None = None  # only the first N frames of the range
    work_size: int | None = DEFAULT_WORK_SIZE  # long side the network sees; None: native
    lift: LiftConfig = field(default_factory=LiftConfig)
    cache: bool = True  # keep the style's statistics on disk across runs (stylestore)
    style_size: int = DEFAULT_STYLE_SIZE  # long side the style is read at (at most)
    stabilize: bool = True
    smoothing: float = 0.0  # with stabilize: weight of past frames in the WCT statistics
    flicker: bool = False  # measure the flicker ratio while encoding
    overwrite: bool = False
    transfer: TransferSettings = DEFAULT_TRANSFER  # every setting of the transfer itself
    # "lut": the network on keyframes only, every frame mapped through the keyframes' 3D LUTs
    # (video.looks): several times faster and steadier; "frames": the network on every frame
    mode: str = "lut"
    export_lut: Path | None = None  # also write the clip's look as one LUT here
    lut_size: int = 33


@dataclass
class VideoResult:
    input: Path
    output: Path
    frames: int
    width: int
    height: int
    video_fps: Fraction
    seconds: float
    device: str
    batch_size: int
    stabilize: bool
    codec: str
    streams_copied: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)
    flicker: dict | None = None
    inference_seconds: float = 0.0  # wall time inside the network and the lift (or the LUTs)
    mode: str = "frames"

    @property
    def fps(self) -> float:
        """Frames stylised per second of wall time (decode, stylise, encode, mux)."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        d = {
            "input": str(self.input),
            "output": str(self.output),
            "frames": self.frames,
            "width": self.width,
            "height": self.height,
            "video_fps": round(float(self.video_fps), 4),
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 3),
            "device": self.device,
            "batch_size": self.batch_size,
            "stabilize": self.stabilize,
            "codec": self.codec,
            "streams_copied": list(self.streams_copied),
            "inference_seconds": round(self.inference_seconds, 3),
            "mode": self.mode,
        }
        if self.flicker is not None:
            d |= self.flicker
        if self.notes:
            d["notes"] = self.notes
        return d


def parse_frames(spec: str) -> tuple[int, int | None]:
    """``"START:END"`` (END exclusive, either may be empty) -> ``(start, end or None)``."""
    m = re.fullmatch(r"\s*(\d*)\s*:\s*(\d*)\s*", spec)
    if not m:
        raise VideoError(f"expected START:END frame numbers (e.g. 0:48 or 100:), got {spec!r}")
    start = int(m.group(1)) if m.group(1) else 0
    end = int(m.group(2)) if m.group(2) else None
    if end is not None and end <= start:
        raise VideoError(f"END must be greater than START, got {spec!r}")
    return start, end


def frame_range(info: VideoInfo, cfg: VideoConfig) -> tuple[int, int]:
    """The source frames ``[start, end)`` to stylise."""
    start, end = cfg.frames
    total = info.expected_frames
    if start >= total:
        raise VideoError(f"--frames starts at {start} but {info.path} has {total} frames")
    end = total if end is None else min(end, total)
    if cfg.preview is not None:
        end = min(end, start + cfg.preview)
    return start, end


def output_size(width: int, height: int, max_size: int | None) -> tuple[int, int]:
    """Frame size of the output: long side at most ``max_size``, both sides even (yuv420p)."""
    if max_size and max(width, height) > max_size:
        scale = max_size / max(width, height)
        width, height = round(width * scale), round(height * scale)
    return max(2, width // 2 * 2), max(2, height // 2 * 2)


def plan_output(src: Path, output: str | Path | None, overwrite: bool) -> Path:
    """Output path (:func:`~stylenas_cli.files.plan_outputs`: ``<stem>_stylized.<ext>``
    beside the input or in the ``output`` directory, else ``output``); checks the container,
    overwriting and that the folder is writable before any work is done."""
    dest = plan_outputs([src], output, CONTAINERS, "a video container")[0]
    if dest.is_dir():
        raise VideoError(f"{dest}: is a directory")
    if dest.exists() and not overwrite:
        raise VideoError(f"{dest}: output exists; pass --overwrite to replace it")
    check_writable(dest.parent)
    return dest


def default_batch_size(
    device: torch.device,
    width: int,
    height: int,
    precision: str = "fp32",
    work_size: int | None = None,
) -> int:
    """Frames per batch: on CUDA as many as fit in half the free memory (at most 16); on CPU
    batching buys little, so 1-4 frames by the size the network sees, which keeps memory and
    latency low."""
    h, w = work_shape(height, width, work_size)
    pixels = w * h
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        # Peak activation memory per pixel the network sees, and the frame in and out.
        per_pixel = NETWORK_BYTES_PER_PIXEL * (1 if precision == "fp32" else 0.75)
        per_frame = per_pixel * pixels + FULL_BYTES_PER_PIXEL * width * height
        return int(min(16, max(1, free // 2 // per_frame)))
    return int(min(4, max(1, (1 << 19) // pixels)))


# --- the pipeline -----------------------------------------------------------------------------

_END = object()


class _Abort(BaseException):
    """Thrown into the ffmpeg writer so that it kills ffmpeg instead of finishing the file."""


@dataclass
class _Failed:
    error: BaseException


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _get(q: queue.Queue, stop: threading.Event):
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return _END


def _reader(frames: Iterator[np.ndarray], batch: int, size, pin: bool, q, stop) -> None:
    """Decode thread: group frames into uint8 ``(n, H, W, 3)`` tensors (pinned on CUDA)."""
    w, h = size
    try:
        buf, n = None, 0
        for frame in frames:
            if stop.is_set():
                return
            if buf is None:
                buf = torch.empty((batch, h, w, 3), dtype=torch.uint8, pin_memory=pin)
            buf[n].numpy()[...] = frame
            n += 1
            if n == batch:
                if not _put(q, buf, stop):
                    return
                buf, n = None, 0
        if n:
            _put(q, buf[:n], stop)
        _put(q, _END, stop)
    except BaseException as err:  # handed to the main thread, which raises it
        _put(q, _Failed(err), stop)
    finally:
        frames.close()  # type: ignore[attr-defined]


def _writer(open_gen: Callable, q, stop, meter, on_frame, errors: list) -> None:
    """Encode thread: send frames to ffmpeg; kill it (no trailer) if the run is stopped."""
    gen = None
    try:
        gen = open_gen()
        gen.send(None)
        while not stop.is_set():
            item = _get(q, stop)
            if item is _END:
                break
            inputs, outputs, ready = item
            if ready is not None:
                ready.synchronize()  # the device-to-host copy of this batch is done
            for i in range(outputs.shape[0]):
                frame = outputs[i].numpy()
                gen.send(frame)
                if meter is not None:
                    meter.update(inputs[i].numpy(), frame)
                on_frame()
        if stop.is_set():
            raise _Abort
        gen.close()  # waits for ffmpeg to finish the file
    except BaseException as err:
        if gen is not None:
            with contextlib.suppress(BaseException):
                gen.throw(_Abort)
        if not isinstance(err, _Abort):
            errors.append(err)
        stop.set()


@dataclass(frozen=True)
class _Job:
    """One planned run: which frames, at what size, encoded how, written where."""

    info: VideoInfo
    dest: Path
    start: int  # first source frame
    count: int  # frames to stylise
    size: tuple[int, int]  # output (width, height)
    batch: int
    encoding: Encoding
    video_tmp: Path  # the encoded video before muxing


def stylize_video(
    model: Stylizer,
    src: str | Path,
    dest: str | Path,
    style: str | Path,
    cfg: VideoConfig | None = None,
    info: VideoInfo | None = None,
    on_start: Callable[[int], None] = lambda total: None,
    on_frame: Callable[[], None] = lambda: None,
) -> VideoResult:
    """Stylise the video ``src`` with the photo ``style`` into ``dest`` (atomically).

    ``on_start(total_frames)`` once the work is planned, ``on_frame()`` after each encoded
    frame (from the writer thread). Raises :class:`VideoError` with a one-line reason; on any
    error or KeyboardInterrupt ``dest`` is untouched and no temp file is left."""
    t0 = time.perf_counter()
    cfg = cfg or VideoConfig()
    src, dest = Path(src), Path(dest)
    info = info or probe(src)
    start, end = frame_range(info, cfg)
    size = output_size(info.width, info.height, cfg.max_size)
    check_side(*size, f"{src}: frames")
    notes = []
    if cfg.max_size is None and size != (info.width, info.height):
        notes.append(f"{info.width}x{info.height} cropped to {size[0]}x{size[1]} (yuv420p)")
    if info.vfr:
        notes.append(f"variable frame rate resampled to a constant {float(info.fps):.3f} fps")
    encoding = encoding_for(dest, cfg.codec, cfg.crf)
    batch = cfg.batch_size or default_batch_size(
        model.device, *size, model.precision, cfg.work_size
    )
    # The style at the scale of the frames the network sees (its statistics then describe the
    # same feature scale), at most the style size.
    net_long = max(work_shape(size[1], size[0], cfg.work_size))
    store = stylestore.cache_dir() if cfg.cache else None
    cache = model.load_style(style, min(net_long, cfg.style_size), cache_dir=store,
                             settings=cfg.transfer)  # fmt: skip
    notes += cache.notes
    meter = FlickerMeter() if cfg.flicker else None

    on_start(end - start)
    t_look = time.perf_counter()
    look = None
    if cfg.mode == "lut" or cfg.export_lut is not None:
        look = analyse(model, info, start, end - start, size, cache, cfg.alpha, cfg.work_size,
                       cfg.transfer, cfg.lut_size)  # fmt: skip
        if cfg.export_lut is not None:
            write_lut(look.whole(cfg.lut_size), cfg.export_lut, cfg.overwrite)
        notes.append(f"{len(look.shots)} shot(s), {len(look.keys)} keyframe(s) stylised")
    if cfg.mode not in ("frames", "lut"):
        raise VideoError(f"unknown video mode {cfg.mode!r}: use frames or lut")
    stabilizer = Stabilizer(StabilizeConfig(momentum=cfg.smoothing)) if cfg.stabilize else None
    if cfg.mode == "lut":
        stylise = _lut_stylise(LookPlayer(look), stabilizer)
        busy_before = time.perf_counter() - t_look  # the keyframes' network and fits
    else:
        stylise = _network_stylise(model, cache, cfg, stabilizer)
        busy_before = 0.0
    remove_stale_temps(dest)  # what a killed run on this output left behind
    job = _Job(info, dest, start, end - start, size, batch, encoding, make_temp(dest, ".video.tmp"))
    try:
        written, busy = _pipeline(model.device, job, stylise, meter, on_frame)
        busy += busy_before
        copied: tuple[str, ...] = ()

        def write(tmp: Path) -> None:
            nonlocal copied
            copied = mux(job.video_tmp, info, start, written, encoding.muxer, tmp, notes, dest)
            got = probe_frames(tmp)
            if got != written:
                raise VideoError(f"{dest}: wrote {written} frames but the file holds {got}")

        try:
            atomic_write(dest, write, cfg.overwrite)
        except OSError as err:
            msg = f"{dest}: could not write the output ({err.strerror or err})"
            raise VideoError(msg) from None
    finally:
        job.video_tmp.unlink(missing_ok=True)
    return VideoResult(
        src, dest, written, *size, info.fps, time.perf_counter() - t0, str(model.device),
        batch, cfg.stabilize and cfg.mode == "frames", encoding.codec, copied, notes,
        meter.as_dict() if meter else None, busy, cfg.mode,
    )  # fmt: skip


Stylise = Callable[[torch.Tensor, int], torch.Tensor]  # (frames (n, H, W, 3), first) -> same


def _network_stylise(model: Stylizer, cache, cfg: VideoConfig, stabilizer) -> Stylise:
    """The network on every frame (on the model's device)."""
    device = model.device

    def stylise(item: torch.Tensor, first: int) -> torch.Tensor:
        x = item.to(device, non_blocking=device.type == "cuda").permute(0, 3, 1, 2)
        out8 = torch.empty_like(item, device=device)  # (n, H, W, 3), what ffmpeg takes
        _stylize_batch(model, x, cache, cfg, stabilizer, out8.permute(0, 3, 1, 2))
        return out8

    return stylise


def _lut_stylise(player: LookPlayer, stabilizer: Stabilizer | None) -> Stylise:
    """Every frame mapped through its keyframes' LUTs (on the CPU); with ``stabilizer``,
    part of the previous output is kept where the input did not change (the LUT maps the
    source's noise and grain too)."""

    def stylise(item: torch.Tensor, first: int) -> torch.Tensor:
        out = np.empty(tuple(item.shape), np.uint8)
        player.apply(item.numpy(), first, out)
        mapped = torch.from_numpy(out)
        if stabilizer is None:
            return mapped
        stabilizer.begin(item.permute(0, 3, 1, 2)[:, :, ::8, ::8].float().div_(255.0))
        return stabilizer.blend_frames(item, mapped)

    return stylise


def _stylize_batch(model, x, cache, cfg: VideoConfig, stabilizer, out: torch.Tensor) -> None:
    """Stylise a batch of frames into ``out``; out of memory, frame by frame instead."""
    try:
        stylize_frames(model, x, cache, cfg.alpha, stabilizer, cfg.work_size, cfg.lift, out,
                       cfg.transfer)  # fmt: skip
    except (RuntimeError, MemoryError) as err:
        if not is_oom(err) or x.shape[0] == 1:
            raise
        if x.device.type == "cuda":
            torch.cuda.empty_cache()
        for i in range(x.shape[0]):
            stylize_frames(
                model, x[i : i + 1], cache, cfg.alpha, stabilizer, cfg.work_size, cfg.lift,
                out[i : i + 1], cfg.transfer,
            )  # fmt: skip


def _pipeline(device, job: _Job, stylise: Stylise, meter, on_frame) -> tuple[int, float]:
    """Run reader -> stylise -> writer; returns the number of frames encoded and the seconds
    spent stylising (the rest of the wall time is decoding, encoding and waiting on them)."""
    import imageio_ffmpeg

    cuda = device.type == "cuda"
    stop = threading.Event()
    in_q: queue.Queue = queue.Queue(maxsize=2)  # bounded: memory does not grow with the clip
    out_q: queue.Queue = queue.Queue(maxsize=2)
    errors: list[BaseException] = []
    written = 0
    busy = 0.0

    def counted() -> None:
        nonlocal written
        written += 1
        on_frame()

    def open_writer():
        return imageio_ffmpeg.write_frames(
            str(job.video_tmp), job.size, fps=job.info.fps, codec=job.encoding.codec,
            quality=None, macro_block_size=1, ffmpeg_log_level="quiet",
            output_params=list(job.encoding.params),
        )  # fmt: skip

    frames = read_frames(job.info, job.start, job.count, job.size)
    reader = threading.Thread(
        target=_reader,
        args=(frames, job.batch, job.size, cuda, in_q, stop),
        name="stylenas-video-reader",
        daemon=True,
    )
    writer = threading.Thread(
        target=_writer,
        args=(open_writer, out_q, stop, meter, counted, errors),
        name="stylenas-video-writer",
        daemon=True,
    )
    reader.start()
    writer.start()
    ok = False
    first = 0  # the batch's first frame, counted from the job's start
    try:
        while True:
            item = _get(in_q, stop)
            if item is _END:
                break
            if isinstance(item, _Failed):
                raise item.error
            t0 = time.perf_counter()
            out8 = stylise(item, first)
            synchronize(out8.device)
            busy += time.perf_counter() - t0
            first += item.shape[0]
            ready = None
            if out8.device.type == "cuda":  # into pinned memory; the writer waits on the event
                host = torch.empty(out8.shape, dtype=torch.uint8, pin_memory=True)
                host.copy_(out8, non_blocking=True)
                ready = torch.cuda.Event()
                ready.record()
                out8 = host
            if not _put(out_q, (item if meter else None, out8, ready), stop):
                break
        if not stop.is_set():
            _put(out_q, _END, stop)
        writer.join()
        if errors:
            raise errors[0]
        ok = True
    except OSError:  # the pipe to ffmpeg broke: the encoder stopped
        raise encoder_error(job.dest, job.size, job.info.fps, job.encoding, written) from None
    finally:
        if not ok:
            stop.set()
        reader.join(timeout=10)
        writer.join(timeout=10)
    if written == 0:
        raise VideoError(f"{job.info.path}: no frame could be decoded")
    if probe_frames(job.video_tmp) != written:  # ffmpeg failed while finishing the file
        raise encoder_error(job.dest, job.size, job.info.fps, job.encoding, written)
    return written, busy

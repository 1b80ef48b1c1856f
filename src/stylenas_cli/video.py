"""Streaming video stylisation: decode -> batched stylise -> encode, then mux the other streams.

Three stages overlap: a reader thread decodes frames with imageio-ffmpeg (one frame at a time)
into batches, the calling thread stylises them, a writer thread encodes them with ffmpeg. The
queues between the stages are bounded, so memory does not grow with the length of the clip and
the slowest stage sets the pace. The encoded video is then muxed with every non-video stream of
the input (audio, subtitles, data), copied unchanged, into a temp file that is renamed onto the
output only when all went well.

Temporal stability (:class:`Stabilizer`): where the input did not change (a 5x5-averaged
per-pixel test), part of the previous output is kept, so the decoder's and the whitening's
amplification of sensor and compression noise does not shimmer in still regions, while moving
regions take the new frame's output unchanged (no motion blur, no ghosts); a shot cut resets it.
Optionally the WCT content statistics can also be averaged over the shot (``momentum``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .device import autocast_dtype
from .files import atomic_write
from .images import load_image
from .model import MIN_SIDE, StyleCache, Stylizer
from .temporal import FlickerMeter
from .wct import EIG_THRESHOLD, RIDGE, ColourStats, colour

STYLE_MAX_SIDE = 1024  # the style photo is resized to the frames' long side, at most this

# Output containers: extension -> (ffmpeg muxer, default video encoder).
CONTAINERS: dict[str, tuple[str, str]] = {
    ".mp4": ("mp4", "libx264"),
    ".m4v": ("mp4", "libx264"),
    ".mov": ("mov", "libx264"),
    ".mkv": ("matroska", "libx264"),
    ".webm": ("webm", "libvpx-vp9"),
    ".avi": ("avi", "libx264"),
}
# Encoders that take a constant rate factor: name -> (default CRF, extra args).
CRF_CODECS: dict[str, tuple[int, tuple[str, ...]]] = {
    "libx264": (18, ()),
    "libx265": (20, ()),
    "libvpx-vp9": (31, ("-b:v", "0")),
    "libvpx": (10, ("-b:v", "1G")),
    "libaom-av1": (30, ("-b:v", "0")),
    "libsvtav1": (30, ()),
}
# RGB -> yuv420p as BT.709 limited range, and tagged so, so that players need not guess.
TO_YUV = (
    "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,"
    "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv"
)
STANDARD_RATES = tuple(Fraction(r) for r in (12, 15, 24, 25, 30, 48, 50, 60, 90, 100, 120)) + tuple(
    Fraction(r * 1000, 1001) for r in (24, 30, 48, 60, 120)
)


class VideoError(ValueError):
    """A video that cannot be used or written; the message is one line for the user."""


# --- probing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learnt about an input video (its first real video stream)."""

    path: Path
    stream: int  # index of the video stream in the file
    width: int  # as displayed (rotation applied)
    height: int
    fps: Fraction  # average frame rate, snapped to a standard rate when within 0.1 %
    frames: int  # video packets in the stream: the frame count for a normal file
    vfr: bool  # frame durations vary: decoded as constant-rate at ``fps``
    rotation: int  # display rotation in degrees (ffmpeg applies it when decoding)
    codec: str
    span: float  # seconds from the first frame to the end of the last
    video_offset: float  # first video timestamp after the file's start (s)
    others: tuple[str, ...]  # kinds of the other streams, e.g. ("audio", "subtitle")

    @property
    def expected_frames(self) -> int:
        """Frames the decoder gives: the packets, or the span at ``fps`` for a VFR stream."""
        return max(1, round(self.span * float(self.fps))) if self.vfr else self.frames


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _ff_path(path: Path) -> str:
    # "file:" so that names with a colon or a leading dash are never read as options/protocols.
    return "file:" + str(Path(path).resolve())


def _run_ffmpeg(args: list[str], timeout: float | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", *args],
        capture_output=True,
        timeout=timeout,
        check=False,
    )


_STREAM_RE = re.compile(r"^\s*Stream #0:(\d+)\S*: (Video|Audio|Subtitle|Data|Attachment): (.*)$")


def _error_reason(log: str) -> str:
    """The most telling line of an ffmpeg log, without its ``[demuxer @ 0x...]`` prefix."""
    if "moov atom not found" in log:
        return "moov atom not found"
    lines = [re.sub(r"^(\[[^]]*\] )+", "", ln).strip() for ln in log.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("frame=", "Press [q]"))]
    for key in ("partial file", "corrupt", "Error opening input:", "Invalid data", "rror"):
        for line in lines:
            if key in line:
                return line.removeprefix("Error opening input: ")
    return lines[-1] if lines else "ffmpeg failed"


def _parse_rotation(block: str) -> int:
    m = re.search(r"rotation of (-?[\d.]+) degrees", block) or re.search(
        r"rotate\s*:\s*(-?\d+)", block
    )
    return int(round(float(m.group(1)))) % 360 if m else 0


def _snap_rate(rate: Fraction) -> Fraction:
    for std in STANDARD_RATES:
        if abs(rate - std) <= std * Fraction(1, 1000):
            return std
    if abs(rate - round(rate)) <= rate * Fraction(1, 1000):
        return Fraction(round(rate))
    return rate.limit_denominator(1001)


def probe(path: str | Path) -> VideoInfo:
    """Read the streams, size, frame rate and frame count of a video.

    Raises :class:`VideoError` (one line) for a missing, empty, corrupt or truncated file, a
    file with no video stream, and a video stream without frames."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: file not found")
    if path.is_dir():
        raise VideoError(f"{path}: is a directory, not a video")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: empty file")
    head = _run_ffmpeg(["-i", _ff_path(path)], timeout=60)
    log = head.stderr.decode("utf-8", "replace")
    if "Input #0" not in log:
        reason = _error_reason(log)
        if reason == "moov atom not found":
            with open(path, "rb") as f:
                is_mp4 = f.read(12)[4:8] == b"ftyp"
            reason = "truncated MP4/MOV: no moov atom" if is_mp4 else "not an MP4/MOV file"
        raise VideoError(f"{path}: not a readable video ({reason})")
    lines = log.splitlines()
    streams: list[tuple[int, str, str, str]] = []  # (index, kind, description, block)
    for i, line in enumerate(lines):
        m = _STREAM_RE.match(line)
        if m:
            block = []
            for nxt in lines[i + 1 :]:
                if _STREAM_RE.match(nxt) or not nxt.startswith("    "):
                    break
                block.append(nxt)
            streams.append((int(m.group(1)), m.group(2), m.group(3), "\n".join(block)))
    if not streams:
        raise VideoError(f"{path}: holds no streams (a zero-length or empty video)")
    videos = [s for s in streams if s[1] == "Video" and "(attached pic)" not in s[2]]
    if not videos:
        kinds = sorted({s[1].lower() for s in streams})
        raise VideoError(f"{path}: has no video stream (only {', '.join(kinds)})")
    index, _, desc, block = videos[0]
    size = re.search(r"[ ,](\d+)x(\d+)[ ,\]]", desc + " ")
    if not size:
        raise VideoError(f"{path}: cannot read the frame size of its video stream")
    width, height = int(size.group(1)), int(size.group(2))
    rotation = _parse_rotation(block)
    if rotation in (90, 270):
        width, height = height, width
    header_fps = re.search(r"([\d.]+) fps", desc)
    header_tbr = re.search(r"([\d.]+) tbr", desc)
    codec = desc.split(",")[0].split()[0] if desc else "?"
    others = tuple(s[1].lower() for s in streams if s[0] != index and s[1] != "Video")

    # Packet timestamps (stream copy, no decoding): exact count, rate and constancy.
    crc = _run_ffmpeg(
        ["-i", _ff_path(path), "-map", f"0:{index}", "-c", "copy", "-f", "framecrc", "-"]
    )
    crc_log = crc.stderr.decode("utf-8", "replace")
    if crc.returncode != 0 or "partial file" in crc_log or "corrupt input packet" in crc_log:
        raise VideoError(f"{path}: the video is truncated or corrupt ({_error_reason(crc_log)})")
    tb = Fraction(1, 1)
    pts: list[int] = []
    for line in crc.stdout.decode("ascii", "replace").splitlines():
        if line.startswith("#tb 0:"):
            num, den = line.split(":", 1)[1].strip().split("/")
            tb = Fraction(int(num), int(den))
        elif line and not line.startswith("#"):
            parts = [p.strip() for p in line.split(",")]
            if len(parts) >= 3 and parts[2].lstrip("-").isdigit():
                pts.append(int(parts[2]))
    if not pts:
        raise VideoError(f"{path}: the video stream has no frames (a zero-length video)")
    pts.sort()
    n = len(pts)
    fps, vfr = _rate_of(pts, tb, header_fps.group(1) if header_fps else None)
    span = float((pts[-1] - pts[0]) * tb + 1 / fps)
    if vfr and header_tbr and Fraction(header_tbr.group(1)) > fps:
        fps = _snap_rate(Fraction(header_tbr.group(1)))  # the nominal rate: gaps get repeats
    return VideoInfo(
        path=path,
        stream=index,
        width=width,
        height=height,
        fps=fps,
        frames=n,
        vfr=vfr,
        rotation=rotation,
        codec=codec,
        span=span,
        # framecrc timestamps count from the file's start (ffmpeg shifts them there).
        video_offset=max(0.0, float(pts[0] * tb)),
        others=others,
    )


def _rate_of(pts: list[int], tb: Fraction, header: str | None) -> tuple[Fraction, bool]:
    """Average frame rate of sorted timestamps, and whether frame durations vary."""
    n = len(pts)
    if n < 2 or pts[-1] == pts[0]:
        rate = Fraction(header) if header else Fraction(25)
        return _snap_rate(rate), False
    rate = _snap_rate(Fraction(n - 1) / ((pts[-1] - pts[0]) * tb))
    nominal = 1 / (rate * tb)  # ticks per frame
    durations = np.diff(np.asarray(pts, dtype=np.float64))
    off = np.abs(durations - float(nominal)) > max(1.01, 0.1 * float(nominal))
    return rate, bool(off.mean() > 0.02)


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
    stabilize: bool = True
    smoothing: float = 0.0  # with stabilize: weight of past frames in the WCT statistics
    flicker: bool = False  # measure the flicker ratio while encoding
    overwrite: bool = False


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
        raise ValueError(f"expected START:END frame numbers (e.g. 0:48 or 100:), got {spec!r}")
    start = int(m.group(1)) if m.group(1) else 0
    end = int(m.group(2)) if m.group(2) else None
    if end is not None and end <= start:
        raise ValueError(f"END must be greater than START, got {spec!r}")
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


def default_output(src: Path) -> Path:
    return src.with_name(f"{src.stem}_stylized{src.suffix}")


def plan_output(src: Path, output: str | Path | None, overwrite: bool) -> Path:
    """Output path: ``<stem>_stylized.<ext>`` beside the input, inside ``output`` if that is a
    directory (or ends with a slash), else ``output`` itself. Checks container and overwrite,
    and that the folder is writable, before any work is done."""
    slash = isinstance(output, str) and output.endswith(("/", "\\"))
    if output is None:
        dest = default_output(src)
    else:
        out = Path(output)
        dest = out / default_output(src).name if (out.is_dir() or slash) else out
    if dest.suffix.lower() not in CONTAINERS:
        raise VideoError(
            f"{dest}: unsupported output container {dest.suffix or '(none)'!r}; use one of "
            + ", ".join(CONTAINERS)
        )
    if dest.exists() and dest.resolve() == src.resolve():
        raise VideoError(f"{dest}: output would replace the input; choose another -o")
    if dest.is_dir():
        raise VideoError(f"{dest}: is a directory")
    if dest.exists() and not overwrite:
        raise VideoError(f"{dest}: output exists; pass --overwrite to replace it")
    _check_writable(dest.parent)
    return dest


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".stylenas.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise VideoError(
            f"{folder}: cannot write the output there ({err.strerror or err})"
        ) from None


def default_batch_size(
    device: torch.device, width: int, height: int, precision: str = "fp32"
) -> int:
    """Frames per batch: on CUDA as many as fit in half the free memory (at most 16); on CPU
    batching buys little, so 1-4 frames by size, which keeps memory and latency low."""
    pixels = width * height
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        # Peak activation memory per pixel of one frame, WCT in float64 included.
        per_pixel = 4096 if precision == "fp32" else 3072
        return int(min(16, max(1, free // 2 // (per_pixel * pixels))))
    return int(min(4, max(1, (1 << 19) // pixels)))


def encoders() -> set[str]:
    """Names of the video encoders the bundled ffmpeg has."""
    global _ENCODERS
    if _ENCODERS is None:
        out = _run_ffmpeg(["-encoders"], timeout=30).stdout.decode("ascii", "replace")
        _ENCODERS = {m.group(1) for m in re.finditer(r"^ V\S{5} (\S+)", out, re.M)}
    return _ENCODERS


_ENCODERS: set[str] | None = None


def resolve_codec(dest: Path, codec: str | None) -> str:
    name = codec or CONTAINERS[dest.suffix.lower()][1]
    if name not in encoders():
        if codec is None and name == "libx264":  # an ffmpeg built without x264
            return "libopenh264" if "libopenh264" in encoders() else "mpeg4"
        raise VideoError(f"unknown video encoder {name!r}: see 'ffmpeg -encoders' for the names")
    return name


# --- decoding ---------------------------------------------------------------------------------


def _size_filter(src: tuple[int, int], dst: tuple[int, int]) -> list[str]:
    if src == dst:
        return []
    if dst[0] in (src[0], src[0] - 1) and dst[1] in (src[1], src[1] - 1):
        return [f"crop={dst[0]}:{dst[1]}:0:0"]  # odd -> even: drop the last column/row
    flags = "area" if dst[0] * dst[1] < src[0] * src[1] else "bicubic"
    return [f"scale={dst[0]}:{dst[1]}:flags={flags}"]


def read_frames(
    info: VideoInfo,
    start: int = 0,
    count: int | None = None,
    size: tuple[int, int] | None = None,
) -> Iterator[np.ndarray]:
    """Decode frames ``start .. start+count`` as uint8 ``(H, W, 3)`` arrays, one at a time.

    ``size`` (width, height): resize (or crop odd sizes to even) in ffmpeg. A variable-rate
    stream is resampled to ``info.fps``. Raises :class:`VideoError` when decoding fails."""
    import imageio_ffmpeg

    logging.getLogger("imageio_ffmpeg").setLevel(logging.ERROR)  # "size differs" is expected
    size = size or (info.width, info.height)
    filters = [f"fps={info.fps}"] if info.vfr else []
    if start:
        filters.append(f"trim=start_frame={start}")
    filters += _size_filter((info.width, info.height), size)
    params = ["-map", f"0:{info.stream}", "-fps_mode", "passthrough"]
    if filters:
        params += ["-vf", ",".join(filters)]
    gen = imageio_ffmpeg.read_frames(_ff_path(info.path), output_params=params)
    done = 0
    try:
        try:
            meta = next(gen)
        except (OSError, RuntimeError, StopIteration, IndexError, AttributeError) as err:
            raise VideoError(f"{info.path}: cannot decode ({_first_line(err)})") from None
        if tuple(meta["size"]) != tuple(size):
            raise VideoError(f"{info.path}: decoder gives {meta['size']}, expected {size}")
        w, h = size
        while count is None or done < count:
            try:
                raw = next(gen)
            except StopIteration:
                break
            except RuntimeError as err:
                raise VideoError(
                    f"{info.path}: decoding failed at frame {start + done} ({_first_line(err)})"
                ) from None
            yield np.frombuffer(raw, np.uint8).reshape(h, w, 3)
            done += 1
    finally:
        gen.close()  # stops ffmpeg


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    for line in text.splitlines():
        if "Error" in line or "error" in line or "Invalid" in line:
            return line.strip()
    return text.splitlines()[0] if text else type(err).__name__


# --- temporal stabilisation --------------------------------------------------------------------


@dataclass(frozen=True)
class StabilizeConfig:
    blend: float = 0.8  # at most this share of the previous output is kept where input is still
    sigma: float = 0.02  # input change (mean abs, [0, 1], 5x5 average) where blending is e^-1
    # Weight of the past in the smoothed WCT content statistics; 0 = each frame's own. Off by
    # default: on the clips measured (scripts/bench_video.py) it did not lower flicker, and
    # under exposure flicker it raised it (per-frame whitening removes brightness changes).
    momentum: float = 0.0
    cut: float = 0.15  # mean input change above which a frame starts a new shot


def _inv_sqrt(cov: torch.Tensor) -> torch.Tensor:
    """``(..., C, C)`` symmetric -> cov^-1/2, small eigenvalues dropped (as wct.whiten)."""
    evals, evecs = torch.linalg.eigh(cov)
    keep = evals > EIG_THRESHOLD
    scaled = torch.where(keep, evals.clamp_min(EIG_THRESHOLD).rsqrt(), torch.zeros_like(evals))
    return (evecs * scaled.unsqueeze(-2)) @ evecs.transpose(-1, -2)


class Stabilizer:
    """Per-video state for temporally stable WCT; feed it the frames of a clip in order.

    ``begin(x)`` with each batch of input frames, ``transfer`` as the decoder's transfer hook,
    ``blend(x, out)`` on the batch's outputs."""

    def __init__(self, cfg: StabilizeConfig = StabilizeConfig()) -> None:
        if not 0.0 <= cfg.momentum < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {cfg.momentum}")
        self.cfg = cfg
        self.moments: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # point -> (m1, m2)
        self.prev_in: torch.Tensor | None = None  # (3, H, W)
        self.prev_out: torch.Tensor | None = None
        self.cuts: list[bool] = []
        self.shots = 0

    def begin(self, x: torch.Tensor) -> None:
        """Input frames ``(B, 3, H, W)`` in [0, 1]: find the frames that start a new shot."""
        first = x[:1] if self.prev_in is None else self.prev_in[None]
        before = torch.cat([first, x[:-1]])  # the frame before each frame
        change = (x - before).abs().flatten(1).mean(1).tolist()
        if self.prev_in is None:
            change[0] = float("inf")  # the first frame starts a shot
        self.cuts = [c > self.cfg.cut for c in change]
        self.shots += sum(self.cuts)

    def transfer(self, point: str, x: torch.Tensor, stats: dict[int, ColourStats], alpha: float):
        """WCT of ``x (B, C, H, W)`` with the content moments averaged over the shot so far."""
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w).double()
        m1 = flat.mean(-1, keepdim=True)  # (B, C, 1)
        m2 = flat @ flat.transpose(-1, -2) / (h * w)  # (B, C, C)
        m = self.cfg.momentum
        prev = self.moments.get(point)
        means, seconds = [], []
        for t in range(b):
            if prev is None or self.cuts[t]:
                prev = (m1[t], m2[t])
            else:
                prev = (m * prev[0] + (1 - m) * m1[t], m * prev[1] + (1 - m) * m2[t])
            means.append(prev[0])
            seconds.append(prev[1])
        self.moments[point] = prev
        mean = torch.stack(means)  # (B, C, 1)
        n = h * w
        cov = (torch.stack(seconds) - mean @ mean.transpose(-1, -2)) * (n / max(n - 1, 1))
        cov = cov + RIDGE * torch.eye(c, dtype=cov.dtype, device=cov.device)
        white = (_inv_sqrt(cov) @ (flat - mean)).reshape(b, c, h, w)
        out = colour(white, stats[-1]).to(x.dtype)
        return alpha * out + (1.0 - alpha) * x

    def blend(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Keep part of the previous output where the input did not change (same shapes)."""
        cfg = self.cfg
        result = []
        for t in range(x.shape[0]):
            o = out[t]
            if self.prev_out is not None and not self.cuts[t] and cfg.blend > 0:
                change = (x[t] - self.prev_in).abs().mean(0, keepdim=True)  # (1, H, W)
                change = F.avg_pool2d(change[None], 5, 1, 2, count_include_pad=False)[0]
                keep = cfg.blend * torch.exp(-((change / cfg.sigma) ** 2))
                o = keep * self.prev_out + (1 - keep) * o
            self.prev_in, self.prev_out = x[t], o
            result.append(o)
        return torch.stack(result)


def _autocast(model: Stylizer) -> contextlib.AbstractContextManager:
    dtype = autocast_dtype(model.precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(model.device.type, dtype=dtype)


@torch.no_grad()
def stylize_frames(
    model: Stylizer,
    x: torch.Tensor,
    cache: StyleCache,
    alpha: float = 1.0,
    stabilizer: Stabilizer | None = None,
) -> torch.Tensor:
    """Consecutive frames ``(B, 3, H, W)`` in [0, 1] -> stylised, same shape.

    Without a stabilizer this is ``model.stylize``; with one, its output blend follows, and
    with smoothed statistics (``momentum > 0``) its transfer hook replaces the per-frame WCT."""
    if stabilizer is None:
        return model.stylize(x, cache, alpha)
    stabilizer.begin(x)
    if stabilizer.cfg.momentum == 0:
        return stabilizer.blend(x, model.stylize(x, cache, alpha))

    def transfer(point: str, feat: torch.Tensor) -> torch.Tensor:
        return stabilizer.transfer(point, feat.float(), cache.stats[point], alpha).to(feat.dtype)

    with _autocast(model):
        out = model.decoder(model.encoder(x), transfer=transfer)
    return stabilizer.blend(x, out.float().clamp(0, 1))


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
    codec: str
    encoder_params: tuple[str, ...]  # ffmpeg output options for the encoder (ends "-f MUXER")
    video_tmp: Path  # the encoded video before muxing

    @property
    def muxer(self) -> str:
        return self.encoder_params[-1]


def _encoder_params(codec: str, crf: int | None, muxer: str) -> tuple[str, ...]:
    params: list[str] = []
    if codec in CRF_CODECS:
        default, extra = CRF_CODECS[codec]
        params += ["-crf", str(default if crf is None else crf), *extra]
    return (*params, "-vf", TO_YUV, "-f", muxer)


def _write_error(job: _Job, written: int) -> VideoError:
    """Why the encoder stopped: disk full, or ffmpeg's own reason from a one-frame try."""
    folder = job.dest.parent
    free = shutil.disk_usage(folder).free
    reason = "ffmpeg stopped writing: disk full or file too large?"
    if free < 1 << 20:
        reason = f"disk full: {free} bytes free in {folder}"
    else:
        w, h = job.size
        trial = _run_ffmpeg(
            ["-f", "lavfi", "-i", f"color=size={w}x{h}:rate={job.info.fps}", "-frames:v", "1"]
            + ["-c:v", job.codec, *job.encoder_params[:-2], "-f", "null", "-"],
            timeout=60,
        )
        if trial.returncode != 0:
            reason = f"{job.codec}: {_error_reason(trial.stderr.decode('utf-8', 'replace'))}"
    return VideoError(f"{job.dest}: could not write the video after {written} frames ({reason})")


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
    if min(size) < MIN_SIDE:
        raise VideoError(f"{src}: frames of {size[0]}x{size[1]} are too small (min {MIN_SIDE} px)")
    notes = []
    if cfg.max_size is None and size != (info.width, info.height):
        notes.append(f"{info.width}x{info.height} cropped to {size[0]}x{size[1]} (yuv420p)")
    if info.vfr:
        notes.append(f"variable frame rate resampled to a constant {float(info.fps):.3f} fps")
    codec = resolve_codec(dest, cfg.codec)
    params = _encoder_params(codec, cfg.crf, CONTAINERS[dest.suffix.lower()][0])
    batch = cfg.batch_size or default_batch_size(model.device, *size, model.precision)

    # The style at the frames' scale (its statistics then describe the same feature scale),
    # and never above STYLE_MAX_SIDE: a large style costs gigabytes in its one pass.
    style_img = load_image(style, min(max(size), STYLE_MAX_SIDE))
    if min(style_img.size) < MIN_SIDE:
        w, h = style_img.size
        raise VideoError(f"{style}: style is {w}x{h}; both sides must be >= {MIN_SIDE} px")
    cache = model.style_cache(style_img.rgb.to(model.device))
    stabilizer = Stabilizer(StabilizeConfig(momentum=cfg.smoothing)) if cfg.stabilize else None
    meter = FlickerMeter() if cfg.flicker else None

    on_start(end - start)
    fd, name = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=".video.tmp", dir=dest.parent)
    os.close(fd)
    job = _Job(info, dest, start, end - start, size, batch, codec, params, Path(name))
    try:
        written = _pipeline(model, job, cache, cfg.alpha, stabilizer, meter, on_frame)
        copied: tuple[str, ...] = ()

        def mux(tmp: Path) -> None:
            nonlocal copied
            copied = _mux(job, written, tmp, notes)
            got = probe_frames(tmp)
            if got != written:
                raise VideoError(f"{dest}: wrote {written} frames but the file holds {got}")

        try:
            atomic_write(dest, mux)
        except OSError as err:
            msg = f"{dest}: could not write the output ({err.strerror or err})"
            raise VideoError(msg) from None
    finally:
        job.video_tmp.unlink(missing_ok=True)
    return VideoResult(
        src, dest, written, *size, info.fps, time.perf_counter() - t0, str(model.device),
        batch, cfg.stabilize, codec, copied, notes, meter.as_dict() if meter else None,
    )  # fmt: skip


def _pipeline(model, job: _Job, cache, alpha, stabilizer, meter, on_frame) -> int:
    """Run reader -> stylise -> writer; returns the number of frames encoded."""
    import imageio_ffmpeg

    device = model.device
    cuda = device.type == "cuda"
    stop = threading.Event()
    in_q: queue.Queue = queue.Queue(maxsize=2)  # bounded: memory does not grow with the clip
    out_q: queue.Queue = queue.Queue(maxsize=2)
    errors: list[BaseException] = []
    written = 0

    def counted() -> None:
        nonlocal written
        written += 1
        on_frame()

    def open_writer():
        return imageio_ffmpeg.write_frames(
            str(job.video_tmp), job.size, fps=job.info.fps, codec=job.codec, quality=None,
            macro_block_size=1, ffmpeg_log_level="quiet", output_params=list(job.encoder_params),
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
    try:
        while True:
            item = _get(in_q, stop)
            if item is _END:
                break
            if isinstance(item, _Failed):
                raise item.error
            x = item.to(device, non_blocking=cuda).permute(0, 3, 1, 2).float().div_(255)
            out = stylize_frames(model, x.contiguous(), cache, alpha, stabilizer)
            out8 = out.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
            out8 = out8.permute(0, 2, 3, 1).contiguous()  # (n, H, W, 3)
            ready = None
            if cuda:  # copy back into pinned memory; the writer waits on the event
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
        raise _write_error(job, written) from None
    finally:
        if not ok:
            stop.set()
        reader.join(timeout=10)
        writer.join(timeout=10)
    if written == 0:
        raise VideoError(f"{job.info.path}: no frame could be decoded")
    if probe_frames(job.video_tmp) != written:  # ffmpeg failed while finishing the file
        raise _write_error(job, written)
    return written


def _mux(job: _Job, frames: int, dest: Path, notes: list[str]) -> tuple[str, ...]:
    """Put the encoded video and the input's other streams (copied) into ``dest``.

    Tries every non-video stream first, then audio and subtitles, then audio alone, then
    audio re-encoded; says in ``notes`` what was left out. Returns the kinds copied."""
    info, start, muxer = job.info, job.start, job.muxer
    offset = info.video_offset
    head = ["-y", "-v", "error"]
    trim = start > 0 or frames < info.expected_frames
    if offset > 0 and not trim:  # the source's video starts after its audio: keep that
        head += ["-itsoffset", f"{offset:.6f}"]
    head += ["-i", _ff_path(job.video_tmp)]
    if trim:  # the other streams of the same stretch of time
        head += ["-ss", f"{offset + float(start / info.fps):.6f}"]
        head += ["-t", f"{float(frames / info.fps):.6f}"]
    head += ["-i", _ff_path(info.path)]
    tail = ["-map_metadata", "1", "-f", muxer]
    if muxer in ("mp4", "mov"):
        tail = ["-movflags", "+faststart", *tail]
    tail.append(_ff_path(dest))
    attempts = [
        (["-map", "1", "-map", "-1:v"], ["-c", "copy"], set(info.others), None),
        (["-map", "1:a?", "-map", "1:s?"], ["-c", "copy"], {"audio", "subtitle"}, None),
        (["-map", "1:a?"], ["-c", "copy"], {"audio"}, None),
        (["-map", "1:a?"], ["-c:v", "copy"], set(), f"audio re-encoded: {muxer} cannot hold it"),
    ]
    if not info.others:
        attempts = attempts[:1]
    log = ""
    for maps, codecs, kinds, note in attempts:
        run = _run_ffmpeg([*head, "-map", "0:v:0", *maps, *codecs, *tail])
        if run.returncode == 0:
            copied = tuple(k for k in info.others if k in kinds)
            dropped = sorted(set(info.others) - set(copied) - ({"audio"} if note else set()))
            if dropped:
                notes.append(f"{', '.join(dropped)} stream(s) not supported by {muxer}: left out")
            if note:
                notes.append(note)
            return copied
        log = run.stderr.decode("utf-8", "replace")
    raise VideoError(f"{job.dest}: could not mux the video ({_error_reason(log)})")


def probe_frames(path: Path) -> int:
    """Video packets in the first video stream of ``path`` (no decoding)."""
    run = _run_ffmpeg(["-i", _ff_path(path), "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"])
    if run.returncode != 0:
        return 0
    return sum(
        1 for ln in run.stdout.decode("ascii", "replace").splitlines() if ln and ln[0] != "#"
    )

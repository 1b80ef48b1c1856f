"""ffmpeg streams: probing a video, decoding frames, the encoders, muxing the other streams.

Everything that talks to the ``ffmpeg`` binary bundled with ``imageio-ffmpeg`` lives here;
:mod:`.pipeline` runs the stylisation between :func:`read_frames` and the encoder.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import StylenasError

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


class VideoError(StylenasError):
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
    container = re.search(r"Input #0, ([\w,]+), from", log)
    if container and (container.group(1) == "image2" or container.group(1).endswith("_pipe")):
        raise VideoError(
            f"{path}: is a still image, not a video; stylise photos with 'stylenas stylize'"
        )
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


def probe_frames(path: Path) -> int:
    """Video packets in the first video stream of ``path`` (no decoding)."""
    run = _run_ffmpeg(["-i", _ff_path(path), "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"])
    if run.returncode != 0:
        return 0
    return sum(
        1 for ln in run.stdout.decode("ascii", "replace").splitlines() if ln and ln[0] != "#"
    )


# --- encoding and muxing ----------------------------------------------------------------------


@dataclass(frozen=True)
class Encoding:
    """How the stylised frames are encoded: the ffmpeg encoder and its output options (the
    options end with ``-f MUXER``)."""

    codec: str
    params: tuple[str, ...]

    @property
    def muxer(self) -> str:
        return self.params[-1]


def encoding_for(dest: Path, codec: str | None = None, crf: int | None = None) -> Encoding:
    """The encoding of an output file: its container's usual encoder unless ``codec`` is
    given, the codec's default CRF unless ``crf`` is given, BT.709 yuv420p."""
    name = resolve_codec(dest, codec)
    params: list[str] = []
    if name in CRF_CODECS:
        default, extra = CRF_CODECS[name]
        params += ["-crf", str(default if crf is None else crf), *extra]
    return Encoding(name, (*params, "-vf", TO_YUV, "-f", CONTAINERS[dest.suffix.lower()][0]))


def check_encoding(dest: Path, encoding: Encoding) -> None:
    """Encode one small frame into ``dest``'s container the way the output will be (a temp
    file), so a codec the container cannot hold (libx264 in .webm) fails before any work."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="stylenas-codec-") as tmp:
        trial = _run_ffmpeg(
            ["-v", "error", "-f", "lavfi", "-i", "color=size=64x64:rate=24", "-frames:v", "1"]
            + ["-c:v", encoding.codec, *encoding.params, _ff_path(Path(tmp) / f"t{dest.suffix}")],
            timeout=60,
        )
    if trial.returncode != 0:
        log = trial.stderr.decode("utf-8", "replace").splitlines()
        lines = [re.sub(r"^(\[[^]]*\] )+", "", ln).strip() for ln in log]
        reason = next((ln for ln in lines if ln), "ffmpeg failed")  # the first says why
        raise VideoError(
            f"{dest}: cannot encode {encoding.codec} into {dest.suffix} ({reason}); pick another "
            "--codec or output extension"
        )


def encoder_error(
    dest: Path, size: tuple[int, int], fps: Fraction, encoding: Encoding, written: int
) -> VideoError:
    """Why the encoder stopped: disk full, or ffmpeg's own reason from a one-frame try."""
    folder = dest.parent
    free = shutil.disk_usage(folder).free
    reason = "ffmpeg stopped writing: disk full or file too large?"
    if free < 1 << 20:
        reason = f"disk full: {free} bytes free in {folder}"
    else:
        w, h = size
        trial = _run_ffmpeg(
            ["-f", "lavfi", "-i", f"color=size={w}x{h}:rate={fps}", "-frames:v", "1"]
            + ["-c:v", encoding.codec, *encoding.params[:-2], "-f", "null", "-"],
            timeout=60,
        )
        if trial.returncode != 0:
            reason = f"{encoding.codec}: {_error_reason(trial.stderr.decode('utf-8', 'replace'))}"
    return VideoError(f"{dest}: could not write the video after {written} frames ({reason})")


def mux(
    video: Path,
    info: VideoInfo,
    start: int,
    frames: int,
    muxer: str,
    dest: Path,
    notes: list[str],
    name: Path | None = None,
) -> tuple[str, ...]:
    """Put the encoded video and the input's other streams (copied) into ``dest``.

    Tries every non-video stream first, then audio and subtitles, then audio alone, then
    audio re-encoded; says in ``notes`` what was left out. Returns the kinds copied.
    ``video``: the encoded frames; ``name``: the output file named in errors."""
    offset = info.video_offset
    head = ["-y", "-v", "error"]
    trim = start > 0 or frames < info.expected_frames
    if offset > 0 and not trim:  # the source's video starts after its audio: keep that
        head += ["-itsoffset", f"{offset:.6f}"]
    head += ["-i", _ff_path(video)]
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
    raise VideoError(f"{name or dest}: could not mux the video ({_error_reason(log)})")

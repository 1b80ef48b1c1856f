"""What a stylisation needs in memory, what the device has, and a one-line refusal before a
job that cannot fit starts (instead of a traceback or the kernel's OOM killer).

The figures are measured, not derived: peak resident memory of ``Stylizer.stylize`` over the
idle process, per pixel the network sees (fp32, CPU, at 1024², the largest of the shipped
networks), rounded up with a margin. The lift needs the
full-resolution photo in and out (8-bit: 3 bytes a pixel each, 12 for a 16-bit source held
as float) plus the decoder's copy while a file is read or written.
"""

from __future__ import annotations

import ctypes
import sys
from functools import lru_cache
from pathlib import Path

import torch

from .errors import OutOfMemory
from .shape import work_shape

NETWORK_BYTES_PER_PIXEL = 1100  # peak over the idle process, per pixel the network sees
FULL_BYTES_PER_PIXEL = 10  # lift: the photo in (3) and out (3), decoding/encoding (4)
FLOAT_EXTRA_BYTES_PER_PIXEL = 9  # a 16-bit source held as float32 instead of uint8
FIXED_BYTES = 256 << 20  # style statistics, band buffers, allocator slack


def available_bytes(device: torch.device | str = "cpu") -> int | None:
    """Memory a new job may use on ``device``: free CUDA memory, or on the CPU the kernel's
    ``MemAvailable`` capped by the cgroup limit (containers); None where unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            found.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def estimate_bytes(
    height: int,
    width: int,
    batch: int = 1,
    work_size: int | None = None,
    float_source: bool = False,
) -> int:
    """Peak memory of stylising ``batch`` photos of ``height × width`` at ``work_size``
    (``None``: the network on every pixel), beyond what the idle process holds."""
    h, w = work_shape(height, width, work_size)
    full = height * width * (FULL_BYTES_PER_PIXEL + (FLOAT_EXTRA_BYTES_PER_PIXEL * float_source))
    return batch * (NETWORK_BYTES_PER_PIXEL * h * w + full) + FIXED_BYTES


def check_fits(
    what: str,
    height: int,
    width: int,
    device: torch.device | str,
    batch: int = 1,
    work_size: int | None = None,
    float_source: bool = False,
) -> None:
    """Raise :class:`~stylenas_cli.errors.OutOfMemory` (one line saying what to change)
    when the job's estimate exceeds the memory available on ``device``."""
    need = estimate_bytes(height, width, batch, work_size, float_source)
    have = available_bytes(device)
    if have is None or need <= have:
        return
    hint = "use a smaller --work-size" if work_size else "use --work-size 1024"
    if batch > 1:
        hint += " or --batch-size 1"
    raise OutOfMemory(
        f"{what}: {width}x{height} needs about {need / 2**30:.1f} GiB but {have / 2**30:.1f} GiB "
        f"is available on {torch.device(device).type}; {hint}, or a smaller --max-size"
    )


@lru_cache(maxsize=1)
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, ...)
        return None


def release_freed_memory() -> None:
    """Give freed heap memory back to the system. glibc keeps what tensors of a finished
    photo used in its arenas; over a folder of mixed sizes the process would grow by
    hundreds of MB it no longer uses (`make soak`: 735 vs 1254 MiB after 100 photos).
    A no-op where there is no glibc ``malloc_trim``."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)

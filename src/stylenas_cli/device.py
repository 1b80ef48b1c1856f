"""Device and precision selection (CUDA-aware, CPU fallback), autocast and timing sync."""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache
from pathlib import Path

import torch

from .errors import StylenasError

PRECISIONS = ("fp32", "fp16", "bf16")
CHOICES = ("auto", *PRECISIONS)


class DeviceError(StylenasError):
    """A device or precision that cannot be used here."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cpu``; ``cuda`` / ``cuda:N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} asked for, but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            n = torch.cuda.device_count()
            raise DeviceError(f"device {name!r} asked for, but only {n} CUDA device(s) exist")
    elif device.type != "cpu":
        raise DeviceError(f"unsupported device {name!r}: use auto, cpu, cuda or cuda:N")
    return device


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where bf16 autocast
    runs the convolutions about twice as fast as fp32; elsewhere it is emulated and slow."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((ln for ln in text.splitlines() if ln.startswith("flags")), "").split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device | str, training: bool = False) -> str:
    """``auto`` -> the fastest precision measured not to change the results: bf16 on CUDA
    (fp16 where bf16 is missing); for inference on a CPU with native bf16, bf16; else fp32
    (training on the CPU keeps fp32). ``fp16`` on a CPU, where it is emulated and very slow,
    becomes what ``auto`` gives there (:func:`precision_note` says so). Any other name is
    checked and returned as is."""
    device = torch.device(device)
    if precision == "fp16" and device.type == "cpu":
        # CPUs run fp16 convolutions emulated, ~50x slower than fp32: use what runs well.
        return "bf16" if not training and cpu_has_native_bf16() else "fp32"
    if precision != "auto":
        autocast_dtype(precision)  # raises DeviceError on an unknown name
        return precision
    if device.type == "cuda":
        old_gpu = torch.cuda.is_available() and not torch.cuda.is_bf16_supported()
        return "fp16" if old_gpu else "bf16"
    return "bf16" if not training and cpu_has_native_bf16() else "fp32"


def precision_note(requested: str, device: torch.device | str) -> str | None:
    """A line for the user when ``requested`` is not what runs on ``device``."""
    used = resolve_precision(requested, device)
    if requested == "fp16" and used != "fp16":
        return f"fp16 is emulated (very slow) on this CPU: running {used} instead"
    return None


def use_all_cores() -> None:
    """Use every core for intra-op work unless the user pinned OMP_NUM_THREADS."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(os.cpu_count() or 1)


def autocast_dtype(precision: str) -> torch.dtype | None:
    """``fp32`` -> None (no autocast); ``fp16``/``bf16`` -> the autocast dtype."""
    if precision not in PRECISIONS:
        raise DeviceError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context of ``precision`` on ``device`` (a no-op for fp32)."""
    dtype = autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def synchronize(device: torch.device | str | None) -> None:
    """Wait for queued CUDA work (for honest timings); nothing to do on the CPU."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)

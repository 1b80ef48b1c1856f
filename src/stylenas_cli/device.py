"""Device and precision selection (CUDA-aware, CPU fallback), autocast and timing sync."""

from __future__ import annotations

import contextlib

import torch

from .errors import StylenasError

PRECISIONS = ("fp32", "fp16", "bf16")


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

"""Speed benchmark (the library side of ``stylenas bench-speed``): seconds per megapixel of a
whole stylisation, peak memory and decoder cost per architecture and baseline, and the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..device import resolve_device
from ..errors import is_oom
from ..genotype import resolve
from ..model import Stylizer
from .baselines import BASELINES
from .metrics import flops_per_megapixel, parameters, peak_memory, seconds_per_megapixel


@dataclass
class SpeedRow:
    """Seconds per megapixel of one method at one size (``None``: out of memory)."""

    method: str
    size: int
    seconds_per_mp: float | None
    peak_bytes: int | None
    peak_kind: str
    params: int | None = None
    gflops_per_mp: float | None = None

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "size": self.size,
            "seconds_per_mp": self.seconds_per_mp,
            "peak_bytes": self.peak_bytes,
            "peak_kind": self.peak_kind,
            "params": self.params,
            "gflops_per_mp": self.gflops_per_mp,
        }


def _speed_photos(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Two real photos (content, style) as ``(size, size, 3)`` float arrays in [0, 1]."""
    from skimage import data

    def square(img: np.ndarray) -> np.ndarray:
        pil = Image.fromarray(img).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(pil, dtype=np.float64) / 255.0

    return square(data.astronaut()), square(data.coffee())


def bench_speed(
    archs: tuple[str, ...] = ("photonas", "photonet", "wct5"),
    sizes: tuple[int, ...] = (512, 1024, 2048),
    device: str = "auto",
    precision: str = "fp32",
    repeats: int = 5,
    with_baselines: bool = True,
    on_step: Callable[[str, int], None] = lambda method, size: None,
) -> list[SpeedRow]:
    """Time a whole ``stylize(content, style)`` (style statistics included) of square
    ``size × size`` photos for each architecture, and each colour-transfer baseline on the
    CPU, in one process. Networks run with freshly initialised decoders: their speed does not
    depend on the weight values, so no trained weights are needed."""
    dev = resolve_device(device)
    models = {}
    for arch in archs:
        models[arch] = Stylizer(resolve(arch), precision=precision).to(dev).eval()
    rows: list[SpeedRow] = []
    for arch, model in models.items():
        params = parameters(model.decoder)
        gflops = flops_per_megapixel(model.decoder) / 1e9
        for size in sizes:
            on_step(arch, size)
            c, s = _speed_photos(size)
            c_t = torch.from_numpy(c).float().permute(2, 0, 1)[None].to(dev)  # (1, 3, S, S)
            s_t = torch.from_numpy(s).float().permute(2, 0, 1)[None].to(dev)

            def run(model=model, c_t=c_t, s_t=s_t):
                return model.stylize(c_t, s_t)

            rows.append(_time_one(arch, size, run, repeats, dev, params, gflops))
            del c_t, s_t
            if dev.type == "cuda":
                torch.cuda.empty_cache()  # the next size starts from an empty allocator
    if with_baselines:
        for name, fn in BASELINES.items():
            for size in sizes:
                on_step(name, size)
                c, s = _speed_photos(size)
                rows.append(_time_one(name, size, lambda fn=fn, c=c, s=s: fn(c, s), repeats, None))
    return rows


def _time_one(name, size, fn, repeats, device, params=None, gflops=None) -> SpeedRow:
    """One row: peak memory (its run doubles as the warm-up), then the timed runs; a row of
    ``None`` when the method runs out of memory at this size."""
    kind = "cuda_max_allocated" if device is not None and device.type == "cuda" else "rss"
    try:
        peak = peak_memory(fn, device or "cpu")
        spm = seconds_per_megapixel(fn, size * size, repeats, warmup=0, device=device)
    except (RuntimeError, MemoryError) as err:
        if not is_oom(err):
            raise
        return SpeedRow(name, size, None, None, kind, params, gflops)
    return SpeedRow(name, size, spm, peak.bytes, peak.kind, params, gflops)


def _ratio(x: float) -> str:
    return f"{x:.2f}" if x >= 0.1 else f"{x:.2g}"


def speed_markdown(rows: list[SpeedRow], reference: str = "photonet") -> str:
    """One table: a row per method, seconds/megapixel (and the ratio to ``reference``) per
    size, decoder parameters and GFLOP/MP, peak memory at the largest size."""
    sizes = sorted({r.size for r in rows})
    methods = list(dict.fromkeys(r.method for r in rows))
    by = {(r.method, r.size): r for r in rows}
    big = sizes[-1]
    mem_kind = next((r.peak_kind for r in rows if r.peak_bytes is not None), "rss")
    lines = [
        "| method | params | GFLOP/MP | "
        + " | ".join(f"s/MP @{s}² (× {reference})" for s in sizes)
        + f" | peak MiB @{big}² ({mem_kind}) |",
        "|---|---|---|" + "---|" * len(sizes) + "---|",
    ]
    for m in methods:
        cells = []
        for s in sizes:
            r, ref = by.get((m, s)), by.get((reference, s))
            if r is None or r.seconds_per_mp is None:
                cells.append("OOM" if r is not None else "—")
                continue
            ratio = (
                f" ({_ratio(r.seconds_per_mp / ref.seconds_per_mp)}×)"
                if ref is not None and ref.seconds_per_mp
                else ""
            )
            cells.append(f"{r.seconds_per_mp:.3f}{ratio}")
        first = by[(m, sizes[0])]
        params = f"{first.params / 1e6:.2f} M" if first.params is not None else "—"
        gflops = f"{first.gflops_per_mp:.1f}" if first.gflops_per_mp is not None else "—"
        last = by.get((m, big))
        mem = "—"
        if last is not None and last.peak_bytes:
            mem = f"{last.peak_bytes / 2**20:.0f}"
            mem += f" ({last.peak_kind})" if last.peak_kind != mem_kind else ""
        lines.append(f"| {m} | {params} | {gflops} | " + " | ".join(cells) + f" | {mem} |")
    return "\n".join(lines) + "\n"

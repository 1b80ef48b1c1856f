"""3D LUTs: a look as a colour-to-colour table that travels to other tools.

A :class:`Lut3D` is an ``N × N × N`` lattice of output colours over the RGB cube, applied by
trilinear interpolation (what ``ffmpeg -vf lut3d=...:interp=trilinear`` does). It is fitted
(:func:`fit_lut`) from pairs of colours — a content's pixels and what the pipeline made of
them — by regularised least squares on the lattice's offsets from the identity: every
sample pulls the 8 nodes around it, a membrane term keeps neighbouring offsets alike, so
colours no photo showed take the offsets of the nearest ones seen (no banding, no jumps), and
a few reweighting rounds (Huber) keep a handful of odd pixels from bending the look.

Files: the Adobe Cube LUT 1.0 text format (:func:`read_cube`, :func:`write_cube`; red varies
fastest) and HALD CLUT images (:func:`read_hald`, :func:`write_hald`: level L holds L² entries
per axis in an L³ × L³ image). Applying a LUT to a photo goes through a full 256³ table
(:meth:`Lut3D.table`, 64 MiB, built once) and one lookup per pixel, in bands.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import StylenasError
from .files import atomic_write

DEFAULT_SIZE = 33  # the size colour tools exchange (Resolve, Photoshop)
MAX_SIZE = 256
HALD_LEVEL = 8  # 64³ entries in a 512 × 512 image
SMOOTHNESS = 1e-3  # weight of the membrane term against the data (per node)
HUBER = 0.04  # residual (0..1 units) above which a sample's weight falls off
ROUNDS = 2  # rounds of the robust fit: least squares, then one reweighted
BAND_PIXELS = 1 << 21  # pixels per band when a LUT is applied


class LutError(StylenasError):
    """A LUT file that cannot be read or written."""


@dataclass
class Lut3D:
    """A 3D LUT: ``values (N, N, N, 3)`` float32 output colours in [0, 1] indexed
    ``[b, g, r]`` (the order of a ``.cube`` file's rows: red fastest), over the input cube
    ``domain_min..domain_max``."""

    values: torch.Tensor
    title: str = "stylenas"
    domain_min: tuple[float, float, float] = (0.0, 0.0, 0.0)
    domain_max: tuple[float, float, float] = (1.0, 1.0, 1.0)
    _table: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        v = self.values
        if v.ndim != 4 or v.shape[-1] != 3 or not v.shape[0] == v.shape[1] == v.shape[2]:
            raise ValueError(f"a 3D LUT is (N, N, N, 3), got {tuple(v.shape)}")
        if not 2 <= v.shape[0] <= MAX_SIZE:
            raise ValueError(f"LUT size must be 2..{MAX_SIZE}, got {v.shape[0]}")

    @property
    def size(self) -> int:
        return self.values.shape[0]

    @classmethod
    def identity(cls, size: int = DEFAULT_SIZE) -> Lut3D:
        ramp = torch.linspace(0, 1, size)
        b, g, r = torch.meshgrid(ramp, ramp, ramp, indexing="ij")
        return cls(torch.stack([r, g, b], -1))

    def __call__(self, colours: torch.Tensor) -> torch.Tensor:
        """Colours ``(..., 3)`` in the domain (float) -> mapped colours ``(..., 3)``
        float32, by trilinear interpolation."""
        lo = torch.tensor(self.domain_min, dtype=torch.float32, device=colours.device)
        hi = torch.tensor(self.domain_max, dtype=torch.float32, device=colours.device)
        unit = ((colours.float() - lo) / (hi - lo)).clamp(0, 1)
        grid = unit.reshape(1, 1, 1, -1, 3) * 2 - 1  # (x, y, z) = (r, g, b)
        volume = self.values.permute(3, 0, 1, 2)[None].to(colours.device)  # (1, 3, b, g, r)
        out = F.grid_sample(volume, grid, mode="bilinear", align_corners=True)
        return out.reshape(3, -1).T.reshape(colours.shape)

    def table(self) -> torch.Tensor:
        """The LUT at every 8-bit colour, built once (a lookup per pixel is then all a photo
        costs): ``(256³,)`` int32, entry ``r + 256·g + 65536·b`` holding the output's bytes
        ``(r, g, b, 0)``. Trilinear interpolation is separable: one linear resampling per
        axis, the last one a blue level at a time straight into the table."""
        if self._table is None:
            low, frac = zip(
                *(_taps(self.size, a, b) for a, b in zip(self.domain_min, self.domain_max))
            )
            # In output bytes plus one half, so that the final cast's truncation rounds.
            v = self.values.float().mul(255).add_(0.5).clamp_(0.5, 255.5)  # (b, g, r, 3)
            v = _resample(v, 2, low[0], frac[0])
            v = _resample(v, 1, low[1], frac[1])  # (b, 256, 256, 3)
            table = torch.empty(256, 256, 256, 4, dtype=torch.uint8)
            table[..., 3] = 0
            plane = torch.empty(256, 256, 3)
            for z, (i, f) in enumerate(zip(low[2].tolist(), frac[2].tolist())):
                table[z, ..., :3] = torch.lerp(v[i], v[i + 1], f, out=plane)
            self._table = table.view(torch.int32).view(-1)
        return self._table

    def apply(self, image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """An ``(H, W, 3)`` image (uint8, or float in [0, 1]) -> ``(H, W, 3)`` uint8 through
        the LUT, band by band (``out`` may be the input itself)."""
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"expected an (H, W, 3) image, got {image.shape}")
        out = np.empty(image.shape, np.uint8) if out is None else out
        flat_in, flat_out = image.reshape(-1, 3), torch.from_numpy(out.reshape(-1, 3))
        for s in range(0, len(flat_in), BAND_PIXELS):
            part = torch.from_numpy(np.array(flat_in[s : s + BAND_PIXELS]))
            if part.dtype != torch.uint8:  # 16-bit sources: interpolated, not tabled
                mapped = self(part).mul_(255).round_().clamp_(0, 255).to(torch.uint8)
            else:
                mapped = lookup(self.table(), part)
            flat_out[s : s + BAND_PIXELS] = mapped
        return out


def lookup(table: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """8-bit pixels ``(P, 3)`` through a table of :meth:`Lut3D.table` -> ``(P, 3)`` uint8."""
    four = torch.zeros(len(pixels), 4, dtype=torch.uint8)
    four[:, :3] = pixels  # r, g, b, 0 as one little-endian int32: the table's index
    index = four.view(torch.int32).view(-1)
    return torch.index_select(table, 0, index).view(torch.uint8).view(-1, 4)[:, :3]


def _taps(size: int, lo: float, hi: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear interpolation of one axis' lattice nodes at each 8-bit level (the domain
    ``lo..hi`` mapped onto the nodes; outside: clamped): the lower node ``(256,)`` long and
    the weight of the next one ``(256,)`` float32."""
    level = torch.arange(256, dtype=torch.float64) / 255.0
    pos = ((level - lo) / (hi - lo)).clamp(0, 1) * (size - 1)
    low = pos.floor().clamp(max=size - 2)
    return low.long(), (pos - low).float()


def _resample(v: torch.Tensor, dim: int, low: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
    """Lattice values ``v`` resampled along ``dim`` at the 256 levels of :func:`_taps`."""
    shape = [1] * v.ndim
    shape[dim] = -1
    return torch.lerp(v.index_select(dim, low), v.index_select(dim, low + 1), frac.view(shape))


def _corners(colours: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Colours ``(P, 3)`` in [0, 1] -> the flat indices ``(P, 8)`` of the lattice nodes
    around each and their trilinear weights ``(P, 8)`` (the sampling operator's rows)."""
    pos = colours.clamp(0, 1) * (size - 1)
    low = pos.floor().clamp(max=size - 2)
    frac = pos - low
    low = low.long()
    idx, wts = [], []
    for db in (0, 1):
        for dg in (0, 1):
            for dr in (0, 1):
                r, g, b = low[:, 0] + dr, low[:, 1] + dg, low[:, 2] + db
                idx.append((b * size + g) * size + r)
                wr = frac[:, 0] if dr else 1 - frac[:, 0]
                wg = frac[:, 1] if dg else 1 - frac[:, 1]
                wb = frac[:, 2] if db else 1 - frac[:, 2]
                wts.append(wr * wg * wb)
    return torch.stack(idx, 1), torch.stack(wts, 1)


def _membrane(x: torch.Tensor, size: int) -> torch.Tensor:
    """``Gᵀ G x`` for lattice fields ``x (3, N³)``: each node minus its neighbours along the
    three axes (the discrete Laplacian with free borders, negated)."""
    v = x.view(3, size, size, size)
    out = torch.zeros_like(v)
    for dim in (1, 2, 3):
        diff = v.diff(dim=dim)  # differences between neighbours along this axis
        out.narrow(dim, 0, size - 1).sub_(diff)
        out.narrow(dim, 1, size - 1).add_(diff)
    return out.view(3, -1)


def fit_lut(
    source: torch.Tensor,
    target: torch.Tensor,
    size: int = DEFAULT_SIZE,
    weights: torch.Tensor | None = None,
    smoothness: float = SMOOTHNESS,
    rounds: int = ROUNDS,
    iterations: int = 300,
) -> Lut3D:
    """The LUT that maps colours ``source (P, 3)`` to ``target (P, 3)`` (both in [0, 1]):
    lattice offsets from the identity by regularised, reweighted least squares (see the
    module docstring), solved by preconditioned conjugate gradients. ``weights (P,)``: how
    many pixels each colour pair stands for (default 1)."""
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3:
        raise ValueError(f"source and target must both be (P, 3), got {source.shape}, "
                         f"{target.shape}")  # fmt: skip
    if not 2 <= size <= MAX_SIZE:
        raise ValueError(f"LUT size must be 2..{MAX_SIZE}, got {size}")
    src, dst = source.double().clamp(0, 1), target.double().clamp(0, 1)
    count = torch.ones(len(src), dtype=torch.float64) if weights is None else weights.double()
    idx, wts = _corners(src, size)
    idx, wts = idx.flatten(), wts.double()
    nodes = size**3
    identity = Lut3D.identity(size).values.reshape(-1, 3).double().T  # (3, N³)
    # Per node, the data's weight: the membrane's share is scaled by it, so that the look
    # does not depend on how many pixels the photos have.
    reg = smoothness * float(count.sum()) / nodes
    offset = torch.zeros(3, nodes, dtype=torch.float64)

    def gather(x: torch.Tensor) -> torch.Tensor:  # lattice (3, N³) -> samples (3, P)
        return (x[:, idx].view(3, -1, 8) * wts).sum(-1)

    def splat(y: torch.Tensor) -> torch.Tensor:  # samples (3, P) -> lattice (3, N³)
        out = torch.zeros(3, nodes, dtype=torch.float64)
        out.index_add_(1, idx, (y[:, :, None] * wts).reshape(3, -1))
        return out

    base = src.T  # trilinear interpolation keeps the identity: T(c) = c + S·offset
    w = count.clone()  # the samples' weights, reweighted each round
    for _ in range(max(1, rounds)):

        def normal(x: torch.Tensor, w: torch.Tensor = w) -> torch.Tensor:
            return splat(gather(x) * w) + reg * _membrane(x, size) + 1e-9 * reg * x

        rhs = splat((dst.T - base) * w)
        diag = torch.zeros(nodes, dtype=torch.float64)
        diag.index_add_(0, idx, (wts.pow(2) * w[:, None]).flatten())
        precond = 1.0 / (diag + 6 * reg + 1e-9 * reg)
        offset = _conjugate_gradient(normal, rhs, offset, precond, iterations)
        residual = (base + gather(offset) - dst.T).norm(dim=0)  # (P,)
        w = count * torch.where(residual > HUBER, HUBER / residual.clamp_min(1e-12), 1.0)
    values = (identity + offset).T.clamp(0, 1).float().reshape(size, size, size, 3)
    return Lut3D(values)


def _conjugate_gradient(apply, rhs, x0, precond, iterations: int, tol: float = 1e-10):
    """Solve ``apply(x) = rhs`` (symmetric positive definite; per row of ``(3, n)``
    independent systems sharing the operator) from ``x0`` with a diagonal preconditioner."""
    x = x0.clone()
    r = rhs - apply(x)
    z = r * precond
    p = z.clone()
    rz = (r * z).sum(1, keepdim=True)
    scale = (rhs * rhs).sum().clamp_min(1e-30)
    for _ in range(iterations):
        ap = apply(p)
        alpha = rz / (p * ap).sum(1, keepdim=True).clamp_min(1e-30)
        x += alpha * p
        r -= alpha * ap
        if float((r * r).sum() / scale) < tol:
            break
        z = r * precond
        rz_new = (r * z).sum(1, keepdim=True)
        p = z + (rz_new / rz.clamp_min(1e-30)) * p
        rz = rz_new
    return x


def colour_pairs(
    source: np.ndarray, target: np.ndarray, bits: int = 6
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixels of two same-size images ``(H, W, 3)`` (uint8 or float in [0, 1]) -> per
    distinct source colour (quantised to ``bits`` per channel): its mean source colour, mean
    target colour and pixel count, ``(K, 3), (K, 3), (K,)`` (a photo's millions of pixels as
    a few ten thousand weighted pairs)."""

    def unit(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.array(a, copy=True)).reshape(-1, 3)  # a read-only decode too
        return t.double() / 255.0 if t.dtype == torch.uint8 else t.double()

    s, t = unit(source), unit(target)
    levels = 1 << bits
    q = (s * (levels - 1)).round().long()
    key = (q[:, 0] * levels + q[:, 1]) * levels + q[:, 2]
    keys, inverse, counts = key.unique(return_inverse=True, return_counts=True)
    sums_s = torch.zeros(len(keys), 3, dtype=torch.float64).index_add_(0, inverse, s)
    sums_t = torch.zeros(len(keys), 3, dtype=torch.float64).index_add_(0, inverse, t)
    n = counts.double()[:, None]
    return sums_s / n, sums_t / n, counts.double()


# --- files -------------------------------------------------------------------------------------

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TRIPLE = re.compile(rf"^\s*({_NUMBER})\s+({_NUMBER})\s+({_NUMBER})\s*$")


def read_lut(path: str | Path) -> Lut3D:
    """A ``.cube`` file, or a HALD CLUT image (any other suffix), as a :class:`Lut3D`."""
    path = Path(path)
    if not path.exists():
        raise LutError(f"{path}: LUT file not found")
    if not path.is_file():
        raise LutError(f"{path}: is not a regular file")
    return read_cube(path) if path.suffix.lower() == ".cube" else read_hald(path)


def read_cube(path: str | Path) -> Lut3D:
    """Parse an Adobe Cube LUT 1.0 file (3D only). Raises :class:`LutError` naming the file
    and line of what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise LutError(f"{path}: cannot read the LUT ({err})") from None
    title, size = "", None
    lo, hi = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    rows: list[tuple[float, float, float]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path}:{n}"
        word = line.split()[0].upper()
        if word == "TITLE":
            title = line[5:].strip().strip('"')
        elif word == "LUT_1D_SIZE":
            raise LutError(f"{where}: a 1D LUT; only 3D LUTs (LUT_3D_SIZE) are supported")
        elif word == "LUT_3D_SIZE":
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit():
                raise LutError(f"{where}: LUT_3D_SIZE needs one whole number, got {line!r}")
            size = int(parts[1])
            if not 2 <= size <= MAX_SIZE:
                raise LutError(f"{where}: LUT_3D_SIZE {size} is outside 2..{MAX_SIZE}")
        elif word in ("DOMAIN_MIN", "DOMAIN_MAX", "LUT_3D_INPUT_RANGE"):
            values = _numbers(line.split()[1:], where, 2 if word == "LUT_3D_INPUT_RANGE" else 3)
            if word == "LUT_3D_INPUT_RANGE":
                lo, hi = [values[0]] * 3, [values[1]] * 3
            elif word == "DOMAIN_MIN":
                lo = values
            else:
                hi = values
        elif word[0].isalpha():
            raise LutError(f"{where}: unknown keyword {word!r}")
        else:
            if size is None:
                raise LutError(f"{where}: a table row before LUT_3D_SIZE")
            rows.append(tuple(_numbers(line.split(), where, 3)))
    if size is None:
        raise LutError(f"{path}: no LUT_3D_SIZE line: not a 3D .cube LUT")
    if len(rows) != size**3:
        raise LutError(f"{path}: LUT_3D_SIZE {size} needs {size**3} rows, found {len(rows)}")
    if any(a >= b for a, b in zip(lo, hi)):
        raise LutError(f"{path}: DOMAIN_MIN {lo} must be below DOMAIN_MAX {hi} on every channel")
    values = torch.tensor(rows, dtype=torch.float32).reshape(size, size, size, 3)
    return Lut3D(values, title or path.stem, tuple(lo), tuple(hi))


def _numbers(words: list[str], where: str, count: int) -> list[float]:
    if len(words) != count:
        raise LutError(f"{where}: expected {count} numbers, got {len(words)}")
    try:
        values = [float(w) for w in words]
    except ValueError:
        raise LutError(f"{where}: not a number in {' '.join(words)!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise LutError(f"{where}: values must be finite, got {' '.join(words)}")
    return values


def write_cube(lut: Lut3D, dest: str | Path, overwrite: bool = False) -> Path:
    """Write ``lut`` as an Adobe Cube LUT 1.0 file (atomically; six decimals)."""
    flat = lut.values.reshape(-1, 3).double().numpy()
    lines = [f'TITLE "{lut.title}"', f"LUT_3D_SIZE {lut.size}"]
    lines.append("DOMAIN_MIN {:.6f} {:.6f} {:.6f}".format(*lut.domain_min))
    lines.append("DOMAIN_MAX {:.6f} {:.6f} {:.6f}".format(*lut.domain_max))
    body = "\n".join(f"{r:.6f} {g:.6f} {b:.6f}" for r, g, b in flat)
    text = "\n".join(lines) + "\n" + body + "\n"
    return atomic_write(dest, lambda tmp: tmp.write_text(text, encoding="ascii"), overwrite)


def read_hald(path: str | Path) -> Lut3D:
    """A HALD CLUT image (level L: an L³ × L³ image of L² entries per axis, red fastest)."""
    from .images import ImageError, load_image

    path = Path(path)
    try:
        image = load_image(path)
    except ImageError as err:
        raise LutError(str(err)) from None
    w, h = image.size
    level = round(w ** (1 / 3))
    if w != h or level**3 != w or not 2 <= level**2 <= MAX_SIZE:
        raise LutError(
            f"{path}: a HALD CLUT is a square of side L³ (e.g. 512 for level 8), got {w}x{h}"
        )
    pixels = image.pixels
    unit = pixels.astype(np.float32) / 255.0 if pixels.dtype == np.uint8 else pixels
    size = level**2
    values = torch.from_numpy(np.ascontiguousarray(unit)).reshape(size, size, size, 3)
    return Lut3D(values.float(), path.stem)


def hald_level(size: int) -> int:
    """The HALD level whose entries per axis are ``size`` (a square: 4, 9, ..., 64, ...)."""
    level = math.isqrt(size)
    if level * level != size or level < 2:
        raise LutError(
            f"a HALD CLUT holds L² entries per axis (e.g. 64 for level 8): --size {size} is not "
            "a square; use --size 64 or a .cube file"
        )
    return level


def write_hald(lut: Lut3D, dest: str | Path, overwrite: bool = False) -> Path:
    """Write ``lut`` as an 8-bit HALD CLUT PNG (its size must be a square, :func:`hald_level`;
    a LUT over another domain is resampled onto [0, 1] first)."""
    from PIL import Image

    level = hald_level(lut.size)
    values = lut.values
    if lut.domain_min != (0.0, 0.0, 0.0) or lut.domain_max != (1.0, 1.0, 1.0):
        values = lut(Lut3D.identity(lut.size).values.reshape(-1, 3)).reshape(values.shape)
    side = level**3
    pixels = values.reshape(side, side, 3).mul(255).round().clamp(0, 255).to(torch.uint8)
    image = Image.fromarray(pixels.numpy(), "RGB")
    return atomic_write(dest, lambda tmp: image.save(tmp, format="PNG"), overwrite)


def write_lut(lut: Lut3D, dest: str | Path, overwrite: bool = False) -> Path:
    """``.cube`` by suffix, else a HALD CLUT image (``.png``)."""
    dest = Path(dest)
    if dest.suffix.lower() == ".cube":
        return write_cube(lut, dest, overwrite)
    if dest.suffix.lower() != ".png":
        raise LutError(f"{dest}: a LUT is written as .cube or as a HALD .png")
    return write_hald(lut, dest, overwrite)

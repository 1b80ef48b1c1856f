"""Quality and cost metrics, exactly as ``../shared/EVAL.md`` defines them.

Quality metrics are pure functions of RGB images ``(H, W, 3)`` with values in [0, 1]
(numpy arrays; a torch ``(1, 3, H, W)`` or ``(3, H, W)`` tensor is accepted too):

=============  ==========================================================  ========
name           definition                                                  better
=============  ==========================================================  ========
``ssim``       SSIM of the grayscale content and output (default window)   higher
``edge_ssim``  SSIM of Sobel magnitudes of the σ=1 blurred grayscales      higher
``lab_w1``     mean over L, a, b of the 1-D Wasserstein distance between   lower
               the output's and the style's pixel values (≤ 40,000 each)
``gain``       ``1 − lab_w1 / lab_c`` (``lab_c``: the content's lab_w1)     higher
``gram``       mean over relu1_1…relu5_1 of ‖G_out − G_style‖² / ‖G_style‖²  lower
               (VGG19 Caffe weights, zero padding, long side 512)
=============  ==========================================================  ========

The output is compared at the content's resolution: :func:`resize` it first if needed.

``gram`` is built from two pieces that work with any encoder's features, so every Gram loss
of the project uses one formula: :func:`grams_of` (features -> Gram matrices) and
:func:`gram_distance` (the normalised distance between two sets of them).

Cost helpers: :func:`seconds_per_megapixel` (warm, median of N), :func:`peak_memory`
(RSS on CPU, max allocated on CUDA), :func:`parameters` and :func:`flops_per_megapixel` of
a decoder.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.stats import wasserstein_distance
from skimage.color import rgb2gray, rgb2lab
from skimage.filters import gaussian, sobel
from skimage.metrics import structural_similarity

from ..decoder import count_parameters, decoder_flops
from ..device import synchronize
from ..encoder import LEVELS, VGGEncoder

EDGE_SIGMA = 1.0  # px, Gaussian blur before the Sobel magnitude
LAB_SAMPLES = 40_000  # at most this many pixels of each image for lab_w1
LAB_SEED = 0
GRAM_LONG_SIDE = 512  # both images resized so the long side is this before VGG
GRAM_EPS = 1e-30  # a black style (all-zero Gram matrices) must not divide by zero
HIGHER_IS_BETTER: dict[str, bool] = {
    "ssim": True,
    "edge_ssim": True,
    "lab_w1": False,
    "gain": True,
    "gram": False,
}


# --- images --------------------------------------------------------------------------------


def as_rgb(image: np.ndarray | torch.Tensor, name: str = "image") -> np.ndarray:
    """``(H, W, 3)`` array or ``(1, 3, H, W)`` / ``(3, H, W)`` tensor in [0, 1] ->
    ``(H, W, 3)`` float64 array."""
    if isinstance(image, torch.Tensor):
        t = image.detach().float().cpu()
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim != 3 or t.shape[0] != 3:
            raise ValueError(
                f"{name}: expected a (1, 3, H, W) or (3, H, W) tensor, got {tuple(image.shape)}"
            )
        image = t.permute(1, 2, 0).numpy()
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"{name}: expected an (H, W, 3) RGB array, got shape {arr.shape}")
    return arr


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Lanczos-resize an ``(H, W, 3)`` float image to ``size`` = (width, height), in float
    (no 8-bit rounding), clipped back to [0, 1]."""
    arr = as_rgb(image)
    w, h = size
    if arr.shape[1] == w and arr.shape[0] == h:
        return arr
    channels = [
        np.asarray(
            Image.fromarray(arr[..., k].astype(np.float32), mode="F").resize(
                (w, h), Image.Resampling.LANCZOS
            )
        )
        for k in range(3)
    ]
    return np.clip(np.stack(channels, axis=-1).astype(np.float64), 0.0, 1.0)


def resize_long_side(image: np.ndarray, long_side: int) -> np.ndarray:
    """Lanczos-resize so that the longer side is ``long_side`` (up or down; keeps aspect)."""
    arr = as_rgb(image)
    h, w = arr.shape[:2]
    scale = long_side / max(h, w)
    return resize(arr, (max(1, round(w * scale)), max(1, round(h * scale))))


def _same_size(content: np.ndarray, output: np.ndarray) -> None:
    if content.shape != output.shape:
        raise ValueError(
            f"the output {output.shape[1]}x{output.shape[0]} must be compared at the content's "
            f"size {content.shape[1]}x{content.shape[0]}: resize it first"
        )


# --- structure -----------------------------------------------------------------------------


def ssim(content: np.ndarray, output: np.ndarray) -> float:
    """SSIM of the grayscale content and output (scikit-image defaults, ``data_range=1``)."""
    c, o = as_rgb(content, "content"), as_rgb(output, "output")
    _same_size(c, o)
    return float(structural_similarity(rgb2gray(c), rgb2gray(o), data_range=1.0))


def edge_map(image: np.ndarray, sigma: float = EDGE_SIGMA) -> np.ndarray:
    """Sobel magnitude of the grayscale image blurred with a Gaussian of ``sigma`` px
    (``skimage.filters.gaussian``, default ``mode="nearest"``) -> ``(H, W)``."""
    return sobel(gaussian(rgb2gray(as_rgb(image)), sigma=sigma))


def edge_ssim(content: np.ndarray, output: np.ndarray) -> float:
    """SSIM of the two edge maps; ``data_range`` = the larger maximum of the two maps.
    Two flat images (no edges at all) count as identical: 1.0."""
    c, o = as_rgb(content, "content"), as_rgb(output, "output")
    _same_size(c, o)
    ec, eo = edge_map(c), edge_map(o)
    data_range = float(max(ec.max(), eo.max()))
    if data_range <= 0.0:
        return 1.0
    return float(structural_similarity(ec, eo, data_range=data_range))


# --- colour --------------------------------------------------------------------------------


def lab_samples(image: np.ndarray, n: int = LAB_SAMPLES, seed: int = LAB_SEED) -> np.ndarray:
    """At most ``n`` pixels drawn uniformly without replacement (fixed ``seed``), in Lab
    -> ``(n, 3)``."""
    rgb = as_rgb(image).reshape(-1, 3)
    if len(rgb) > n:
        rgb = rgb[np.random.default_rng(seed).choice(len(rgb), size=n, replace=False)]
    return rgb2lab(rgb[:, None, :])[:, 0, :]  # rgb2lab is per pixel: sample first


def lab_w1(output: np.ndarray, style: np.ndarray) -> float:
    """Mean over the L, a, b channels of the 1-D Wasserstein distance between the output's
    and the style's pixel values (images of any sizes)."""
    return lab_w1_samples(lab_samples(output), lab_samples(style))


def lab_w1_samples(output_lab: np.ndarray, style_lab: np.ndarray) -> float:
    """:func:`lab_w1` from :func:`lab_samples` ``(n, 3)`` of each (reuse a style's samples)."""
    return float(
        np.mean([wasserstein_distance(output_lab[:, k], style_lab[:, k]) for k in range(3)])
    )


def gain(lab_w1_output: float, lab_c: float) -> float:
    """Share of the colour gap to the style closed: ``1 − lab_w1 / lab_c`` (NaN when the
    content already has the style's colours, ``lab_c == 0``)."""
    if lab_c <= 0.0:
        return float("nan")
    return 1.0 - lab_w1_output / lab_c


# --- style ---------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def gram_encoder(device: str = "cpu"):
    """The VGG19 of the ``gram`` metric: Caffe weights, zero padding, raw (Caffe-scale)
    features. Built once per device."""
    return VGGEncoder(padding="zeros", normalise=False).to(device)


def grams_of(feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Gram matrix ``F Fᵀ / (H·W)`` of each level's features, computed in float32.

    ``(1, C, H, W)`` or ``(C, H, W)`` features give ``(C, C)``; a batch ``(B, C, H, W)``
    with ``B > 1`` gives ``(B, C, C)``, one per image. Any encoder's features will do."""
    grams = {}
    for level, feat in feats.items():
        if feat.ndim == 4 and feat.shape[0] == 1:
            feat = feat[0]
        if feat.ndim not in (3, 4):
            raise ValueError(
                f"{level}: expected (B, C, H, W) or (C, H, W) features, got {tuple(feat.shape)}"
            )
        f = feat.flatten(-2).float()  # (..., C, H*W)
        grams[level] = f @ f.transpose(-1, -2) / f.shape[-1]  # (..., C, C)
    return grams


@torch.no_grad()
def gram_matrices(
    image: np.ndarray,
    encoder: torch.nn.Module | None = None,
    long_side: int | None = GRAM_LONG_SIDE,
) -> dict[str, torch.Tensor]:
    """Gram matrix ``F Fᵀ / (H·W)`` ``(C, C)`` at each of relu1_1…relu5_1, after resizing the
    image so the long side is ``long_side`` (``None``: as is)."""
    encoder = encoder if encoder is not None else gram_encoder()
    arr = as_rgb(image)
    if long_side is not None:
        arr = resize_long_side(arr, long_side)
    device = next(encoder.parameters()).device
    x = torch.from_numpy(arr.astype(np.float32)).permute(2, 0, 1)[None]  # (1, 3, H, W)
    x = x.to(device)
    return {lv: g.double().cpu() for lv, g in grams_of(encoder(x, LEVELS)).items()}


def gram_distance(out: dict[str, torch.Tensor], style: dict[str, torch.Tensor]) -> float:
    """Mean over the style's levels of ``‖G_out − G_style‖²_F / ‖G_style‖²_F`` (0: the same
    second-order statistics), from :func:`grams_of` of any encoder's ``(C, C)`` matrices."""
    losses = []
    for lv, g_style in style.items():
        if lv not in out or out[lv].shape != g_style.shape:
            got = tuple(out[lv].shape) if lv in out else "nothing"
            raise ValueError(f"{lv}: expected a {tuple(g_style.shape)} Gram matrix, got {got}")
        diff = ((out[lv] - g_style) ** 2).sum()
        losses.append(float(diff / (g_style**2).sum().clamp_min(GRAM_EPS)))
    return float(np.mean(losses))


def gram(
    output: np.ndarray,
    style: np.ndarray,
    encoder: torch.nn.Module | None = None,
    long_side: int | None = GRAM_LONG_SIDE,
) -> float:
    """The ``gram`` style loss between an output and its style (lower = closer style)."""
    return gram_distance(
        gram_matrices(output, encoder, long_side), gram_matrices(style, encoder, long_side)
    )


class Scorer:
    """Every EVAL.md metric of outputs for one content/style pair; the content's and the
    style's reference statistics (``lab_c``, ``gram_c``, the style's Gram matrices and Lab
    samples) are computed once, so scoring many outputs of a pair costs only the outputs."""

    def __init__(
        self,
        content: np.ndarray,
        style: np.ndarray,
        encoder: torch.nn.Module | None = None,
        gram_size: int | None = GRAM_LONG_SIDE,
    ) -> None:
        self.content = as_rgb(content, "content")
        self.encoder = encoder if encoder is not None else gram_encoder()
        self.gram_size = gram_size
        self.style_grams = gram_matrices(as_rgb(style, "style"), self.encoder, gram_size)
        self.style_lab = lab_samples(style)
        self.lab_c = lab_w1_samples(lab_samples(self.content), self.style_lab)
        self.gram_c = gram_distance(
            gram_matrices(self.content, self.encoder, gram_size), self.style_grams
        )

    def __call__(self, output: np.ndarray) -> dict[str, float]:
        """``output`` at the content's size -> ``{ssim, edge_ssim, lab_w1, gain, gram}``."""
        w1 = lab_w1_samples(lab_samples(output), self.style_lab)
        return {
            "ssim": ssim(self.content, output),
            "edge_ssim": edge_ssim(self.content, output),
            "lab_w1": w1,
            "gain": gain(w1, self.lab_c),
            "gram": gram_distance(
                gram_matrices(output, self.encoder, self.gram_size), self.style_grams
            ),
        }


# --- cost ----------------------------------------------------------------------------------


def median_seconds(
    fn: Callable[[], object],
    repeats: int = 5,
    warmup: int = 1,
    device: torch.device | str | None = None,
) -> float:
    """Warm median wall seconds of ``repeats`` timed calls of ``fn`` (after ``warmup``
    untimed ones). CUDA work is synchronised around each call."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def seconds_per_megapixel(
    fn: Callable[[], object],
    pixels: int,
    repeats: int = 5,
    warmup: int = 1,
    device: torch.device | str | None = None,
) -> float:
    """:func:`median_seconds` divided by the megapixels ``fn`` processes."""
    if pixels < 1:
        raise ValueError(f"pixels must be >= 1, got {pixels}")
    return median_seconds(fn, repeats, warmup, device) / (pixels / 1e6)


def _read_hwm() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset the peak RSS
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class Peak:
    """Peak memory in bytes and what it measures (``cuda_max_allocated``, ``rss`` or
    ``rss_lifetime`` where the peak cannot be reset)."""

    bytes: int
    kind: str


def peak_memory(fn: Callable[[], object], device: torch.device | str = "cpu") -> Peak:
    """Run ``fn`` once and return its peak memory: ``torch.cuda.max_memory_allocated`` on
    CUDA; on CPU the process's peak RSS (Linux ``VmHWM``, reset first), which includes the
    model and the Python process itself."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return Peak(int(torch.cuda.max_memory_allocated(device)), "cuda_max_allocated")
    reset = _reset_hwm()
    fn()
    hwm = _read_hwm() if reset else None
    if hwm is not None:
        return Peak(hwm, "rss")
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return Peak(int(kb) * 1024, "rss_lifetime")


def parameters(module: torch.nn.Module) -> int:
    """Number of parameters (the decoder's, for a Stylizer: the encoder is shared)."""
    return count_parameters(module)


def flops_per_megapixel(decoder: torch.nn.Module, side: int = 128) -> float:
    """Decoder FLOPs per megapixel (no transfers), counted at ``side × side``; convolution
    cost is proportional to the pixel count, so this holds at every size."""
    if any(p.device.type != "cpu" for p in decoder.parameters()):
        decoder = copy.deepcopy(decoder).cpu()  # decoder_flops feeds CPU tensors
    return decoder_flops(decoder, side, side) / (side * side / 1e6)

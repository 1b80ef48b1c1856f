"""The supernet proxy: score any genotype in seconds with weights inherited from a supernet.

:class:`SupernetObjective` cuts the genotype's decoder from a supernet
(:func:`~.supernet.decoder_for`), stylises validation pairs with the shipped pipeline and
measures what the evaluation measures (EVAL.md), each a cost (lower is better):

- ``dssim``: ``1 − SSIM`` of the grayscale content and output;
- ``gram``: the Gram distance of the output to the style (relu1_1…relu5_1);
- ``lab_w1``: the Wasserstein distance of the output's Lab colours to the style's;
- ``gflops`` (one decoder pass at 512×512), ``params_m`` and ``net_seconds`` (the measured
  decoder seconds at the working size, 384×288: the median of a few runs; left out with
  ``timing_runs=0``).

The validation pairs are made from the photos ``stylenas train`` holds aside (every 20th
training photo, never the benchmark pairs): the first half are contents, the second half
styles (:func:`prepare_proxy`). No training happens here. The bits of the decoder's own
transfer points change nothing the shipped pipeline computes (it leaves those points off):
the proxy searches the other bits (:data:`PROXY_SPACE`), the weight bits and the transfers
at relu5_1 and the skips.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..config import DEFAULT_TRANSFER, DEFAULT_WORK_SIZE
from ..decoder import Decoder, canonical, count_parameters
from ..device import resolve_device
from ..evaluation.metrics import gram_distance, grams_of, lab_samples, lab_w1_samples, ssim
from ..files import atomic_write
from ..genotype import N_BITS, SEARCHABLE_BITS, Genotype
from ..model import Stylizer
from ..style import StyleCache, used_points
from ..train import list_images, split_holdout, val_images
from ..weights import load_torch_file
from .evolution import Scores, SearchError, scalarise
from .objectives import (
    VALIDATION,
    TrainSettings,
    _is_current,
    _validation,
    gflops,
    shipped_stylize,
)
from .rundir import CANDIDATES
from .supernet import PHOTONET, TRANSFER_BITS, check_photonet, decoder_for


@lru_cache(maxsize=1)
def idle_bits() -> tuple[int, ...]:
    """Transfer bits whose points the shipped pipeline leaves off (the decoder's own), found
    by switching each on alone and asking which points stylisation would use."""
    idle = []
    for i in TRANSFER_BITS:
        bits = ["0"] * N_BITS
        bits[i] = "1"
        with torch.device("meta"):
            points = Decoder(Genotype("".join(bits))).transfer_points
        if points and not used_points(points, DEFAULT_TRANSFER):
            idle.append(i)
    return tuple(idle)


def shipped_genotype(genotype: Genotype) -> Genotype:
    """``genotype`` with its idle transfer bits off: the same stylisation, one name for it."""
    bits = list(genotype.bits)
    for i in idle_bits():
        bits[i] = "0"
    return Genotype("".join(bits))


def search_genotype(genotype: Genotype) -> Genotype:
    """The name the supernet search gives ``genotype``: idle transfer bits off
    (:func:`shipped_genotype`) and the bits that cannot change the output off
    (:func:`~stylenas_cli.decoder.canonical`), so equivalent networks are scored once."""
    return canonical(shipped_genotype(genotype))


PROXY_SPACE = tuple(i for i in SEARCHABLE_BITS if i not in idle_bits())
PROXY_QUALITY = {"dssim": 1.0, "gram": 1.0, "lab_w1": 0.1}  # lab_w1 runs ~10x the others
PROXY_WEIGHTS = PROXY_QUALITY | {"gflops": 0.001, "net_seconds": 0.0, "params_m": 0.0}
TIMING_RUNS = 3


def prepare_proxy(run_dir: str | Path, train_data: str | Path, pairs: int, size: int) -> Path:
    """Write ``<run>/validation.pt`` once: ``pairs`` (content, style) pairs of held-aside
    training photos, resized and centre-cropped to ``size``. Reused when current."""
    path = Path(run_dir) / VALIDATION
    key = {"train": str(train_data), "proxy_pairs": pairs, "size": size}
    if _is_current(path, key):
        return path
    held = split_holdout(list_images(train_data))[1]
    if len(held) < 2 * pairs:
        raise SearchError(
            f"{train_data} holds aside {len(held)} photos: too few for {pairs} pairs "
            f"(every 20th training photo is held aside; need {2 * pairs})"
        )
    contents, styles = held[:pairs], held[pairs : 2 * pairs]
    payload = {
        "contents": val_images(contents, size),
        "styles": val_images(styles, size),
        "names": [f"{c.stem}+{s.stem}" for c, s in zip(contents, styles)],
        "key": key,
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


@lru_cache(maxsize=2)
def _supernet_state(path: str, mtime_ns: int) -> dict[str, torch.Tensor]:
    """A supernet weights file (photonet layout) in fp32, once per process and version."""
    data = load_torch_file(path, "supernet weights")
    state = data.get("state_dict", data) if isinstance(data, dict) else data
    return {k: v.float() for k, v in check_photonet(state).items()}


def supernet_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The fp32 PhotoNet-layout state of a supernet weights file or checkpoint."""
    path = Path(path)
    return _supernet_state(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=2)
def _base_stylizer(device: str) -> Stylizer:
    """One encoder per process: each genotype only swaps the decoder in."""
    return Stylizer(PHOTONET).to(device).eval()


@lru_cache(maxsize=2)
def _timing_features(device: str) -> dict[str, torch.Tensor]:
    """Encoder features of a 384×288 image (the working size of a 4:3 photo), once."""
    side = DEFAULT_WORK_SIZE
    x = torch.rand(1, 3, side * 3 // 4, side, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        return _base_stylizer(device).encoder(x.to(device))


def decoder_seconds(decoder: torch.nn.Module, st: Stylizer, runs: int = TIMING_RUNS) -> float:
    """Median seconds of ``decoder`` on the encoder features of a 384×288 image (fp32),
    after one warm-up pass."""
    feats = _timing_features(str(st.device))
    with torch.inference_mode():
        decoder(feats)  # warm-up
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            decoder(feats)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


@dataclass(frozen=True)
class StyleSide:
    """What scoring needs of one style, the same for every genotype: its summary (made with
    PhotoNet's points, a superset of any sub-network's), Gram matrices and Lab samples."""

    cache: StyleCache
    grams: dict[str, torch.Tensor]
    lab: np.ndarray


@torch.no_grad()
def style_sides(st: Stylizer, styles: torch.Tensor) -> list[StyleSide]:
    """:class:`StyleSide` of each style ``(N, 3, S, S)`` (``st``'s encoder; any decoder)."""
    decoder, st.decoder = st.decoder, Decoder(PHOTONET).to(st.device)  # every point
    try:
        caches = [st.style_cache(s[None]) for s in styles]
    finally:
        st.decoder = decoder
    return [
        StyleSide(
            c,
            grams_of(st.encoder(s[None].to(st.device))),  # level: (C, C)
            lab_samples(s),
        )  # fmt: skip
        for c, s in zip(caches, styles)
    ]


@torch.no_grad()
def score_pairs(
    st: Stylizer,
    contents: torch.Tensor,
    styles: torch.Tensor,
    sides: list[StyleSide] | None = None,
) -> dict[str, float]:
    """Mean ``dssim``, ``gram`` and ``lab_w1`` of ``st``'s shipped stylisation of the pairs
    ``contents, styles (N, 3, S, S)``; ``sides``: :func:`style_sides` of ``styles``, made
    once for many genotypes."""
    sides = style_sides(st, styles) if sides is None else sides
    dssim, gram, w1 = [], [], []
    for c, side in zip(contents, sides):
        out = shipped_stylize(st, c[None], side.cache).cpu()[0]
        gram.append(gram_distance(grams_of(st.encoder(out[None].to(st.device))), side.grams))
        dssim.append(1.0 - ssim(c, out))
        w1.append(lab_w1_samples(lab_samples(out), side.lab))
    n = len(dssim)
    return {"dssim": sum(dssim) / n, "gram": sum(gram) / n, "lab_w1": sum(w1) / n}


@lru_cache(maxsize=2)
def _sides(path: str, mtime_ns: int, device: str) -> list[StyleSide]:  # once per process
    return style_sides(_base_stylizer(device), _validation(Path(path))["styles"])


@dataclass
class SupernetObjective:
    """Score a genotype with weights inherited from ``supernet``: no training. Picklable.

    Each candidate's inherited decoder is saved as ``<run>/candidates/<genotype>.pt`` (the
    run keeps the front's), so ``best.json`` loads with ``--arch`` and ``train``/``seed``
    serve :func:`~.objectives.train_winner` when the winner is trained on."""

    run_dir: str  # holds validation.pt (prepare_proxy)
    supernet: str  # supernet weights (a `stylenas supernet` checkpoint or its export)
    train: TrainSettings  # the winner's training (search --final-steps)
    weights: dict[str, float] = field(default_factory=lambda: dict(PROXY_WEIGHTS))
    seed: int = 0
    timing_runs: int = TIMING_RUNS
    save_candidates: bool = True  # off for comparisons that score thousands of genotypes
    init: str | None = None  # unused: candidates start from their inherited weights

    def __call__(self, genotype: Genotype) -> Scores:
        if self.train.threads:
            torch.set_num_threads(self.train.threads)
        t0 = time.perf_counter()
        plain = shipped_genotype(genotype)
        device = str(resolve_device(self.train.device))
        st = _base_stylizer(device)
        st.genotype = plain
        st.decoder = decoder_for(supernet_state(self.supernet), plain).to(device)
        st.weights_id = None  # no style cache: its entries are keyed by weights
        objectives = self.measure(st)
        info = {}
        if self.save_candidates:
            checkpoint = Path(CANDIDATES) / f"{genotype}.pt"
            state = {k: v.detach().half().cpu() for k, v in st.decoder.state_dict().items()}
            payload = {"genotype": str(genotype), "state_dict": state, "step": 0}
            atomic_write(Path(self.run_dir) / checkpoint, lambda tmp: torch.save(payload, tmp))
            info["checkpoint"] = str(checkpoint)
        info["eval_seconds"] = round(time.perf_counter() - t0, 3)
        return Scores.of(objectives, self.weights, **info)

    def measure(self, st: Stylizer) -> dict[str, float]:
        """Every objective of ``st``'s decoder (module docstring) and their ``quality``."""
        path = Path(self.run_dir) / VALIDATION
        v = _validation(path)
        sides = _sides(str(path), path.stat().st_mtime_ns, str(st.device))
        objectives = score_pairs(st, v["contents"], v["styles"], sides)
        objectives |= {
            "gflops": gflops(shipped_genotype(st.genotype)),
            "params_m": count_parameters(st.decoder) / 1e6,
        }
        if self.timing_runs:
            objectives["net_seconds"] = decoder_seconds(st.decoder, st, self.timing_runs)
        objectives["quality"] = scalarise(objectives, PROXY_QUALITY)
        return objectives

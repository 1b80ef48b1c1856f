"""The real objectives of the searches (SPEC §5): what ``evaluate(genotype)`` means.

**StyleNAS** (:class:`StyleNASObjective`): a candidate decoder is trained briefly for
reconstruction, then measured on

- ``recon``: reconstruction loss on held-aside photos (the training loss: weighted pixel MSE +
  mean feature MSE over the five VGG levels);
- ``gram``: stylisation Gram loss to the style on validation pairs (per level
  ``‖G_out − G_style‖² / ‖G_style‖²``, mean over relu1_1…relu5_1; the evaluation's
  :func:`~..evaluation.metrics.gram_distance` on the candidate's own encoder features);
- ``dssim``: ``1 − SSIM`` between the grayscale content and the grayscale output (the
  evaluation's :func:`~..evaluation.metrics.ssim`);
- ``params_m`` (millions), ``gflops`` (one decoder pass at 512×512) and ``sec_per_mp``
  (measured stylisation seconds per megapixel at the validation size).

``quality`` is the weighted sum of the three quality terms (the y axis of the Pareto plot)
and the fitness adds the weighted cost terms.

**PhotoNAS P-step** (:class:`PStepObjective`): the teacher stylises the validation pairs once
(:func:`prepare_pstep`); each student (a sub-network of the teacher) is warm-started from the
teacher's weights where layers match, trained briefly and scored by
``0.8·L_r + 0.1·L_p + 0.1·L_m`` (:func:`pstep_score`) against the teacher's outputs.

Every stylisation here is the shipped one (:func:`shipped_stylize`: the command line's
:class:`~stylenas_cli.config.TransferSettings`, working size and lift), so a genotype wins for
what users run, not for a pipeline that never runs.

Objectives are plain picklable dataclasses so they run in worker processes or as Ray tasks;
the validation data is computed once per run into ``<run>/validation.pt`` and every worker
reads that file, so all candidates see exactly the same inputs. A genotype's training is
seeded from ``(seed, genotype)``: the same candidate scores the same in any worker.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from ..config import DEFAULT_TRANSFER, DEFAULT_WORK_SIZE
from ..decoder import Decoder, conv_flops, count_parameters
from ..device import resolve_device
from ..device import resolve_precision as device_precision
from ..encoder import LEVELS
from ..evaluation import find_pairs
from ..evaluation.metrics import gram_distance, grams_of, ssim
from ..files import atomic_write
from ..genotype import N_BITS, Genotype, resolve
from ..model import Stylizer
from ..train import (
    PhotoSampler,
    TrainConfig,
    TrainState,
    export_weights,
    fit,
    list_images,
    read_checkpoint,
    reconstruction_loss,
    split_holdout,
    train,
    val_images,
    warm_start,
)
from ..weights import load_torch_file
from .evolution import Scores, SearchError, scalarise
from .rundir import CANDIDATES

VALIDATION = "validation.pt"

STYLENAS_QUALITY = ("recon", "gram", "dssim")
STYLENAS_WEIGHTS = {
    "recon": 1.0,
    "gram": 1.0,
    "dssim": 1.0,
    "gflops": 0.001,  # photonas ≈ 73, photonet ≈ 240 GFLOPs at 512×512
    "params_m": 0.0,
    "sec_per_mp": 0.0,  # measured time is noisy with parallel workers: off by default
}
PSTEP_WEIGHTS = {"l_r": 0.8, "l_p": 0.1, "l_m": 0.1}  # SPEC §5


# --- data ---------------------------------------------------------------------------------


def pair_paths(folder: str | Path) -> list[tuple[Path, Path]]:
    """The (content, style) photos of a pair folder (see :func:`~..evaluation.find_pairs`)."""
    return [(p.content, p.style) for p in find_pairs(folder)[0]]


def spread(items: list, count: int) -> list:
    """``count`` items evenly spread over ``items`` (all of them if fewer)."""
    if count >= len(items):
        return list(items)
    return [items[round(k * (len(items) - 1) / max(1, count - 1))] for k in range(count)]


def _save_validation(path: Path, payload: dict) -> Path:
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def prepare_stylenas(
    run_dir: str | Path,
    train_data: str | Path,
    pairs: str | Path,
    photos: int,
    n_pairs: int,
    size: int,
) -> Path:
    """Write ``<run>/validation.pt`` once: held-aside training photos and validation pairs,
    centre-cropped to ``size``. An existing file is reused (a resumed run)."""
    path = Path(run_dir) / VALIDATION
    key = {"train": str(train_data), "pairs": str(pairs), "n": [photos, n_pairs], "size": size}
    if _is_current(path, key):
        return path
    held = spread(split_holdout(list_images(train_data))[1], photos)
    chosen = spread(pair_paths(pairs), n_pairs)
    payload = {
        "photos": val_images(held, size),
        "contents": val_images([c for c, _ in chosen], size),
        "styles": val_images([s for _, s in chosen], size),
        "names": [c.stem for c, _ in chosen],
        "key": key,
    }
    return _save_validation(path, payload)


def _is_current(path: Path, key: dict) -> bool:
    """``path`` exists and was made with the same settings (a resumed run reuses it)."""
    if not path.exists():
        return False
    data = load_torch_file(path, "validation file")
    return isinstance(data, dict) and data.get("key") == key


def shipped_stylize(st: Stylizer, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """``content (1, 3, H, W)`` stylised by ``style (1, 3, H', W')`` the way ``stylenas
    stylize`` does it: the default transfer settings, working size and lift."""
    return st.stylize_at(content, style, 1.0, DEFAULT_TRANSFER, work_size=DEFAULT_WORK_SIZE)


@torch.no_grad()
def prepare_pstep(
    run_dir: str | Path,
    pairs: str | Path,
    n_pairs: int,
    size: int,
    teacher: Stylizer,
    teacher_id: str = "",
) -> Path:
    """Write ``<run>/validation.pt`` once: the pairs and the teacher's stylisations of them
    (also saved as ``<run>/teacher/<name>.png`` to look at). ``teacher_id`` names the
    teacher's weights: a different teacher recomputes the file."""
    from ..model import tensor_to_pil

    path = Path(run_dir) / VALIDATION
    key = {"pairs": str(pairs), "n": n_pairs, "size": size, "teacher": teacher_id,
           "pipeline": "shipped"}  # teacher outputs of the shipped stylisation  # fmt: skip
    if _is_current(path, key):
        return path
    chosen = spread(pair_paths(pairs), n_pairs)
    contents = val_images([c for c, _ in chosen], size)
    styles = val_images([s for _, s in chosen], size)
    teacher.eval()
    outs = torch.cat(
        [shipped_stylize(teacher, c[None], s[None]).cpu() for c, s in zip(contents, styles)]
    )
    (Path(run_dir) / "teacher").mkdir(parents=True, exist_ok=True)
    for (c, _), out in zip(chosen, outs):
        tensor_to_pil(out).save(Path(run_dir) / "teacher" / f"{c.stem}.png")
    payload = {
        "contents": contents,
        "styles": styles,
        "teacher": outs,
        "teacher_genotype": str(teacher.genotype),
        "names": [c.stem for c, _ in chosen],
        "key": key,
    }
    return _save_validation(path, payload)


def _validation(path: Path) -> dict:
    return _load_validation(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=2)
def _load_validation(path: str, mtime_ns: int) -> dict:  # once per process and version
    return load_torch_file(path, "validation file")


# --- pieces of the objectives -------------------------------------------------------------


def derive_seed(seed: int, genotype: Genotype | str) -> int:
    """A seed for one candidate from the run's seed and the genotype alone."""
    digest = hashlib.sha256(f"{seed}:{genotype}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def pstep_score(l_r: float, l_p: float, l_m: float, weights: dict[str, float] = PSTEP_WEIGHTS):
    """PhotoNAS P-step score ``0.8·L_r + 0.1·L_p + 0.1·L_m`` (lower is better)."""
    return scalarise({"l_r": l_r, "l_p": l_p, "l_m": l_m}, weights)


@lru_cache(maxsize=1 << 16)
def gflops(genotype: Genotype) -> float:
    """Decoder GFLOPs at 512×512, from the convolutions' shapes of a decoder built on the
    meta device (no weights): a cost cap asks this of thousands of genotypes."""
    with torch.device("meta"):
        return conv_flops(Decoder(genotype), 512, 512) / 1e9


@dataclass(frozen=True)
class GflopsCap:
    """A cost cap for the search: a genotype is feasible when its decoder costs at most
    ``limit`` GFLOPs at 512×512."""

    limit: float

    def __call__(self, genotype: Genotype) -> bool:
        return gflops(genotype) <= self.limit * (1 + 1e-9)  # an equal cost counts as within

    @classmethod
    def of(cls, cap: float | str) -> GflopsCap:
        """``cap``: GFLOPs, or an architecture (name or 32-bit string) whose cost it is."""
        if isinstance(cap, str):
            try:
                cap = float(cap)
            except ValueError:
                return cls(gflops(resolve(cap)))
        if not math.isfinite(cap) or cap <= 0:
            raise SearchError(f"a GFLOPs cap is a positive number or an architecture, got {cap}")
        return cls(float(cap))


@dataclass
class TrainSettings:
    """The short reconstruction training every candidate gets (and the final one)."""

    data: str  # folder of training photos
    steps: int = 100
    batch: int = 4
    size: int = 64  # random crop side
    lr: float = 5e-4  # peak; warm-up then cosine, as `stylenas train` (2e-3 killed ReLU paths)
    pixel_weight: float = 10.0
    device: str = "cpu"
    precision: str = "auto"  # autocast while training; auto: bf16 on CUDA, fp32 on the CPU
    threads: int = 0  # torch intra-op threads in each worker (0: leave as is)

    def config(self, **overrides) -> TrainConfig:
        """These settings as a :class:`~..train.TrainConfig` (warm-up by its default rule)."""
        base = dict(
            data=self.data,
            steps=self.steps,
            batch=self.batch,
            size=self.size,
            lr=self.lr,
            pixel_weight=self.pixel_weight,
            precision=resolve_precision(self.precision, resolve_device(self.device)),
            device=self.device,
        )
        return TrainConfig(**(base | overrides))


def resolve_precision(precision: str, device: torch.device) -> str:
    """The training precision of ``auto`` (bf16 on CUDA, fp32 on the CPU): see
    :func:`stylenas_cli.device.resolve_precision`."""
    return device_precision(precision, device, training=True)


def short_train(st: Stylizer, cfg: TrainSettings, seed: int) -> float:
    """Train ``st.decoder`` for reconstruction with ``train.fit`` (encoder frozen, no WCT)
    on resized random crops; returns the mean loss of the last fifth of the steps."""
    files = split_holdout(list_images(cfg.data))[0]
    # Crops are resized to `size` anyway: photos kept at a short side of 2·size lose nothing.
    sampler = PhotoSampler(files, cfg.size, seed, "resized", max_short_side=2 * cfg.size)
    opt = torch.optim.Adam(st.decoder.parameters(), lr=cfg.lr)
    losses: list[float] = []
    fit(
        st.decoder,
        st.encoder,
        opt,
        sampler.batch,
        cfg.config(),
        TrainState(),
        lambda info: losses.append(info["loss"]),
    )
    tail = losses[-max(1, len(losses) // 5) :]
    return sum(tail) / len(tail) if tail else float("nan")


@torch.no_grad()
def _stylize_all(st: Stylizer, v: dict) -> tuple[torch.Tensor, float]:
    """Stylise every validation pair: ``(N, 3, S, S)`` outputs and seconds per megapixel."""
    outs, seconds = [], 0.0
    for c, s in zip(v["contents"], v["styles"]):
        t0 = time.perf_counter()
        outs.append(shipped_stylize(st, c[None], s[None]).cpu())
        seconds += time.perf_counter() - t0
    out = torch.cat(outs)
    megapixels = out.shape[0] * out.shape[-1] * out.shape[-2] / 1e6
    return out, seconds / megapixels


@dataclass
class _Objective:
    """Train a candidate briefly, then :meth:`measure` it. Picklable."""

    run_dir: str  # holds validation.pt; candidate decoders go to <run>/candidates/
    train: TrainSettings
    weights: dict[str, float]
    seed: int = 0
    init: str | None = None  # warm-start every candidate from these weights (matching layers)

    @property
    def validation(self) -> dict:
        """The run's validation data (loaded once per process)."""
        return _validation(Path(self.run_dir) / VALIDATION)

    def __call__(self, genotype: Genotype) -> Scores:
        if self.train.threads:
            torch.set_num_threads(self.train.threads)
        seed = derive_seed(self.seed, genotype)
        torch.manual_seed(seed)
        st = Stylizer(genotype).to(resolve_device(self.train.device))
        if self.init:
            warm_start(st.decoder, self.init)
        t0 = time.perf_counter()
        loss = short_train(st, self.train, seed)
        train_seconds = time.perf_counter() - t0
        objectives = self.measure(st)
        checkpoint = Path(CANDIDATES) / f"{genotype}.pt"
        state = {k: v.detach().half().cpu() for k, v in st.decoder.state_dict().items()}
        payload = {"genotype": str(genotype), "state_dict": state, "step": self.train.steps}
        atomic_write(Path(self.run_dir) / checkpoint, lambda tmp: torch.save(payload, tmp))
        info = {"train_seconds": round(train_seconds, 3), "train_loss": loss}
        return Scores.of(objectives, self.weights, checkpoint=str(checkpoint), **info)

    def measure(self, st: Stylizer) -> dict[str, float]:
        """The objectives of a trained candidate (fp32, as every candidate is measured)."""
        raise NotImplementedError

    def _cost(self, st: Stylizer, sec_per_mp: float) -> dict[str, float]:
        return {
            "params_m": count_parameters(st.decoder) / 1e6,
            "gflops": gflops(st.genotype),
            "sec_per_mp": sec_per_mp,
        }


@dataclass
class StyleNASObjective(_Objective):
    """StyleNAS: reconstruction, stylisation and cost objectives (module docstring)."""

    weights: dict[str, float] = field(default_factory=lambda: dict(STYLENAS_WEIGHTS))

    @torch.no_grad()
    def measure(self, st: Stylizer) -> dict[str, float]:
        v = self.validation
        photos = v["photos"].to(st.device)
        feats = st.encoder(photos)
        recon, _ = reconstruction_loss(
            st.decoder(feats).float(), photos, st.encoder, feats, self.train.pixel_weight, LEVELS
        )
        outs, sec_per_mp = _stylize_all(st, v)
        grams, ssims = [], []
        for c, s, out in zip(v["contents"], v["styles"], outs):
            g = grams_of(st.encoder(torch.stack([out, s]).to(st.device)))  # level: (2, C, C)
            grams.append(
                gram_distance({k: m[0] for k, m in g.items()}, {k: m[1] for k, m in g.items()})
            )
            ssims.append(ssim(c, out))
        objectives = {
            "recon": float(recon),
            "gram": sum(grams) / len(grams),
            "dssim": 1.0 - sum(ssims) / len(ssims),
            **self._cost(st, sec_per_mp),
        }
        quality = {k: self.weights.get(k, 0.0) for k in STYLENAS_QUALITY}
        objectives["quality"] = scalarise(objectives, quality)
        return objectives


@dataclass
class PStepObjective(_Objective):
    """PhotoNAS P-step: distance of a student's stylisations to the teacher's."""

    weights: dict[str, float] = field(default_factory=lambda: dict(PSTEP_WEIGHTS))

    @torch.no_grad()
    def measure(self, st: Stylizer) -> dict[str, float]:
        v = self.validation
        outs, sec_per_mp = _stylize_all(st, v)
        teacher = v["teacher"]
        l_r = float(F.mse_loss(outs, teacher))
        a, b = st.encoder(outs.to(st.device)), st.encoder(teacher.to(st.device))
        l_p = float(torch.stack([F.mse_loss(a[k], b[k]) for k in LEVELS]).mean())
        l_m = st.genotype.n_on / N_BITS
        objectives = {"l_r": l_r, "l_p": l_p, "l_m": l_m, **self._cost(st, sec_per_mp)}
        w = self.weights
        objectives["quality"] = w.get("l_r", 0.0) * l_r + w.get("l_p", 0.0) * l_p
        return objectives


# --- the winner ---------------------------------------------------------------------------


def train_winner(
    objective: _Objective,
    genotype: Genotype,
    steps: int,
    log: Callable[[str], None] = print,
    on_step: Callable[[int, dict], None] | None = None,
    start: str | Path | None = None,
) -> tuple[Path, dict[str, float], float]:
    """Train the winner ``steps`` more steps (``stylenas train``'s loop, resumable in
    ``<run>/final``) from ``start`` (a decoder file relative to the run; default its candidate
    decoder), export ``<run>/winner.pt`` (fp16) and measure it again. Returns (weights file,
    objectives, training seconds)."""
    run_dir = Path(objective.run_dir)
    out = run_dir / "final"
    last = out / "last.pt"
    if last.exists():
        held = read_checkpoint(last)["genotype"]
        if held != str(genotype):  # the winner changed since (a longer resumed search)
            last.unlink()
    start = run_dir / (start or Path(CANDIDATES) / f"{genotype}.pt")
    init = start if start.exists() else objective.init
    t = objective.train
    cfg = t.config(
        arch=str(genotype),
        out=str(out),
        steps=steps,
        seed=derive_seed(objective.seed, genotype),
        checkpoint_every=max(1, min(100, steps)),
        val_every=steps,
        val_size=t.size,
        init=str(init) if init else None,
    )
    t0 = time.perf_counter()
    ckpt = train(cfg, resume=last.exists(), on_step=on_step, log=log)
    seconds = time.perf_counter() - t0
    dest = export_weights(ckpt, run_dir / "winner.pt")
    st = Stylizer.from_pretrained(str(genotype), dest, t.device)
    return dest, objective.measure(st), seconds

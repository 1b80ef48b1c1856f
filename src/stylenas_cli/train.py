"""Reconstruction training of a decoder (SPEC §4): encoder frozen, no WCT while training.

Loss = ``pixel_weight · MSE(out, in) + mean over levels of MSE(enc(out), enc(in))`` on the
scale-normalised encoder features (see :mod:`stylenas_cli.encoder`), Adam with linear warm-up
and cosine decay. Checkpoints hold everything needed to resume bit-for-bit in schedule.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2

from .decoder import Decoder
from .device import autocast, resolve_device, resolve_precision
from .encoder import LEVELS, VGGEncoder
from .errors import StylenasError
from .files import atomic_write, exclusive_dir
from .genotype import resolve
from .images import IMAGE_SUFFIXES, ImageError, open_image
from .weights import WeightsError, check_state_dict, load_torch_file

HOLDOUT_EVERY = 20  # every 20th photo (sorted by name) is held aside for validation


@dataclass
class TrainConfig:
    data: str
    arch: str = "photonas"
    out: str = "runs/train"
    steps: int = 4000
    batch: int = 8
    size: int = 256  # random crop side
    lr: float = 5e-4
    warmup: int | None = None  # linear warm-up steps; None: default_warmup(steps)
    clip_grad: float = 1.0  # global grad-norm clip: high rates otherwise blow up and kill ReLUs
    min_lr_ratio: float = 0.02
    pixel_weight: float = 10.0
    levels: tuple[str, ...] = LEVELS  # perceptual loss levels
    precision: str = "auto"  # auto: bf16 on CUDA, fp32 on the CPU (device.resolve_precision)
    device: str = "auto"
    seed: int = 0
    checkpoint_every: int = 200
    val_every: int = 200
    val_size: int = 256
    init: str | None = None  # warm start: checkpoint/weights sharing layer names
    crop: str = "resized"  # "resized": scale 0.25-1 resized to size; "native": no resampling
    # Random tone: each crop becomes crop**g, g log-uniform in this range ((1, 1) = off).
    # Without it the decoders lift the blacks of dark photos (they regress to the mean tone).
    gamma: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        if self.warmup is None:
            self.warmup = default_warmup(self.steps)
        numbers = {"lr": self.lr, "clip_grad": self.clip_grad, "pixel_weight": self.pixel_weight,
                   "min_lr_ratio": self.min_lr_ratio, "gamma": max(self.gamma)}  # fmt: skip
        for name, value in numbers.items():
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


def default_warmup(steps: int) -> int:
    """Warm-up steps of a run of ``steps``: a tenth of it, at least 1 and at most 200."""
    return max(1, min(200, steps // 10))


@dataclass
class TrainState:
    step: int = 0
    history: list[dict] = field(default_factory=list)


class DataError(StylenasError):
    """A training data folder that cannot be used."""


def list_images(folder: str | Path, on_skip: Callable[[str], None] | None = None) -> list[Path]:
    """The readable photos under ``folder`` (recursive, sorted); at least two.

    Each file is decoded once (JPEGs at 1/8 scale) so that an unreadable, truncated or
    oversized one is skipped here, with ``on_skip(reason)``, instead of stopping a training
    hours later."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"training data folder not found: {folder}")
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            with open_image(path) as img:
                img.draft("RGB", (img.width // 8, img.height // 8))
                img.load()
        except ImageError as err:
            (on_skip or (lambda m: None))(f"skipped {err}")
            continue
        except (OSError, SyntaxError, ValueError) as err:
            (on_skip or (lambda m: None))(f"skipped {path}: not a readable image ({err})")
            continue
        files.append(path)
    if len(files) < 2:
        raise DataError(f"need at least 2 readable photos in {folder}, found {len(files)}")
    return files


def split_holdout(files: list[Path]) -> tuple[list[Path], list[Path]]:
    val = files[::HOLDOUT_EVERY]
    train = [f for f in files if f not in set(val)]
    return train, val


CROP_MODES = ("resized", "native")


@lru_cache(maxsize=2)
def load_photos(files: tuple[Path, ...], max_short_side: int | None = None) -> tuple:
    """Photos as uint8 ``(3, H, W)`` tensors, loaded once per process; with
    ``max_short_side`` each is shrunk so its short side is at most that (JPEGs decode at a
    reduced scale)."""
    photos = []
    for f in files:
        with Image.open(f) as img:
            if max_short_side:
                img.draft("RGB", (max_short_side, max_short_side))
            img = img.convert("RGB")
            scale = max_short_side / min(img.size) if max_short_side else 1.0
            if scale < 1:
                size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
                img = img.resize(size, Image.Resampling.BILINEAR)
            photos.append(v2.functional.pil_to_tensor(img))
    return tuple(photos)


class PhotoSampler:
    """Random square crops with flips from photos kept in memory.

    ``crop="resized"``: 25-100% of the photo's area, resized to ``size`` (scale augmentation).
    ``crop="native"``: ``size`` pixels of the photo at its own resolution (reflect-padded when
    the photo is smaller), so training sees the detail and statistics of full-size photos.
    ``gamma``: each crop is raised to a power drawn log-uniformly from this range (tone
    augmentation: dark and bright photos). ``max_short_side``: keep the photos shrunk to this
    (see :func:`load_photos`; resized crops lose nothing when it is about 2·``size``)."""

    def __init__(
        self,
        files: Sequence[Path],
        size: int,
        seed: int,
        crop: str = "resized",
        gamma: tuple[float, float] = (1.0, 1.0),
        max_short_side: int | None = None,
    ) -> None:
        if not 0 < gamma[0] <= gamma[1]:
            raise ValueError(f"gamma range must be 0 < low <= high, got {gamma}")
        self.log_gamma = (math.log(gamma[0]), math.log(gamma[1]))
        if crop not in CROP_MODES:
            raise ValueError(f"crop must be one of {', '.join(CROP_MODES)}, got {crop!r}")
        self.images = load_photos(tuple(files), max_short_side)
        cropper = (
            v2.RandomResizedCrop(size, scale=(0.25, 1.0), antialias=True)
            if crop == "resized"
            else v2.RandomCrop(size, pad_if_needed=True, padding_mode="reflect")
        )
        self.crop = v2.Compose([cropper, v2.RandomHorizontalFlip()])
        self.rng = random.Random(seed)

    def batch(self, n: int) -> torch.Tensor:
        picks = [self.images[self.rng.randrange(len(self.images))] for _ in range(n)]
        crops = torch.stack([self.crop(img) for img in picks]).float() / 255.0
        if self.log_gamma[0] == self.log_gamma[1] == 0.0:
            return crops
        g = [math.exp(self.rng.uniform(*self.log_gamma)) for _ in range(n)]
        return crops ** torch.tensor(g).view(n, 1, 1, 1)


def val_images(files: list[Path], size: int) -> torch.Tensor:
    """Held-out photos, resized (short side) and centre-cropped to ``size``."""
    tf = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])
    return (
        torch.stack(
            [tf(v2.functional.pil_to_tensor(Image.open(f).convert("RGB"))) for f in files]
        ).float()
        / 255.0
    )


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean PSNR (dB) over a batch of images in [0, 1]."""
    mse = ((a.clamp(0, 1) - b) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1.0 / mse)).mean())


def reconstruction_loss(
    out: torch.Tensor,
    target: torch.Tensor,
    encoder: VGGEncoder,
    target_feats: dict[str, torch.Tensor],
    pixel_weight: float,
    levels: tuple[str, ...],
) -> tuple[torch.Tensor, dict[str, float]]:
    """Pixel MSE (weighted) + mean feature MSE over ``levels``; returns (loss, parts)."""
    pix = F.mse_loss(out.float(), target)
    feats = encoder(out, levels) if levels else {}
    per = [F.mse_loss(feats[lv].float(), target_feats[lv].float()) for lv in levels]
    perc = torch.stack(per).mean() if per else torch.zeros((), device=out.device)
    parts = {"pixel": pix.item(), "perceptual": perc.item()}
    return pixel_weight * pix + perc, parts


def lr_factor(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    t = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def save_checkpoint(path: Path, decoder: Decoder, opt, cfg: TrainConfig, state: TrainState):
    payload = {
        "genotype": str(decoder.genotype),
        "state_dict": decoder.state_dict(),
        "optimizer": opt.state_dict(),
        "config": asdict(cfg),
        "step": state.step,
        "history": state.history,
        "rng": torch.get_rng_state(),
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


CHECKPOINT_FIELDS = ("genotype", "state_dict", "optimizer", "config", "step", "history", "rng")


def read_checkpoint(path: str | Path) -> dict:
    """A training checkpoint (:func:`save_checkpoint`), read safely and checked field by
    field; raises :class:`~stylenas_cli.weights.WeightsError` (one line)."""
    path = Path(path)
    ck = load_torch_file(path, "training checkpoint")
    missing = [k for k in CHECKPOINT_FIELDS if not isinstance(ck, dict) or k not in ck]
    if missing:
        raise WeightsError(f"{path}: not a stylenas training checkpoint (no {missing[0]!r})")
    check_state_dict(ck["state_dict"], path)
    if not isinstance(ck["genotype"], str) or not isinstance(ck["step"], int):
        raise WeightsError(f"{path}: not a stylenas training checkpoint (bad genotype or step)")
    return ck


def warm_start(decoder: Decoder, path: str | Path) -> int:
    """Copy every tensor whose name and shape match from a checkpoint or weights file (or a
    bare state dict); returns how many were copied."""
    src = load_torch_file(path, "checkpoint")
    if isinstance(src, dict) and "state_dict" in src:
        src = src["state_dict"]
    src = check_state_dict(src, Path(path))
    own = decoder.state_dict()
    shared = {k: v.float() for k, v in src.items() if k in own and own[k].shape == v.shape}
    decoder.load_state_dict(shared, strict=False)
    return len(shared)


Sampler = Callable[[int], torch.Tensor]  # n -> a batch (n, 3, S, S) in [0, 1]


def fit(
    decoder: Decoder,
    encoder: VGGEncoder,
    opt: torch.optim.Optimizer,
    sample: Sampler,
    cfg: TrainConfig,
    state: TrainState,
    on_step: Callable[[dict], None] | None = None,
) -> None:
    """The reconstruction training loop: optimiser steps from ``state.step`` up to
    ``cfg.steps`` (warm-up then cosine learning rate, autocast, gradient clipping);
    ``on_step(info)`` after each step with its loss parts and learning rate."""
    device = next(decoder.parameters()).device
    decoder.train()
    while state.step < cfg.steps:
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(state.step, cfg)
        img = sample(cfg.batch).to(device, non_blocking=True)
        with autocast(device, cfg.precision):
            with torch.no_grad():
                feats = encoder(img)
            loss, parts = reconstruction_loss(
                decoder(feats), img, encoder, feats, cfg.pixel_weight, cfg.levels
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip_grad:
            torch.nn.utils.clip_grad_norm_(decoder.parameters(), cfg.clip_grad)
        opt.step()
        state.step += 1
        if on_step:
            on_step({"step": state.step, "loss": loss.item(), **parts, "lr": group["lr"]})
    decoder.eval()


def train(
    cfg: TrainConfig,
    resume: bool = False,
    on_step: Callable[[int, dict], None] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train a decoder; returns the path of the last checkpoint (``<out>/last.pt``).

    Ctrl-C saves a checkpoint before re-raising ``KeyboardInterrupt``. The output folder
    is held for this process (:func:`~stylenas_cli.files.exclusive_dir`)."""
    with exclusive_dir(cfg.out, "training"):
        return _train(cfg, resume, on_step, log)


def _train(
    cfg: TrainConfig,
    resume: bool,
    on_step: Callable[[int, dict], None] | None,
    log: Callable[[str], None],
) -> Path:
    out = Path(cfg.out)
    ckpt_path = out / "last.pt"
    device = resolve_device(cfg.device)
    cfg = replace(cfg, precision=resolve_precision(cfg.precision, device, training=True))
    torch.manual_seed(cfg.seed)
    genotype = resolve(cfg.arch)
    encoder = VGGEncoder().to(device)
    decoder = Decoder(genotype).to(device)
    opt = torch.optim.Adam(decoder.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    state = TrainState()
    if resume and ckpt_path.exists():
        ck = read_checkpoint(ckpt_path)  # on the CPU, where the RNG state must be
        if ck["genotype"] != str(genotype):
            raise StylenasError(f"{ckpt_path} is for genotype {ck['genotype']}, not {genotype}")
        decoder.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        state = TrainState(ck["step"], ck["history"])
        torch.set_rng_state(ck["rng"])
        log(f"resumed from {ckpt_path} at step {state.step}")
    elif ckpt_path.exists():
        raise StylenasError(f"{ckpt_path} exists: pass --resume to continue it or pick --out")
    elif cfg.init:
        log(f"warm start: {warm_start(decoder, cfg.init)} tensors from {cfg.init}")

    train_files, val_files = split_holdout(list_images(cfg.data, log))
    sampler = PhotoSampler(train_files, cfg.size, cfg.seed + state.step, cfg.crop, tuple(cfg.gamma))
    val = val_images(val_files, cfg.val_size).to(device)

    def validate() -> float:
        decoder.eval()
        with torch.no_grad(), autocast(device, cfg.precision):
            rec = torch.cat([decoder(encoder(v[None])) for v in val]).float()
        decoder.train()
        return psnr(rec, val)

    t0 = time.perf_counter()

    def after_step(info: dict) -> None:
        step = info["step"]
        if step % cfg.val_every == 0 or step == cfg.steps:
            info["val_psnr"] = validate()
            info["elapsed"] = time.perf_counter() - t0
            state.history.append(info)
            log(
                f"step {step}: loss {info['loss']:.4f} pixel {info['pixel']:.5f} "
                f"perceptual {info['perceptual']:.4f} val PSNR {info['val_psnr']:.2f} dB"
            )
        if on_step:
            on_step(step, info)
        if step % cfg.checkpoint_every == 0:
            save_checkpoint(ckpt_path, decoder, opt, cfg, state)

    try:
        fit(decoder, encoder, opt, sampler.batch, cfg, state, after_step)
    except KeyboardInterrupt:
        save_checkpoint(ckpt_path, decoder, opt, cfg, state)
        log(f"interrupted: checkpoint saved at step {state.step} to {ckpt_path}")
        raise
    save_checkpoint(ckpt_path, decoder, opt, cfg, state)
    return ckpt_path


def export_weights(checkpoint: str | Path, dest: str | Path, half: bool = True) -> Path:
    """Strip a training checkpoint to a shippable weights file (fp16 by default)."""
    ck = read_checkpoint(checkpoint)
    dtype = torch.float16 if half else torch.float32
    payload = {
        "genotype": ck["genotype"],
        "state_dict": {k: v.to(dtype) for k, v in ck["state_dict"].items()},
        "step": ck["step"],
        "history": ck["history"],
        "config": ck["config"],
    }
    dest = Path(dest)
    atomic_write(dest, lambda tmp: torch.save(payload, tmp))
    return dest

"""A weight-sharing supernet over the decoder search space (once-for-all / BigNAS style).

PhotoNet (every used bit on) holds every genotype's decoder as a sub-network: a conv the
genotype keeps is PhotoNet's conv of the same name, sliced where a bit changes its shape
(:func:`inherit`). :class:`SuperDecoder` runs any sub-network on the shared weights, so one
fine-tuning (:func:`train_supernet`, the sandwich rule: largest, smallest and ``k`` random
sub-networks each step) trains all of them, and the search can score any genotype with
inherited weights in seconds (:func:`decoder_for`) instead of training it.

Transfer bits add WCTs, not weights: they change nothing here (reconstruction only).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call

from ..decoder import BFA_SKIPS, Decoder, stage_specs
from ..device import autocast, resolve_device, resolve_precision
from ..encoder import CHANNELS, VGGEncoder
from ..errors import StylenasError
from ..files import atomic_write, exclusive_dir
from ..genotype import N_BITS, NAMED, SEARCHABLE_BITS, TRANSFER_BITS, Genotype
from ..train import (
    PhotoSampler,
    TrainConfig,
    export_weights,
    list_images,
    lr_factor,
    read_checkpoint,
    reconstruction_loss,
    split_holdout,
)
from ..weights import WeightsError, load_decoder_state, resolve_arch_and_weights
from .evolution import random_genotype

State = dict[str, torch.Tensor]
PHOTONET = NAMED["photonet"]
# The fewest convs and channels the space allows: no BFA, no optional conv, 1x1 reductions,
# no concat (every bit off is a valid genotype: only bit 8 has a rule, and it is off).
SMALLEST = Genotype("0" * N_BITS)
# The bits that change a sub-network's weights or what it computes with them.
WEIGHT_BITS = tuple(i for i in SEARCHABLE_BITS if i not in TRANSFER_BITS)
SUPERNET_FIELDS = ("sampler_rng", "genotype_rng")  # beyond a training checkpoint's


class SupernetError(WeightsError):
    """A state dict or checkpoint that is not a PhotoNet supernet's."""


def without_transfers(genotype: Genotype) -> Genotype:
    """``genotype`` with every transfer bit off: the same decoder weights and reconstruction."""
    bits = list(genotype.bits)
    for i in TRANSFER_BITS:
        bits[i] = "0"
    return Genotype("".join(bits))


# --- weight inheritance -------------------------------------------------------------------


@lru_cache(maxsize=256)
def layout(genotype: Genotype) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of ``Decoder(genotype).state_dict()`` (built on the meta device)."""
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in Decoder(genotype).state_dict().items()}


def check_photonet(state: object) -> State:
    """``state`` if it has exactly PhotoNet's keys and shapes, else :class:`SupernetError`."""
    if not isinstance(state, Mapping):
        raise SupernetError(f"a PhotoNet state dict maps names to tensors, got {type(state)}")
    want = layout(PHOTONET)
    missing, extra = sorted(want.keys() - state.keys()), sorted(state.keys() - want.keys())
    if missing or extra:
        what = f"no {missing[0]!r}" if missing else f"unexpected {extra[0]!r}"
        raise SupernetError(f"not a PhotoNet state dict: {what}")
    for key, shape in want.items():
        got = getattr(state[key], "shape", None)
        if got is None or tuple(got) != shape:
            raise SupernetError(f"not a PhotoNet state dict: {key!r} is {got}, not {shape}")
    return dict(state)


def _bfa_inputs(genotype: Genotype) -> list[tuple[int, int]]:
    """Input-channel ranges of PhotoNet's BFA 1×1 conv that ``genotype`` aggregates, in the
    order ``Decoder.forward`` concatenates them: relu5_1, then the BFA skips."""
    ranges, start = [(0, CHANNELS["relu5_1"])], CHANNELS["relu5_1"]
    for bit, level, _ in BFA_SKIPS:
        if genotype.on(bit):
            ranges.append((start, start + CHANNELS[level]))
        start += CHANNELS[level]
    return ranges


def _slice(key: str, w: torch.Tensor, genotype: Genotype) -> torch.Tensor:
    """PhotoNet's tensor ``key`` cut to what ``genotype``'s conv of that name uses."""
    module, _, kind = key.rpartition(".")
    if kind != "weight":  # biases: every conv keeps its output channels
        return w
    if module == "bfa":  # (512, 1472, 1, 1) -> (512, 512 + aggregated skips, 1, 1)
        ranges = _bfa_inputs(genotype)
        if len(ranges) == len(BFA_SKIPS) + 1:
            return w
        return torch.cat([w[:, a:b] for a, b in ranges], 1)
    stage, _, role = module.split(".")[1].partition("_")  # "convs.d2_fuse.0"
    if role == "fuse" and not genotype.on(f"{stage}_concat"):
        # conv_concat orders the inputs [x, skip]: without the skip, x's channels alone
        skip = next(s.skip for s in stage_specs() if s.name == stage)
        return w[:, : CHANNELS[skip]]
    if role == "reduce" and not genotype.on(f"{stage}_conv3x3"):
        return w[:, :, 1:2, 1:2]  # a 1x1 conv is the 3x3 kernel's centre tap
    return w


def subnet_state(state: Mapping[str, torch.Tensor], genotype: Genotype) -> State:
    """The keys of ``Decoder(genotype)`` as slices (views where they can be) of the PhotoNet
    tensors ``state`` (not checked); differentiable, so gradients reach ``state``."""
    return {key: _slice(key, state[key], genotype) for key in layout(genotype)}


def inherit(state: Mapping[str, torch.Tensor], genotype: Genotype) -> State:
    """``Decoder(genotype)``'s state dict cut from a PhotoNet state dict: exactly its keys
    and shapes. A kept conv takes PhotoNet's conv of its name; a fuse conv without concat its
    first ``C_skip`` input channels (the running feature's); the BFA conv the input groups of
    relu5_1 and the skips ``genotype`` aggregates; a 1×1 reduction the centre tap of the 3×3
    kernel. Unsliced tensors are ``state``'s own; sliced ones are compact copies."""
    state = check_photonet(state)
    out = {k: v.contiguous() for k, v in subnet_state(state, genotype).items()}
    assert {k: tuple(v.shape) for k, v in out.items()} == layout(genotype)
    return out


def decoder_for(supernet_state: Mapping[str, torch.Tensor], genotype: Genotype) -> Decoder:
    """A stand-alone ``Decoder(genotype)`` with inherited weights, on the device of
    ``supernet_state``, in eval mode (it shares no memory with ``supernet_state``)."""
    state = inherit(supernet_state, genotype)
    with torch.device("meta"):  # no random init of weights about to be overwritten
        decoder = Decoder(genotype)
    decoder.to_empty(device=next(iter(state.values())).device)
    decoder.load_state_dict(state)
    return decoder.eval()


class SuperDecoder(nn.Module):
    """PhotoNet's parameters, once; ``forward(feats, genotype)`` runs ``genotype``'s
    sub-network on slices of them (reconstruction, no transfers)."""

    def __init__(self, state: Mapping[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.net = Decoder(PHOTONET)
        if state is not None:
            self.net.load_state_dict(check_photonet(state))

    def photonet_state(self) -> State:
        """The shared weights in PhotoNet's state-dict layout (what :func:`inherit` takes)."""
        return self.net.state_dict()

    def forward(self, feats: dict[str, torch.Tensor], genotype: Genotype) -> torch.Tensor:
        """``feats`` as :meth:`Decoder.forward` takes them -> ``(B, 3, H, W)``: exactly
        ``Decoder(genotype)`` loaded with :func:`inherit`, gradients going to the shared
        tensors."""
        weights = subnet_state(self.net.state_dict(keep_vars=True), genotype)
        # Decoder.forward itself on a weightless skeleton: one definition of the network.
        # A fresh skeleton per call: functional_call swaps its tensors while it runs.
        with torch.device("meta"):
            skeleton = Decoder(without_transfers(genotype))
        return functional_call(skeleton, weights, (feats,), strict=True)


def sandwich(rng: random.Random, k: int = 2) -> list[Genotype]:
    """The sub-networks one training step trains: the largest (PhotoNet), the smallest
    (:data:`SMALLEST`) and ``k`` random ones over :data:`WEIGHT_BITS` (transfer bits off)."""
    return [PHOTONET, SMALLEST, *(random_genotype(rng, WEIGHT_BITS) for _ in range(k))]


# --- training -----------------------------------------------------------------------------


@dataclass
class SupernetConfig:
    """Fine-tuning of a supernet from PhotoNet weights, for reconstruction."""

    data: str  # folder of training photos (every 20th is held aside, as `stylenas train`)
    out: str = "runs/supernet"
    steps: int = 2000
    batch: int = 8
    size: int = 128  # random crop side
    lr: float = 1e-4  # peak; low: the weights start trained, the sub-networks pull apart
    k: int = 2  # random sub-networks per step, besides the largest and the smallest
    warmup: int | None = None  # None: train.default_warmup(steps)
    clip_grad: float = 1.0
    min_lr_ratio: float = 0.02
    pixel_weight: float = 50.0
    levels: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1")
    init: str | None = None  # PhotoNet weights file; None: the shipped photonet
    crop: str = "resized"
    seed: int = 0
    checkpoint_every: int = 100
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 on CUDA, fp32 on the CPU

    def __post_init__(self) -> None:
        # `stylenas train`'s checks of the numbers both share, and its warm-up rule
        schedule = TrainConfig(
            self.data,
            steps=self.steps,
            lr=self.lr,
            warmup=self.warmup,
            clip_grad=self.clip_grad,
            min_lr_ratio=self.min_lr_ratio,
            pixel_weight=self.pixel_weight,
        )
        self.warmup = schedule.warmup
        if self.k < 0 or self.steps < 1 or self.checkpoint_every < 1:
            raise ValueError("k must be >= 0, steps and checkpoint_every >= 1")


def _rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()  # tuples: saved as lists (weights_only)
    return [version, list(internal), gauss]


def _set_rng_state(rng: random.Random, state: list, path: Path) -> None:
    try:
        rng.setstate((state[0], tuple(state[1]), state[2]))
    except (TypeError, ValueError, IndexError):
        raise SupernetError(f"{path}: its random-generator state is not readable") from None


def read_supernet_checkpoint(path: str | Path) -> dict:
    """A :func:`train_supernet` checkpoint, read safely (``weights_only``) and checked."""
    path = Path(path)
    ck = read_checkpoint(path)
    missing = [f for f in SUPERNET_FIELDS if f not in ck]
    if missing or ck["genotype"] != str(PHOTONET):
        raise SupernetError(f"{path}: not a supernet checkpoint (a plain training one?)")
    try:
        check_photonet(ck["state_dict"])
    except SupernetError as err:
        raise SupernetError(f"{path}: {err}") from None
    return ck


def train_supernet(
    cfg: SupernetConfig,
    resume: bool = False,
    log: Callable[[str], None] = print,
    on_step: Callable[[int, dict], None] | None = None,
) -> Path:
    """Fine-tune the supernet; returns ``<out>/last.pt``. Each step trains the sandwich's
    sub-networks on one batch (mean of their reconstruction losses, one Adam step over the
    shared weights, gradient clipping, ``stylenas train``'s warm-up and cosine schedule).

    ``resume`` continues ``<out>/last.pt`` bit for bit in schedule (step, optimiser, the
    torch, crop and genotype random states). Ctrl-C (SIGTERM in the command line) saves the
    checkpoint before re-raising ``KeyboardInterrupt``. ``on_step(step, info)`` after each
    step, ``info["losses"]`` holding each sub-network's loss. The output folder is held for
    this process (:func:`~stylenas_cli.files.exclusive_dir`)."""
    with exclusive_dir(cfg.out, "supernet training"):
        return _train_supernet(cfg, resume, log, on_step)


def _train_supernet(
    cfg: SupernetConfig,
    resume: bool,
    log: Callable[[str], None],
    on_step: Callable[[int, dict], None] | None,
) -> Path:
    out = Path(cfg.out)
    ckpt_path = out / "last.pt"
    device = resolve_device(cfg.device)
    cfg = replace(cfg, precision=resolve_precision(cfg.precision, device, training=True))
    torch.manual_seed(cfg.seed)
    encoder = VGGEncoder().to(device)
    supernet = SuperDecoder().to(device)
    opt = torch.optim.Adam(supernet.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    train_files = split_holdout(list_images(cfg.data, log))[0]
    sampler = PhotoSampler(train_files, cfg.size, cfg.seed, cfg.crop)
    genotypes = random.Random(cfg.seed)
    step, history = 0, []
    if resume and ckpt_path.exists():
        ck = read_supernet_checkpoint(ckpt_path)  # on the CPU, where the RNG state must be
        supernet.net.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        step, history = ck["step"], ck["history"]
        torch.set_rng_state(ck["rng"])
        _set_rng_state(sampler.rng, ck["sampler_rng"], ckpt_path)
        _set_rng_state(genotypes, ck["genotype_rng"], ckpt_path)
        log(f"resumed from {ckpt_path} at step {step}")
    elif ckpt_path.exists():
        raise StylenasError(f"{ckpt_path} exists: pass --resume to continue it or pick --out")
    else:
        init = cfg.init or resolve_arch_and_weights("photonet", None)[1]
        supernet.net.load_state_dict(load_decoder_state(init, PHOTONET))
        log(f"supernet initialised from {init}")

    def rng_states() -> tuple:
        return torch.get_rng_state(), _rng_state(sampler.rng), _rng_state(genotypes)

    def save(at: tuple[int, tuple]) -> None:
        done, (torch_rng, sampler_rng, genotype_rng) = at
        payload = {
            "genotype": str(PHOTONET),
            "state_dict": supernet.photonet_state(),
            "optimizer": opt.state_dict(),
            "config": asdict(cfg),
            "step": done,
            "history": history,
            "rng": torch_rng,
            "sampler_rng": sampler_rng,
            "genotype_rng": genotype_rng,
        }
        atomic_write(ckpt_path, lambda tmp: torch.save(payload, tmp))

    # (completed steps, the random states to draw the next step from), assigned at once so
    # a Ctrl-C anywhere saves a consistent pair (mid-step: the start of the unfinished step)
    at = (step, rng_states())
    t0 = time.perf_counter()
    supernet.train()
    try:
        while at[0] < cfg.steps:
            step = at[0]
            lr = cfg.lr * lr_factor(step, cfg)  # reads steps, warmup and min_lr_ratio only
            for group in opt.param_groups:
                group["lr"] = lr
            nets = sandwich(genotypes, cfg.k)
            img = sampler.batch(cfg.batch).to(device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            losses, parts = [], {"pixel": 0.0, "perceptual": 0.0}
            with torch.no_grad(), autocast(device, cfg.precision):
                feats = encoder(img)
            for g in nets:  # one backward per sub-network: one graph alive at a time
                with autocast(device, cfg.precision):
                    loss, p = reconstruction_loss(
                        supernet(feats, g), img, encoder, feats, cfg.pixel_weight, cfg.levels
                    )
                (loss / len(nets)).backward()
                losses.append(loss.item())
                parts = {k: v + p[k] / len(nets) for k, v in parts.items()}
            if cfg.clip_grad:
                torch.nn.utils.clip_grad_norm_(supernet.parameters(), cfg.clip_grad)
            opt.step()
            at = (step + 1, rng_states())
            info = {"step": step + 1, "loss": sum(losses) / len(losses), **parts, "lr": lr}
            info["losses"] = losses
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                entry = {k: v for k, v in info.items() if k != "losses"}
                history.append(entry | {"elapsed": time.perf_counter() - t0})
                largest, smallest = losses[:2]
                log(
                    f"step {step + 1}: loss {info['loss']:.4f} (largest {largest:.4f}, "
                    f"smallest {smallest:.4f})"
                )
            if on_step:
                on_step(step + 1, info)
            if (step + 1) % cfg.checkpoint_every == 0:
                save(at)
    except KeyboardInterrupt:
        save(at)
        log(f"interrupted: checkpoint saved at step {at[0]} to {ckpt_path}")
        raise
    save(at)
    supernet.eval()
    return ckpt_path


def export_supernet(checkpoint: str | Path, dest: str | Path) -> Path:
    """The supernet of a :func:`train_supernet` checkpoint as an fp16 weights file
    ``{"genotype": photonet, "state_dict": ...}``: a valid photonet weights file too."""
    read_supernet_checkpoint(checkpoint)
    return export_weights(checkpoint, dest, half=True)

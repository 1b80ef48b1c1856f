"""Decoder built from a :class:`~stylenas_cli.genotype.Genotype` (SPEC §3).

The architecture is data: :func:`stage_specs` lists the four skip-fed stages, and
:class:`Decoder` turns a genotype into the convs it switches on. Convs the genotype turns off
are absent (no parameters, no FLOPs).

Transfer points are named after the feature they act on: the encoder levels
(``relu5_1`` ... ``relu1_1``: WCT on the bottleneck or on a skip, before decoding) and the
decoder stages (``d1`` ... ``d5``: WCT on the running feature at the start of the stage).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .banded import banded_conv, worth_banding
from .encoder import CHANNELS
from .genotype import BIT_NAMES, Genotype

Transfer = Callable[[str, torch.Tensor], torch.Tensor]

# (transfer bit, encoder level) for the WCTs applied to encoder features.
ENCODER_POINTS: tuple[tuple[str, str], ...] = (
    ("d0_transfer", "relu5_1"),
    ("s1_transfer", "relu4_1"),
    ("s2_transfer", "relu3_1"),
    ("s3_transfer", "relu2_1"),
    ("s4_transfer", "relu1_1"),
)
BFA_SKIPS: tuple[tuple[str, str, int], ...] = (
    ("bfa_s1", "relu4_1", 2),
    ("bfa_s2", "relu3_1", 4),
    ("bfa_s3", "relu2_1", 8),
    ("bfa_s4", "relu1_1", 16),
)


@dataclass(frozen=True)
class StageSpec:
    """A decoder stage fed by one skip. ``long`` stages (d2, d3) have the extra conv and the
    3×3-or-1×1 reduction; the fuse conv of short stages (d4, d5) does the reduction itself."""

    name: str
    skip: str
    out: int
    long: bool
    up_to: str | None  # encoder level whose size the stage upsamples to


def stage_specs() -> tuple[StageSpec, ...]:
    return (
        StageSpec("d2", "relu4_1", 256, True, "relu3_1"),
        StageSpec("d3", "relu3_1", 128, True, "relu2_1"),
        StageSpec("d4", "relu2_1", 64, False, "relu1_1"),
        StageSpec("d5", "relu1_1", 3, False, None),
    )


def point_channels(point: str) -> int:
    """Channels of the feature a transfer point acts on: an encoder level's, or the running
    feature at the start of decoder stage ``d1`` ... ``d5``."""
    if point in CHANNELS:
        return CHANNELS[point]
    running = {"d1": 512, "d2": 512} | {f"d{k + 3}": s.out for k, s in enumerate(stage_specs()[:3])}
    if point not in running:
        raise ValueError(f"unknown transfer point {point!r}")
    return running[point]


class ConvBlock(nn.Sequential):
    """Reflection-padded conv, ReLU unless it is the output conv."""

    def __init__(self, cin: int, cout: int, k: int = 3, relu: bool = True) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, padding=k // 2, padding_mode="reflect")]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if worth_banding(x):  # large inference: no padded copy, no second full-size tensor
            conv = self[0]
            return banded_conv([(x, conv.weight)], conv.bias, conv.padding[0], len(self) > 1)
        return super().forward(x)


def conv_concat(block: ConvBlock, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """``block(torch.cat([x, skip], 1))`` without the concatenated copy: the conv is split
    along its input channels into two convs whose outputs add up to the same result."""
    conv = block[0]
    c, p = x.shape[1], conv.padding[0]
    if worth_banding(x):
        parts = [(x, conv.weight[:, :c]), (skip, conv.weight[:, c:])]
        return banded_conv(parts, conv.bias, p, len(block) > 1)

    def padded(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (p, p, p, p), mode="reflect") if p else t

    out = F.conv2d(padded(x), conv.weight[:, :c], conv.bias)
    out += F.conv2d(padded(skip), conv.weight[:, c:])
    return torch.relu_(out) if len(block) > 1 else out


def instance_norm_(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``F.instance_norm(x)`` (no affine) computed in place on ``x (B, C, H, W)``."""
    var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, correction=0)
    return x.sub_(mean.to(x.dtype)).div_(var.add_(eps).sqrt_().to(x.dtype))


def _upsample(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    # Nearest ×2, but to the skip's exact size so odd input sizes round-trip.
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


class Decoder(nn.Module):
    """Decoder for one genotype: ``feats -> (B, 3, H, W)``."""

    def __init__(self, genotype: Genotype) -> None:
        super().__init__()
        g = self.genotype = genotype
        bfa_in = CHANNELS["relu5_1"] + sum(CHANNELS[lv] for bit, lv, _ in BFA_SKIPS if g.on(bit))
        self.bfa = nn.Conv2d(bfa_in, 512, 1)  # always present, no ReLU (as the reference)
        self.convs = nn.ModuleDict()
        if g.d1_conv_pre:
            self.convs["d1_pre"] = ConvBlock(512, 512)
        if g.d1_conv_post:
            self.convs["d1_post"] = ConvBlock(512, 512)
        for s in stage_specs():
            ch = CHANNELS[s.skip]
            fuse_in = 2 * ch if g.on(f"{s.name}_concat") else ch
            last = s.up_to is None
            self.convs[f"{s.name}_fuse"] = ConvBlock(
                fuse_in, ch if s.long else s.out, relu=not last
            )
            if s.long:
                if g.on(f"{s.name}_extra"):
                    self.convs[f"{s.name}_extra"] = ConvBlock(ch, ch)
                k = 3 if g.on(f"{s.name}_conv3x3") else 1
                self.convs[f"{s.name}_reduce"] = ConvBlock(ch, s.out, k)
            if not last and g.on(f"{s.name}_conv_post"):
                self.convs[f"{s.name}_post"] = ConvBlock(s.out, s.out)

    @property
    def transfer_points(self) -> list[str]:
        """Names of the WCT points this genotype switches on, in the order they run."""
        g = self.genotype
        points = [level for bit, level in ENCODER_POINTS if g.on(bit)]
        return points + [f"d{k}" for k in range(1, 6) if g.on(f"d{k}_transfer")]

    @property
    def normalised_skips(self) -> frozenset[str]:
        """Encoder levels the decoder uses only instance-normalised: pooled into the
        bottleneck (``bfa_*``) and fused, if at all, with the ``*_in`` bit on. Only their
        channels' patterns reach the decoder, each brought to unit variance."""
        g = self.genotype
        pooled = {lv for bit, lv, _ in BFA_SKIPS if g.on(bit)}
        fused = {s.skip: g.on(f"{s.name}_in") for s in stage_specs() if g.on(f"{s.name}_concat")}
        used = pooled | set(fused)
        return frozenset(lv for lv in used if fused.get(lv, True))

    def _maybe(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return self.convs[name](x) if name in self.convs else x

    def forward(
        self,
        feats: dict[str, torch.Tensor],
        transfer: Transfer | None = None,
        consume: bool = False,
    ) -> torch.Tensor:
        """``feats``: encoder features by level (relu1_1 ``(B, 64, H, W)`` ... relu5_1
        ``(B, 512, H/16, W/16)``); ``transfer(point, x)`` is applied at every transfer point
        the genotype switches on (``None``: plain reconstruction). Returns ``(B, 3, H, W)``.

        ``consume``: empty ``feats`` as the features are used and normalise skips in place,
        so each one is freed as soon as the decoder is done with it (inference at large
        sizes: nothing else may hold the features); else ``feats`` is kept intact."""
        g = self.genotype
        points = self.transfer_points if transfer is not None else []
        if not consume:
            feats = dict(feats)
        for level in (p for p in points if p in feats):  # encoder points, bottleneck first
            feats[level] = transfer(level, feats[level])

        # d0: bottleneck feature aggregation
        x = feats.pop("relu5_1")  # (B, 512, H/16, W/16)
        pooled = [
            F.max_pool2d(F.instance_norm(feats[lv]), k)[..., : x.shape[-2], : x.shape[-1]]
            for bit, lv, k in BFA_SKIPS
            if g.on(bit)
        ]
        x = self.bfa(torch.cat([x, *pooled], 1))

        # d1: 1/16 -> 1/8
        if "d1" in points:
            x = transfer("d1", x)
        x = self._maybe("d1_pre", x)
        x = _upsample(x, feats["relu4_1"])
        x = self._maybe("d1_post", x)

        # d2 ... d5: fuse a skip, (extra conv, reduction), upsample, (post conv)
        for s in stage_specs():
            if s.name in points:
                x = transfer(s.name, x)
            skip = feats.pop(s.skip)
            fuse = self.convs[f"{s.name}_fuse"]
            if g.on(f"{s.name}_concat"):
                if g.on(f"{s.name}_in"):
                    skip = instance_norm_(skip) if consume else F.instance_norm(skip)
                x = conv_concat(fuse, x, skip)
            else:
                x = fuse(x)
            del skip  # the last reference to a consumed feature
            if s.long:
                x = self._maybe(f"{s.name}_extra", x)
                x = self.convs[f"{s.name}_reduce"](x)
            if s.up_to is not None:
                x = _upsample(x, feats[s.up_to])
                x = self._maybe(f"{s.name}_post", x)
        return x


def canonical(genotype: Genotype) -> Genotype:
    """``genotype`` with the bits off that cannot change its decoder's output: a stage's
    instance normalisation without its skip concatenation, and the WCT of a skip that is
    neither concatenated nor pooled into the bottleneck. Equal outputs, one name."""
    bits = list(genotype.bits)
    read = {lv for bit, lv, _ in BFA_SKIPS if genotype.on(bit)}
    for s in stage_specs():
        if genotype.on(f"{s.name}_concat"):
            read.add(s.skip)
        else:
            bits[BIT_NAMES.index(f"{s.name}_in")] = "0"
    for bit, level in ENCODER_POINTS:
        if level != "relu5_1" and level not in read:
            bits[BIT_NAMES.index(bit)] = "0"
    return Genotype("".join(bits))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv_flops(decoder: Decoder, height: int = 512, width: int = 512) -> int:
    """:func:`decoder_flops` from the convolutions' shapes alone, no forward pass (a cost cap
    asks it of thousands of genotypes): ``2·C_out·C_in·k²`` per output pixel of each conv,
    at the size of the level it runs at, as torch's flop counter counts them."""
    levels = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    area = {lv: (height >> k) * (width >> k) for k, lv in enumerate(levels)}
    at = {"bfa": "relu5_1", "d1_pre": "relu5_1", "d1_post": "relu4_1"}
    for s in stage_specs():
        at |= {f"{s.name}_{part}": s.skip for part in ("fuse", "extra", "reduce")}
        if s.up_to is not None:
            at[f"{s.name}_post"] = s.up_to
    convs = [("bfa", decoder.bfa)] + [(name, block[0]) for name, block in decoder.convs.items()]
    return sum(2 * conv.weight[0].numel() * conv.out_channels * area[at[n]] for n, conv in convs)


def decoder_flops(decoder: Decoder, height: int = 512, width: int = 512) -> int:
    """FLOPs of one decoder forward (no transfers) at ``height × width``."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(decoder.parameters()).device
    feats = {
        lv: torch.zeros(1, CHANNELS[lv], height >> k, width >> k, device=device)
        for k, lv in enumerate(("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"))
    }
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        decoder(feats)
    return int(counter.get_total_flops())

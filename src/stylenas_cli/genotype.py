"""The 32-bit decoder search space of StyleNAS / PhotoNAS (SPEC §3) and named genotypes."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import StylenasError

# One name per bit, left to right. Bit 8 is unused and always 0.
BIT_NAMES: tuple[str, ...] = (
    # d0, bottleneck at 1/16: WCT on relu5_1, then BFA from each skip
    "d0_transfer", "bfa_s1", "bfa_s2", "bfa_s3", "bfa_s4",
    # d1, 1/16 -> 1/8
    "d1_transfer", "d1_conv_pre", "d1_conv_post",
    "unused",
    # d2, 1/8 -> 1/4 with s1 = relu4_1
    "d2_transfer", "d2_in", "d2_concat", "d2_extra", "d2_conv3x3", "d2_conv_post", "s1_transfer",
    # d3, 1/4 -> 1/2 with s2 = relu3_1
    "d3_transfer", "d3_in", "d3_concat", "d3_extra", "d3_conv3x3", "d3_conv_post", "s2_transfer",
    # d4, 1/2 -> 1 with s3 = relu2_1
    "d4_transfer", "d4_in", "d4_concat", "d4_conv_post", "s3_transfer",
    # d5, full resolution with s4 = relu1_1
    "d5_transfer", "d5_in", "d5_concat", "s4_transfer",
)  # fmt: skip
N_BITS = len(BIT_NAMES)
# WCT points: they add transforms, not weights (decoders are trained without them).
TRANSFER_BITS: tuple[int, ...] = tuple(
    i for i, n in enumerate(BIT_NAMES) if n.endswith("_transfer")
)
UNUSED_BIT = BIT_NAMES.index("unused")
SEARCHABLE_BITS: tuple[int, ...] = tuple(i for i in range(N_BITS) if i != UNUSED_BIT)
assert N_BITS == 32


@dataclass(frozen=True, order=True)
class Genotype:
    """An immutable, hashable 32-bit decoder architecture; prints as its bit string."""

    bits: str

    def __post_init__(self) -> None:
        if len(self.bits) != N_BITS or set(self.bits) - {"0", "1"}:
            raise ValueError(
                f"a genotype is a string of {N_BITS} '0'/'1' characters, got {self.bits!r}"
            )
        if self.bits[UNUSED_BIT] != "0":
            raise ValueError(f"bit {UNUSED_BIT} of a genotype is unused and must be 0")

    @classmethod
    def from_string(cls, text: str) -> Genotype:
        return cls(text.strip())

    def __str__(self) -> str:
        return self.bits

    def __getattr__(self, name: str) -> bool:
        # Bit access by name: g.d5_concat, g.bfa_s1, ...
        if name in BIT_NAMES:
            return self.bits[BIT_NAMES.index(name)] == "1"
        raise AttributeError(name)

    def on(self, name: str) -> bool:
        return getattr(self, name)

    def flip(self, index: int) -> Genotype:
        if index not in SEARCHABLE_BITS:
            raise ValueError(f"bit {index} cannot be flipped")
        bit = "1" if self.bits[index] == "0" else "0"
        return Genotype(self.bits[:index] + bit + self.bits[index + 1 :])

    @property
    def n_on(self) -> int:
        return self.bits.count("1")

    def shares_weights_with(self, other: Genotype) -> bool:
        """True when the two differ at most in transfer points: one decoder's weights serve
        both (e.g. ``photonas`` with one more WCT runs on the shipped photonas weights)."""
        return all(
            a == b for i, (a, b) in enumerate(zip(self.bits, other.bits)) if i not in TRANSFER_BITS
        )

    def without_transfers(self) -> Genotype:
        """This genotype with every transfer bit off: the decoder it trains (training runs
        no WCT), which every genotype that :meth:`shares_weights_with` it trains alike."""
        return Genotype("".join("0" if i in TRANSFER_BITS else b for i, b in enumerate(self.bits)))

    def is_subnet_of(self, other: Genotype) -> bool:
        """True when every bit on here is also on in ``other``."""
        return all(o == "1" for s, o in zip(self.bits, other.bits) if s == "1")


NAMED: dict[str, Genotype] = {
    # The searched network of the AAAI paper.
    "photonas": Genotype("01010000000100000000000000001111"),
    # The dense teacher: every used bit on.
    "photonet": Genotype("11111111011111111111111111111111"),
    # Plain single-level WCT auto-encoder: transfer at relu5_1 only, no skips.
    "wct5": Genotype("10000110000011100001110000100000"),
}


def resolve(arch: str | Genotype) -> Genotype:
    """A registered name or a 32-bit string -> :class:`Genotype`."""
    if isinstance(arch, Genotype):
        return arch
    if arch in NAMED:
        return NAMED[arch]
    try:
        return Genotype.from_string(arch)
    except ValueError as err:
        text = arch.strip()
        if text and set(text) <= {"0", "1"}:  # meant as a bit string: say what is wrong
            if len(text) != N_BITS:
                raise StylenasError(
                    f"genotype {text!r} has {len(text)} bits; it needs exactly {N_BITS}"
                ) from None
            raise StylenasError(f"genotype {text!r}: {err}") from None
        names = ", ".join(sorted(NAMED))
        raise StylenasError(
            f"unknown architecture {arch!r}: use one of {names} or a 32-bit string of 0/1"
        ) from None

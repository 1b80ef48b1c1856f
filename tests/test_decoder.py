import random

import pytest
import torch

from stylenas_cli.decoder import Decoder, count_parameters, decoder_flops
from stylenas_cli.encoder import CHANNELS, LEVELS
from stylenas_cli.genotype import NAMED
from stylenas_cli.nas.evolution import random_genotype

GENOTYPES = list(NAMED.values()) + [random_genotype(random.Random(s)) for s in range(3)]


def _feats(b: int, h: int, w: int) -> dict[str, torch.Tensor]:
    # Encoder-shaped random features: relu1_1 at full size, each level half the last (floor).
    out = {}
    for level in LEVELS:
        out[level] = torch.rand(b, CHANNELS[level], h, w)
        h, w = h // 2, w // 2
    return out


@pytest.mark.parametrize("genotype", GENOTYPES, ids=str)
def test_output_shape_equals_input_for_odd_sizes(genotype):
    dec = Decoder(genotype)
    out = dec(_feats(1, 67, 95))
    assert out.shape == (1, 3, 67, 95)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("genotype", GENOTYPES, ids=str)
def test_every_parameter_gets_a_gradient(genotype):
    torch.manual_seed(0)
    dec = Decoder(genotype)
    dec(_feats(2, 48, 64)).square().mean().backward()
    missing = [n for n, p in dec.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert missing == []


def test_transfer_hook_runs_at_the_genotype_points_in_order():
    seen = []
    dec = Decoder(NAMED["photonet"])
    dec(_feats(1, 32, 32), transfer=lambda p, x: seen.append(p) or x)
    assert seen == dec.transfer_points
    assert seen == ["relu5_1", "relu4_1", "relu3_1", "relu2_1", "relu1_1"] + [
        f"d{k}" for k in range(1, 6)
    ]
    assert Decoder(NAMED["photonas"]).transfer_points == ["relu1_1", "d5"]


@pytest.mark.parametrize("name", ["photonas", "photonet"])
def test_normalised_skips_are_those_whose_channel_scales_the_decoder_ignores(name):
    torch.manual_seed(0)
    dec = Decoder(NAMED[name])
    feats = _feats(1, 32, 32)
    plain = dec(feats)
    g = torch.Generator().manual_seed(1)
    for level in ("relu1_1", "relu2_1", "relu3_1", "relu4_1"):
        x = feats[level]
        # How far another feature moves the output, and how far the same feature with each
        # channel rescaled does (random weights: the deep levels move it little either way).
        noise = torch.rand(x.shape, generator=g)
        moved = (dec({**feats, level: noise}) - plain).abs().max()
        scale = 0.5 + 3 * torch.rand(1, x.shape[1], 1, 1, generator=g)
        rescaled = (dec({**feats, level: x * scale}) - plain).abs().max()
        ignored = moved > 0 and rescaled < 0.05 * moved
        assert ignored == (level in dec.normalised_skips), level
    expected = {"photonas": {"relu1_1", "relu2_1"}, "photonet": {"relu1_1", "relu2_1",
                "relu3_1", "relu4_1"}}[name]  # fmt: skip
    assert dec.normalised_skips == expected


def test_transfer_changes_the_output():
    torch.manual_seed(0)
    dec = Decoder(NAMED["photonas"])
    feats = _feats(1, 32, 32)
    plain = dec(feats)
    shifted = dec(feats, transfer=lambda p, x: x + 1.0)
    assert not torch.allclose(plain, shifted)


def test_turned_off_convs_are_absent():
    nas, net = Decoder(NAMED["photonas"]), Decoder(NAMED["photonet"])
    assert "d1_pre" not in nas.convs and "d1_pre" in net.convs
    assert count_parameters(nas) < count_parameters(net)
    assert 0 < decoder_flops(nas, 128, 128) < decoder_flops(net, 128, 128)
    # FLOPs scale with the pixel count.
    ratio = decoder_flops(nas, 256, 256) / decoder_flops(nas, 128, 128)
    assert 3.9 < ratio < 4.1


def test_canonical_turns_off_only_bits_that_cannot_change_the_output():
    from stylenas_cli.decoder import canonical
    from stylenas_cli.genotype import BIT_NAMES

    def shift(point: str, x: torch.Tensor) -> torch.Tensor:  # a stand-in WCT: new patterns
        return x.roll(1 + len(point), dims=1) * 1.5

    rng = random.Random(4)
    dropped = set()
    feats = _feats(1, 32, 32)
    for _ in range(40):
        g = random_genotype(rng)
        c = canonical(g)
        assert canonical(c) == c and c.is_subnet_of(g)
        torch.manual_seed(0)
        a = Decoder(g).eval()
        b = Decoder(c).eval()
        b.load_state_dict(a.state_dict())  # the bits dropped own no weights
        with torch.no_grad():
            assert torch.equal(a(feats, shift), b(feats, shift))
        dropped |= {BIT_NAMES[i] for i in range(len(g.bits)) if g.bits[i] != c.bits[i]}
        # every bit it keeps can matter: switching one kept IN or skip WCT off changes it
        for i in (i for i, bit in enumerate(c.bits) if bit == "1"):
            name = BIT_NAMES[i]
            if name.endswith("_in") or (name[0] == "s" and name.endswith("_transfer")):
                d = Decoder(c.flip(i)).eval()
                d.load_state_dict(a.state_dict())
                with torch.no_grad():
                    assert not torch.equal(d(feats, shift), b(feats, shift)), name
    assert dropped <= {n for n in BIT_NAMES if n.endswith("_in") or n[0] == "s"}
    assert {"d2_in", "s4_transfer"} <= dropped
    assert canonical(NAMED["photonas"]) == NAMED["photonas"]


def test_conv_flops_from_shapes_equal_the_counted_flops():
    from stylenas_cli.decoder import conv_flops

    rng = random.Random(9)
    for g in GENOTYPES + [random_genotype(rng) for _ in range(12)]:
        dec = Decoder(g)
        for h, w in ((64, 64), (48, 80)):
            assert conv_flops(dec, h, w) == decoder_flops(dec, h, w), (str(g), h, w)

"""The weight-sharing supernet (nas.supernet): inherited sub-networks are PhotoNet's slices,
the super-decoder runs them on shared weights, sandwich sampling, resumable fine-tuning."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import stylenas_cli.nas.supernet as supernet
from conftest import write_photo
from stylenas_cli.decoder import Decoder
from stylenas_cli.errors import StylenasError
from stylenas_cli.files import exclusive_dir
from stylenas_cli.genotype import NAMED, SEARCHABLE_BITS, Genotype
from stylenas_cli.nas.evolution import random_genotype
from stylenas_cli.nas.supernet import (
    PHOTONET,
    SMALLEST,
    SuperDecoder,
    SupernetConfig,
    SupernetError,
    decoder_for,
    export_supernet,
    inherit,
    layout,
    sandwich,
    train_supernet,
)
from stylenas_cli.weights import WeightsError, load_decoder_state, load_torch_file
from test_hardening import plant

pytestmark = pytest.mark.usefixtures("one_thread")
LEVEL_SHAPES = (
    ("relu1_1", 64),
    ("relu2_1", 128),
    ("relu3_1", 256),
    ("relu4_1", 512),
    ("relu5_1", 512),
)
GENOTYPES = {
    "photonas": NAMED["photonas"],
    "photonet": PHOTONET,
    "wct5": NAMED["wct5"],
    "smallest": SMALLEST,
    **{f"random{s}": random_genotype(random.Random(s)) for s in range(3)},
}


@pytest.fixture(scope="module")
def net() -> SuperDecoder:
    torch.manual_seed(0)
    return SuperDecoder()


def feats_of(height: int, width: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random non-negative features of a ``height × width`` image, each level halved and
    floored as VGG's 2×2 pools do."""
    gen = torch.Generator().manual_seed(seed)
    return {
        lv: torch.rand(2, c, height >> k, width >> k, generator=gen)
        for k, (lv, c) in enumerate(LEVEL_SHAPES)
    }


@pytest.mark.parametrize("name", GENOTYPES)
def test_subnetwork_equals_the_decoder_with_inherited_weights(net, name):
    g = GENOTYPES[name]
    decoder = Decoder(g)
    decoder.load_state_dict(inherit(net.photonet_state(), g))
    for size in ((48, 40), (50, 38)):  # odd sizes: upsampling to each skip's exact size
        feats = feats_of(*size)
        with torch.no_grad():
            want, got = decoder(feats), net(feats, g)
        assert got.shape == (2, 3, *size)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_an_encoder_s_features_run_the_same(net, _shared_encoder):
    image = torch.rand(1, 3, 50, 38, generator=torch.Generator().manual_seed(3))
    g = NAMED["photonas"]
    with torch.no_grad():
        feats = _shared_encoder(image)
        want = decoder_for(net.photonet_state(), g)(feats)
        torch.testing.assert_close(net(feats, g), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", GENOTYPES)
def test_inherited_state_has_exactly_the_decoder_s_keys_and_shapes(net, name):
    g = GENOTYPES[name]
    state = inherit(net.photonet_state(), g)
    own = Decoder(g).state_dict()
    assert list(state) == list(own)
    assert all(state[k].shape == v.shape for k, v in own.items())


def test_inheriting_photonet_gives_back_its_tensors(net):
    state = net.photonet_state()
    assert all(v is state[k] for k, v in inherit(state, PHOTONET).items())


def test_inherited_tensors_are_the_named_parts_of_photonet(net):
    """photonas: BFA from relu4_1 and relu2_1, concat at d2 and d5 only, 1×1 reductions;
    each checked against offsets written out by hand."""
    big = net.photonet_state()
    small = inherit(big, NAMED["photonas"])
    # PhotoNet's BFA inputs: relu5_1 0:512, relu4_1 512:1024, relu3_1 1024:1280,
    # relu2_1 1280:1408, relu1_1 1408:1472
    w = big["bfa.weight"]
    assert torch.equal(small["bfa.weight"], torch.cat([w[:, :1024], w[:, 1280:1408]], 1))
    assert torch.equal(small["convs.d2_fuse.0.weight"], big["convs.d2_fuse.0.weight"])
    assert torch.equal(small["convs.d3_fuse.0.weight"], big["convs.d3_fuse.0.weight"][:, :256])
    assert torch.equal(small["convs.d4_fuse.0.weight"], big["convs.d4_fuse.0.weight"][:, :128])
    centre = big["convs.d2_reduce.0.weight"][:, :, 1, 1]
    assert small["convs.d2_reduce.0.weight"].shape == (256, 512, 1, 1)
    assert torch.equal(small["convs.d2_reduce.0.weight"][:, :, 0, 0], centre)
    assert torch.equal(small["convs.d5_fuse.0.weight"], big["convs.d5_fuse.0.weight"])
    for key in small:
        if key.endswith("bias"):
            assert torch.equal(small[key], big[key])
    assert "convs.d1_pre.0.weight" not in small and "convs.d2_extra.0.weight" not in small


def test_transfer_bits_change_no_weight(net):
    g = NAMED["photonas"]
    no_transfer = supernet.without_transfers(g)
    assert no_transfer != g and not any(no_transfer.on(n) for n in ("d5_transfer", "s4_transfer"))
    a, b = inherit(net.photonet_state(), g), inherit(net.photonet_state(), no_transfer)
    assert all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys()


def test_a_state_that_is_not_photonet_s_is_refused(net):
    state = net.photonet_state()
    photonas = Decoder(NAMED["photonas"]).state_dict()
    short = {k: v for k, v in state.items() if k != "bfa.bias"}
    bad_shape = state | {"bfa.weight": state["bfa.weight"][:, :512]}
    for bad, words in (
        (photonas, "not a PhotoNet"),
        (short, "bfa.bias"),
        (bad_shape, "bfa.weight"),
        ([1, 2], "maps names"),
    ):
        with pytest.raises(ValueError, match=words) as err:
            inherit(bad, NAMED["photonas"])
        assert isinstance(err.value, SupernetError) and "\n" not in str(err.value)


def test_gradients_reach_only_the_slices_a_subnetwork_uses():
    torch.manual_seed(1)
    net = SuperDecoder()
    net(feats_of(32, 32), NAMED["photonas"]).square().mean().backward()
    grad = {k: p.grad for k, p in net.net.named_parameters()}
    # dropped convs: not in the graph at all
    for key in ("d1_pre", "d1_post", "d2_extra", "d2_post", "d3_extra", "d3_post", "d4_post"):
        assert grad[f"convs.{key}.0.weight"] is None and grad[f"convs.{key}.0.bias"] is None
    # a fuse conv without concat: only the running feature's input channels
    fuse = grad["convs.d3_fuse.0.weight"]
    assert fuse[:, :256].abs().sum() > 0 and not fuse[:, 256:].any()
    # fuse convs with concat: both halves
    for key, ch in (("d2_fuse", 512), ("d5_fuse", 64)):
        both = grad[f"convs.{key}.0.weight"]
        assert both[:, :ch].abs().sum() > 0 and both[:, ch:].abs().sum() > 0
    # a 1x1 reduction: only the centre tap
    reduce = grad["convs.d2_reduce.0.weight"]
    centre = torch.zeros(3, 3, dtype=torch.bool)
    centre[1, 1] = True
    assert reduce[..., centre].abs().sum() > 0 and not reduce[..., ~centre].any()
    # BFA: relu5_1, relu4_1 and relu2_1's groups; nothing for relu3_1 and relu1_1
    bfa = grad["bfa.weight"]
    for a, b in ((0, 512), (512, 1024), (1280, 1408)):
        assert bfa[:, a:b].abs().sum() > 0
    assert not bfa[:, 1024:1280].any() and not bfa[:, 1408:].any()


def test_decoder_for_is_a_standalone_decoder(net):
    state = net.photonet_state()
    before = state["bfa.weight"].clone()
    decoder = decoder_for(state, NAMED["wct5"])
    assert isinstance(decoder, Decoder) and not decoder.training
    assert decoder.genotype == NAMED["wct5"]
    with torch.no_grad():
        for p in decoder.parameters():
            p.zero_()
    assert torch.equal(state["bfa.weight"], before)  # no memory shared with the supernet


def _n_params(g: Genotype) -> int:
    return sum(math.prod(shape) for shape in layout(g).values())


def test_sandwich_holds_the_largest_the_smallest_and_k_random():
    nets = sandwich(random.Random(0), 3)
    assert len(nets) == 5 and nets[0] == PHOTONET and nets[1] == SMALLEST
    for g in nets[2:]:
        assert g.is_subnet_of(PHOTONET)
        assert not any(g.bits[i] == "1" for i in supernet.TRANSFER_BITS)
    assert sandwich(random.Random(0), 3) == nets
    assert sandwich(random.Random(1), 3)[2:] != nets[2:]
    assert sandwich(random.Random(0), 0) == [PHOTONET, SMALLEST]
    # the smallest: no single bit turned on makes a decoder with fewer parameters
    assert all(_n_params(SMALLEST.flip(i)) >= _n_params(SMALLEST) for i in SEARCHABLE_BITS)
    assert all(_n_params(SMALLEST) < _n_params(g) <= _n_params(PHOTONET) for g in nets[2:])


# --- training -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("photos")
    for i, source in enumerate(("astronaut", "coffee", "astronaut")):
        write_photo(d / f"{i}.png", size=(64, 48 + 4 * i), source=source)
    return d


@pytest.fixture(scope="module")
def photonet_file(tmp_path_factory) -> Path:
    torch.manual_seed(2)
    path = tmp_path_factory.mktemp("init") / "photonet.pt"
    torch.save({"genotype": str(PHOTONET), "state_dict": Decoder(PHOTONET).state_dict()}, path)
    return path


@pytest.fixture
def cfg(photos, photonet_file, tmp_path, monkeypatch, _shared_encoder):
    monkeypatch.setattr(supernet, "VGGEncoder", lambda: _shared_encoder)

    def make(out: str, **kw) -> SupernetConfig:
        base = dict(
            data=str(photos),
            out=str(tmp_path / out),
            steps=4,
            batch=2,
            size=32,
            k=1,
            levels=("relu1_1",),
            init=str(photonet_file),
            checkpoint_every=100,
            device="cpu",
            precision="fp32",
            lr=1e-3,
        )
        return SupernetConfig(**(base | kw))

    return make


def _losses() -> tuple[list, Callable[[int, dict], None]]:
    seen: list[list[float]] = []
    return seen, lambda step, info: seen.append(info["losses"])


def test_training_resumes_bit_for_bit(cfg, photonet_file):
    straight, record = _losses()
    ckpt = train_supernet(cfg("a"), on_step=record, log=lambda m: None)
    assert len(straight) == 4 and all(len(step) == 3 for step in straight)
    assert all(math.isfinite(x) for step in straight for x in step)
    final = load_torch_file(ckpt)
    assert final["step"] == 4
    init = torch.load(photonet_file, weights_only=True)["state_dict"]
    assert not torch.equal(final["state_dict"]["bfa.weight"], init["bfa.weight"])

    def stop_at_2(step, info):
        resumed.append(info["losses"])
        if step == 2:
            raise KeyboardInterrupt

    resumed: list = []
    with pytest.raises(KeyboardInterrupt):
        train_supernet(cfg("b"), on_step=stop_at_2, log=lambda m: None)
    assert load_torch_file(Path(cfg("b").out) / "last.pt")["step"] == 2
    with pytest.raises(StylenasError, match="--resume"):
        train_supernet(cfg("b"), log=lambda m: None)
    with exclusive_dir(cfg("b").out):  # a second process on the same folder is refused
        with pytest.raises(StylenasError, match="in use by another stylenas supernet training"):
            train_supernet(cfg("b"), resume=True, log=lambda m: None)
    logs: list[str] = []
    again, record = _losses()
    train_supernet(cfg("b"), resume=True, on_step=record, log=logs.append)
    assert any("resumed" in m and "step 2" in m for m in logs)
    assert resumed + again == straight
    other = load_torch_file(Path(cfg("b").out) / "last.pt")
    assert other["step"] == 4
    assert all(torch.equal(v, other["state_dict"][k]) for k, v in final["state_dict"].items())

    dest = export_supernet(ckpt, Path(cfg("a").out) / "supernet.pt")
    saved = torch.load(dest, weights_only=True)
    assert saved["genotype"] == str(PHOTONET)
    assert all(v.dtype == torch.float16 for v in saved["state_dict"].values())
    state = load_decoder_state(dest, PHOTONET)
    assert decoder_for(state, NAMED["photonas"]).genotype == NAMED["photonas"]


def test_a_code_running_or_foreign_checkpoint_is_refused(cfg, tmp_path):
    marker = tmp_path / "ran"
    evil = plant(Path(cfg("evil").out) / "last.pt", marker, step=1)
    with pytest.raises(WeightsError, match="refused"):
        train_supernet(cfg("evil"), resume=True, log=lambda m: None)
    with pytest.raises(WeightsError, match="refused"):
        export_supernet(evil, tmp_path / "out.pt")
    assert not marker.exists()
    # a plain `stylenas train` checkpoint of photonet has no sampler states to resume from
    plain = Path(cfg("plain").out) / "last.pt"
    plain.parent.mkdir(parents=True)
    fields = dict(
        genotype=str(PHOTONET),
        state_dict=Decoder(PHOTONET).state_dict(),
        optimizer={},
        config={},
        step=1,
        history=[],
        rng=torch.get_rng_state(),
    )
    torch.save(fields, plain)
    with pytest.raises(SupernetError, match="not a supernet checkpoint"):
        train_supernet(cfg("plain"), resume=True, log=lambda m: None)


def test_config_is_checked():
    with pytest.raises(ValueError, match="k must be >= 0"):
        SupernetConfig("photos", k=-1)
    with pytest.raises(ValueError, match="lr"):
        SupernetConfig("photos", lr=math.nan)
    assert SupernetConfig("photos", steps=50).warmup == 5

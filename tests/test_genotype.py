import random

import pytest

from stylenas_cli.genotype import (
    BIT_NAMES,
    NAMED,
    SEARCHABLE_BITS,
    UNUSED_BIT,
    Genotype,
    resolve,
)
from stylenas_cli.nas.evolution import random_genotype


def test_named_genotypes_match_the_spec():
    assert str(NAMED["photonas"]) == "01010000000100000000000000001111"
    assert str(NAMED["photonet"]) == "11111111011111111111111111111111"
    nas = NAMED["photonas"]
    assert nas.bfa_s1 and nas.bfa_s3 and not nas.bfa_s2 and not nas.bfa_s4
    assert nas.d2_concat and nas.d5_transfer and nas.d5_in and nas.d5_concat and nas.s4_transfer
    assert nas.is_subnet_of(NAMED["photonet"])
    assert not NAMED["photonet"].is_subnet_of(nas)


def test_string_round_trip_and_hash():
    g = random_genotype(random.Random(1))
    assert Genotype.from_string(str(g)) == g
    assert len({g, Genotype(str(g))}) == 1
    assert g.n_on == str(g).count("1")


@pytest.mark.parametrize("bad", ["", "0101", "2" * 32, "1" * 32, "0" * 33])
def test_invalid_strings_raise(bad):
    with pytest.raises(ValueError):
        Genotype(bad)


def test_flip_changes_exactly_one_bit_and_never_the_unused_one():
    g = NAMED["photonas"]
    for i in SEARCHABLE_BITS:
        child = g.flip(i)
        assert sum(a != b for a, b in zip(str(g), str(child))) == 1
    with pytest.raises(ValueError):
        g.flip(UNUSED_BIT)
    for seed in range(20):
        assert str(random_genotype(random.Random(seed)))[UNUSED_BIT] == "0"


def test_resolve_names_strings_and_errors():
    assert resolve("photonet") is NAMED["photonet"]
    assert resolve(str(NAMED["photonas"])) == NAMED["photonas"]
    with pytest.raises(ValueError, match="photonas"):
        resolve("photonaz")


def test_bit_names_are_unique_and_attribute_access_fails_on_typos():
    assert len(set(BIT_NAMES)) == 32
    with pytest.raises(AttributeError):
        NAMED["photonas"].d9_concat  # noqa: B018


def test_without_transfers_is_the_decoder_every_transfer_variant_shares():
    from stylenas_cli.genotype import BIT_NAMES, NAMED, TRANSFER_BITS

    assert {BIT_NAMES[i] for i in TRANSFER_BITS} == {
        n for n in BIT_NAMES if n.endswith("_transfer")
    }
    for g in NAMED.values():
        plain = g.without_transfers()
        assert all(plain.bits[i] == "0" for i in TRANSFER_BITS)
        assert plain.shares_weights_with(g) and plain.without_transfers() == plain
        assert plain.n_on == g.n_on - sum(g.bits[i] == "1" for i in TRANSFER_BITS)

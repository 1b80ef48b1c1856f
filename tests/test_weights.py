"""Decoder weights (stylenas_cli.weights): registry, sha256 checks, genotype resolution."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from stylenas_cli import weights
from stylenas_cli.decoder import Decoder
from stylenas_cli.genotype import NAMED
from stylenas_cli.weights import (
    Weights,
    WeightsError,
    load_decoder_state,
    resolve_arch_and_weights,
    verified_path,
)

PHOTONAS = NAMED["photonas"]


@pytest.fixture
def weights_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "shipped"
    folder.mkdir()
    monkeypatch.setenv("STYLENAS_WEIGHTS_DIR", str(folder))
    return folder


def _stub(path: Path, genotype=PHOTONAS, state_dict=None) -> Path:
    torch.save({"genotype": str(genotype), "state_dict": state_dict or {}}, path)
    return path


# --- reading files -------------------------------------------------------------------------


def test_load_decoder_state_float32_matching_decoder(weights_file):
    state = load_decoder_state(weights_file, PHOTONAS)
    assert set(state) == set(Decoder(PHOTONAS).state_dict())
    assert all(v.dtype == torch.float32 for v in state.values())
    raw = torch.load(weights_file, weights_only=True)["state_dict"]
    for k, v in state.items():
        assert torch.equal(v, raw[k].float())
    Decoder(PHOTONAS).load_state_dict(state)  # strict: every key and shape fits


def test_missing_file_names_it(tmp_path):
    missing = tmp_path / "nothere.pt"
    with pytest.raises(WeightsError, match="nothere.pt"):
        resolve_arch_and_weights(None, missing)
    with pytest.raises(WeightsError, match="nothere.pt"):
        load_decoder_state(missing, PHOTONAS)


def test_corrupt_file(tmp_path):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(os.urandom(4096))
    with pytest.raises(WeightsError, match="corrupt.pt.*not a readable weights file"):
        load_decoder_state(bad, PHOTONAS)
    with pytest.raises(WeightsError, match="corrupt.pt"):
        resolve_arch_and_weights(None, bad)


def test_truncated_file(tmp_path, weights_file):
    cut = tmp_path / "cut.pt"
    data = weights_file.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="cut.pt"):
        load_decoder_state(cut, PHOTONAS)


def test_file_without_state_dict(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"genotype": str(PHOTONAS)}, path)
    with pytest.raises(WeightsError, match="not a stylenas weights file"):
        load_decoder_state(path, PHOTONAS)
    torch.save([1, 2, 3], path)
    with pytest.raises(WeightsError, match="not a stylenas weights file"):
        load_decoder_state(path, PHOTONAS)


class _RunsCode:
    """Unpickling this calls ``os.mkdir(marker)``: a weights file must never run code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_weights_file_cannot_run_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"genotype": str(PHOTONAS), "state_dict": {}, "x": _RunsCode(marker)}, path)
    with pytest.raises(WeightsError, match="evil.pt"):
        load_decoder_state(path, PHOTONAS)
    assert not marker.exists()


def test_genotype_mismatch(weights_file):
    photonet = NAMED["photonet"]
    with pytest.raises(WeightsError) as info:
        load_decoder_state(weights_file, photonet)
    assert str(PHOTONAS) in str(info.value) and str(photonet) in str(info.value)


# --- sha256 registry -----------------------------------------------------------------------


def test_sha256_of(tmp_path):
    path = tmp_path / "blob"
    data = os.urandom(3 << 19)  # several read chunks
    path.write_bytes(data)
    assert weights.sha256_of(path) == hashlib.sha256(data).hexdigest()


def test_verified_path_sha_mismatch(weights_dir):
    (weights_dir / "w.pt").write_bytes(b"some weights")
    entry = Weights("test", PHOTONAS, "w.pt", "0" * 64)
    assert entry.path == weights_dir / "w.pt"
    with pytest.raises(WeightsError, match=r"w\.pt is corrupt .*expected 000000000000"):
        verified_path(entry)


def test_verified_path_ok_and_missing(weights_dir):
    (weights_dir / "w.pt").write_bytes(b"some weights")
    good = Weights("test", PHOTONAS, "w.pt", hashlib.sha256(b"some weights").hexdigest())
    assert verified_path(good) == weights_dir / "w.pt"
    with pytest.raises(WeightsError, match="gone.pt are missing"):
        verified_path(Weights("test", PHOTONAS, "gone.pt", "0" * 64))


def test_registry_entries():
    assert {"photonas", "photonet"} <= set(weights.list_weights())
    for name in ("photonas", "photonet"):
        entry = weights.REGISTRY[name]
        assert entry.genotype == NAMED[name] and entry.file == f"{name}.pt"


def test_weights_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("STYLENAS_WEIGHTS_DIR", str(tmp_path))
    assert weights.weights_dir() == tmp_path
    assert weights.REGISTRY["photonas"].path == tmp_path / "photonas.pt"
    monkeypatch.delenv("STYLENAS_WEIGHTS_DIR")
    assert weights.weights_dir().name == "shipped_weights"  # inside the package


def test_shipped_weights_resolved_through_registry(weights_dir, weights_file, monkeypatch):
    shipped = weights_dir / "photonas.pt"
    shipped.write_bytes(weights_file.read_bytes())
    entry = Weights("photonas", PHOTONAS, "photonas.pt", weights.sha256_of(shipped))
    monkeypatch.setitem(weights.REGISTRY, "photonas", entry)
    assert resolve_arch_and_weights(None, None) == (PHOTONAS, shipped)
    assert resolve_arch_and_weights("photonas", None) == (PHOTONAS, shipped)
    shipped.write_bytes(b"damaged")
    with pytest.raises(WeightsError, match="corrupt"):
        resolve_arch_and_weights("photonas", None)


# --- resolving arch and weights ------------------------------------------------------------


def test_genotype_taken_from_weights_file(tmp_path):
    wct5 = NAMED["wct5"]
    path = _stub(tmp_path / "w.pt", wct5)
    assert resolve_arch_and_weights(None, path) == (wct5, path)


def test_explicit_arch_wins_over_file(tmp_path, weights_file):
    photonet = NAMED["photonet"]
    assert resolve_arch_and_weights("photonet", weights_file) == (photonet, weights_file)
    assert resolve_arch_and_weights(str(photonet), weights_file) == (photonet, weights_file)


def test_unknown_arch(weights_file):
    with pytest.raises(ValueError, match="unknown architecture 'nope'"):
        resolve_arch_and_weights("nope", weights_file)


def test_no_shipped_weights_for_genotype(weights_dir):
    unshipped = NAMED["photonas"].flip(0)
    assert all(entry.genotype != unshipped for entry in weights.REGISTRY.values())
    with pytest.raises(WeightsError, match="no shipped weights.*--weights"):
        resolve_arch_and_weights(str(unshipped), None)


def test_best_json_resolves_its_checkpoint(tmp_path):
    run = tmp_path / "search"
    run.mkdir()
    ckpt = _stub(run / "x.pt", NAMED["wct5"])
    best = run / "best.json"
    best.write_text(json.dumps({"genotype": str(PHOTONAS), "checkpoint": "x.pt"}))
    genotype, path = resolve_arch_and_weights(str(best), None)
    assert genotype == PHOTONAS  # the JSON's genotype, not the file's
    assert path == ckpt


def test_best_json_with_explicit_weights(tmp_path, weights_file):
    best = tmp_path / "best.json"
    best.write_text(json.dumps({"genotype": str(PHOTONAS), "checkpoint": "x.pt"}))
    assert resolve_arch_and_weights(str(best), weights_file) == (PHOTONAS, weights_file)


def test_best_json_missing_checkpoint(tmp_path):
    best = tmp_path / "best.json"
    best.write_text(json.dumps({"genotype": str(PHOTONAS), "checkpoint": "gone.pt"}))
    with pytest.raises(WeightsError, match="gone.pt"):
        resolve_arch_and_weights(str(best), None)


def test_best_json_without_checkpoint_uses_shipped(tmp_path, weights_dir):
    best = tmp_path / "best.json"
    best.write_text(json.dumps({"genotype": str(PHOTONAS)}))
    with pytest.raises(WeightsError, match="photonas.pt are missing"):
        resolve_arch_and_weights(str(best), None)


@pytest.mark.parametrize(
    "text", ["not json", json.dumps({"checkpoint": "x.pt"}), json.dumps({"genotype": "0101"})]
)
def test_bad_best_json(tmp_path, text):
    best = tmp_path / "best.json"
    best.write_text(text)
    with pytest.raises(WeightsError, match="best.json: not a genotype JSON"):
        resolve_arch_and_weights(str(best), None)


def test_missing_best_json(tmp_path):
    with pytest.raises(WeightsError, match="nothere.json"):
        resolve_arch_and_weights(str(tmp_path / "nothere.json"), None)


def test_register_refuses_a_name_already_taken():
    taken = weights.REGISTRY["photonas"]
    with pytest.raises(ValueError, match="already registered"):
        weights.register(weights.Weights("photonas", taken.genotype, "other.pt", "0" * 64))
    assert weights.REGISTRY["photonas"] is taken


def test_weights_serve_every_genotype_that_differs_only_in_transfer_points(weights_file):
    from stylenas_cli.genotype import BIT_NAMES, Genotype

    plain = load_decoder_state(weights_file, PHOTONAS)
    more = PHOTONAS.flip(BIT_NAMES.index("s1_transfer")).flip(BIT_NAMES.index("d0_transfer"))
    state = load_decoder_state(weights_file, more)  # photonas with two more WCTs
    assert state.keys() == plain.keys() and all(torch.equal(state[k], plain[k]) for k in state)
    assert more.shares_weights_with(PHOTONAS) and PHOTONAS.shares_weights_with(more)
    other = PHOTONAS.flip(BIT_NAMES.index("d5_in"))  # no weights of its own, another decoder
    assert not other.shares_weights_with(PHOTONAS)
    with pytest.raises(weights.WeightsError, match="differs only in transfer points"):
        load_decoder_state(weights_file, other)
    assert Genotype("0" * 32).shares_weights_with(Genotype("1" + "0" * 31))

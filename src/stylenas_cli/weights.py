"""Shipped decoder weights: a tiny registry of typed descriptors with sha256 checks.

Shipped files live in the repository's ``weights/`` folder, which the package carries as
``stylenas_cli/shipped_weights`` (a link in the repository, real files in a wheel);
``$STYLENAS_WEIGHTS_DIR`` overrides.
A weights file is a ``torch.save`` dict with ``genotype`` (32-bit string) and ``state_dict``
(fp16 or fp32); training checkpoints (``last.pt``) load the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import StylenasError
from .genotype import NAMED, Genotype, resolve

if TYPE_CHECKING:  # torch is imported where a file is read: --version stays instant
    import torch


class WeightsError(StylenasError):
    """A weights file that is missing, corrupt or for another architecture."""


@dataclass(frozen=True)
class Weights:
    """A shipped decoder checkpoint."""

    name: str
    genotype: Genotype
    file: str
    sha256: str
    # A reference point for benchmarks (e.g. the single-level WCT auto-encoder), not a
    # photorealistic decoder users should pick.
    baseline: bool = False

    @property
    def path(self) -> Path:
        return weights_dir() / self.file


REGISTRY: dict[str, Weights] = {}


def register(entry: Weights) -> Weights:
    """Add shipped weights under a new name (a name is never silently replaced)."""
    if entry.name in REGISTRY:
        raise ValueError(f"weights named {entry.name!r} are already registered")
    REGISTRY[entry.name] = entry
    return entry


register(
    Weights(
        "photonas",
        NAMED["photonas"],
        "photonas.pt",
        "b852becc65687c9d718d2844caa53d7f16b6b7fa45455fc9c5fd3b13711b4f57",
    )
)
register(
    Weights(
        "photonet",
        NAMED["photonet"],
        "photonet.pt",
        "bcdd70da28ef6e73ad3f615b8e4332fb1047ddc04f38a6853fdb33324d04c093",
    )
)
register(
    Weights(
        "wct5",
        NAMED["wct5"],
        "wct5.pt",
        "32fabf7dcd465c6f516c789fc352f261772523203becc50697683a1b160947f0",
        baseline=True,
    )
)


def weights_dir() -> Path:
    env = os.environ.get("STYLENAS_WEIGHTS_DIR")
    if env:
        return Path(env)
    return Path(__file__).parent / "shipped_weights"


def describe() -> str:
    """One line naming the shipped weights and their short sha256 (for ``--version``)."""
    return ", ".join(f"{e.name} {e.sha256[:12]}" for e in REGISTRY.values())


def list_weights() -> list[str]:
    return sorted(REGISTRY)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _genotype_from_json(path: Path) -> tuple[Genotype, Path | None]:
    """A search run's ``best.json``: {"genotype": ..., "checkpoint": ...}."""
    try:
        data = json.loads(path.read_text())
        genotype = Genotype.from_string(data["genotype"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise WeightsError(f"{path}: not a genotype JSON with a 'genotype' field ({err})") from None
    ckpt = data.get("checkpoint")
    return genotype, (path.parent / ckpt) if ckpt else None


def resolve_arch_and_weights(
    arch: str | Genotype | None, weights: str | Path | None
) -> tuple[Genotype, Path]:
    """Work out the genotype and the weights file from what the user gave.

    ``arch``: a registered name, a 32-bit string, a ``best.json`` path or None (then taken from
    the weights file, or ``photonas``). ``weights``: a file, or None for the shipped weights.
    """
    json_ckpt = None
    if isinstance(arch, str) and arch.endswith(".json"):
        genotype, json_ckpt = _genotype_from_json(Path(arch))
    elif arch is None:
        genotype = None
    else:
        genotype = resolve(arch)
    if weights is not None:
        path = Path(weights)
        _check_file(path, "weights file")
        if genotype is None:
            genotype = Genotype.from_string(_read(path)["genotype"])
        return genotype, path
    if json_ckpt is not None:
        _check_file(json_ckpt, f"checkpoint named in {arch}")
        return genotype, json_ckpt
    genotype = genotype or NAMED["photonas"]
    for entry in REGISTRY.values():
        if entry.genotype == genotype:
            return genotype, verified_path(entry)
    raise WeightsError(
        f"no shipped weights for genotype {genotype}: train one with 'stylenas train' "
        "and pass --weights"
    )


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise WeightsError(f"{path}: {what} not found")
    if not path.is_file():
        raise WeightsError(f"{path}: {what} is not a regular file")


def verified_path(entry: Weights) -> Path:
    path = entry.path
    if not path.is_file():
        raise WeightsError(f"shipped weights {path} are missing: reinstall or restore the file")
    digest = sha256_of(path)
    if digest != entry.sha256:
        raise WeightsError(
            f"{path} is corrupt (sha256 {digest[:12]}..., expected {entry.sha256[:12]}...)"
        )
    return path


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def load_torch_file(path: str | Path, what: str = "checkpoint", map_location="cpu") -> object:
    """A ``torch.save`` file read with ``weights_only=True``: tensors, numbers, strings and
    plain containers only, so that loading a file someone sent can run no code. Every file
    the tool loads goes through here.

    Raises :class:`WeightsError` (one line) for a missing, non-regular, unreadable file and
    for one that holds other Python objects (saying how to convert a trusted one)."""
    import torch

    path = Path(path)
    if not path.exists():
        raise WeightsError(f"{path}: {what} not found")
    if not path.is_file():  # /dev/zero, a FIFO: reading would never end
        raise WeightsError(f"{path}: {what} is not a regular file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = _GLOBAL.search(str(err))
        if found is None:
            reason = "corrupt or not a torch file"
            raise WeightsError(f"{path}: not a readable {what} ({reason})") from None
        raise WeightsError(
            f"{path}: refused: it holds a Python object ({found.group(1)}) that could run code "
            "when loaded; only tensors, numbers, strings and plain containers are read. If you "
            "trust the file, load it yourself with torch.load(weights_only=False) and torch.save "
            "its tensors and numbers alone"
        ) from None
    except Exception as err:  # torch raises many kinds for a bad file
        raise WeightsError(f"{path}: not a readable {what} ({type(err).__name__})") from None


def check_state_dict(state: object, path: Path) -> dict[str, torch.Tensor]:
    """``state`` if it maps names to tensors, else :class:`WeightsError`."""
    import torch

    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise WeightsError(f"{path}: its state_dict does not map names to tensors")
    return state


def _read(path: Path) -> dict:
    data = load_torch_file(path, "weights file")
    if not isinstance(data, dict) or "state_dict" not in data or "genotype" not in data:
        raise WeightsError(f"{path}: not a stylenas weights file (no genotype/state_dict)")
    if not isinstance(data["genotype"], str):
        raise WeightsError(f"{path}: its genotype field is not a string of 32 bits")
    try:
        Genotype.from_string(data["genotype"])
    except ValueError as err:
        raise WeightsError(f"{path}: its genotype field is invalid ({err})") from None
    check_state_dict(data["state_dict"], path)
    return data


def load_decoder_state(path: str | Path, genotype: Genotype) -> dict[str, torch.Tensor]:
    """Read a weights file, check it is for ``genotype`` (or for one that differs only in
    transfer points: the same decoder), return a float32 state dict."""
    path = Path(path)
    data = _read(path)
    if not genotype.shares_weights_with(Genotype(data["genotype"])):
        raise WeightsError(
            f"{path} holds genotype {data['genotype']}, not {genotype} (nor one that differs "
            "only in transfer points)"
        )
    state = {k: v.float() for k, v in data["state_dict"].items()}
    from .decoder import Decoder

    expected = Decoder(genotype).state_dict()
    if set(state) != set(expected) or any(state[k].shape != v.shape for k, v in expected.items()):
        raise WeightsError(f"{path}: its tensors do not fit genotype {genotype}")
    return state

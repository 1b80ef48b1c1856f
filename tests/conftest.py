"""Shared fixtures: a random-weights decoder file, small test photos, a cached encoder."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

PHOTO_SIZE = (80, 64)  # (width, height) of the default test photo


@lru_cache(maxsize=4)
def _source(name: str) -> np.ndarray:
    from skimage import data

    return {"astronaut": data.astronaut, "coffee": data.coffee}[name]()


def photo_array(source: str = "astronaut", size: tuple[int, int] = PHOTO_SIZE) -> np.ndarray:
    """A real photo (scikit-image sample) resized to ``size`` (width, height), uint8 RGB."""
    img = Image.fromarray(_source(source)).resize(size, Image.Resampling.BILINEAR)
    return np.asarray(img)


def alpha_ramp(size: tuple[int, int] = PHOTO_SIZE) -> np.ndarray:
    """A left-to-right alpha gradient ``(H, W)`` uint8 with both fully clear and opaque."""
    w, h = size
    return np.tile(np.linspace(0, 255, w).round().astype(np.uint8), (h, 1))


def paint_sky(path: Path, rows: int) -> Path:
    """The photo at ``path`` with a flat blue sky over its top ``rows`` rows (rewritten)."""
    pixels = np.asarray(Image.open(path)).copy()
    pixels[:rows] = (128, 178, 242)
    Image.fromarray(pixels).save(path)
    return path


def write_photo(
    path: Path,
    size: tuple[int, int] = PHOTO_SIZE,
    source: str = "astronaut",
    mode: str = "RGB",
    **save_kwargs,
) -> Path:
    """Write a small photo to ``path`` in ``mode`` (RGB, RGBA, L, CMYK) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(photo_array(source, size))
    if mode == "RGBA":
        img.putalpha(Image.fromarray(alpha_ramp(size)))
    elif mode != "RGB":
        img = img.convert(mode)
    img.save(path, **save_kwargs)
    return path


def write_labels(path: Path, size: tuple[int, int], split: float = 0.5) -> Path:
    """A two-colour label map: red on the left ``split`` of the width, blue on the rest."""
    w, h = size
    arr = np.zeros((h, w, 3), np.uint8)
    cut = round(w * split)
    arr[:, :cut] = (255, 0, 0)
    arr[:, cut:] = (0, 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


# --- the bad-input corpus's assertions ----------------------------------------------------


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (to prove the inputs were not touched)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_refused(result, *fragments: str) -> str:
    """Non-zero exit, no traceback, exactly one ``error:`` line holding every fragment."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def assert_nothing_written(folder: Path, before: dict[str, str]) -> None:
    """No new file (output or temp) and every old one byte-identical."""
    assert digests(folder) == before


@pytest.fixture
def make_photo(tmp_path: Path) -> Callable[..., Path]:
    """``make_photo("a.jpg", size=(80, 64), source="coffee", mode="RGBA")`` -> path."""

    def make(name: str, **kwargs) -> Path:
        return write_photo(tmp_path / name, **kwargs)

    return make


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weights photonas decoder, saved like shipped weights (fp16)."""
    from stylenas_cli.decoder import Decoder
    from stylenas_cli.genotype import NAMED

    torch.manual_seed(0)
    decoder = Decoder(NAMED["photonas"])
    path = tmp_path_factory.mktemp("weights") / "photonas_random.pt"
    torch.save(
        {
            "genotype": str(NAMED["photonas"]),
            "state_dict": {k: v.half() for k, v in decoder.state_dict().items()},
        },
        path,
    )
    return path


@pytest.fixture(scope="session")
def _shared_encoder():
    from stylenas_cli.encoder import VGGEncoder

    return VGGEncoder()


@pytest.fixture
def one_thread():
    """Run torch on one intra-op thread for the test (restored after).

    On a small, busy machine two OpenMP threads contend with other work and make the tiny
    convolutions of these tests ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def fast_encoder(monkeypatch: pytest.MonkeyPatch, _shared_encoder) -> None:
    """Every Stylizer built during the test reuses one frozen VGG encoder.

    Building VGG19 costs ~1.5 s (torchvision initialises its classifier); the encoder is
    frozen and stateless, so sharing it keeps the CLI tests fast while the rest of
    ``Stylizer.from_pretrained`` (decoder, weights, genotype checks) runs for real."""
    import stylenas_cli.model as model

    monkeypatch.setattr(model, "VGGEncoder", lambda *a, **k: _shared_encoder)


@pytest.fixture(autouse=True)
def _style_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own style-statistics cache (never the user's ~/.cache)."""
    folder = tmp_path_factory.mktemp("style-cache")
    monkeypatch.setenv("STYLENAS_CACHE", str(folder))
    return folder

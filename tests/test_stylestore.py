"""The on-disk style-statistics cache (stylestore.py) and its use by ``stylize``."""

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from conftest import write_photo
from stylenas_cli import stylestore
from stylenas_cli.cli import main
from stylenas_cli.model import Stylizer

pytestmark = pytest.mark.usefixtures("one_thread", "fast_encoder")


@pytest.fixture
def model(weights_file) -> Stylizer:
    return Stylizer.from_pretrained("photonas", weights_file, "cpu")


@pytest.fixture
def style(tmp_path) -> Path:
    return write_photo(tmp_path / "ref.jpg", size=(96, 72), source="coffee")


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pt"))


def test_second_load_reads_the_disk_and_gives_the_same_statistics(
    model, style, tmp_path, monkeypatch
):
    folder = tmp_path / "cache"
    first = model.load_style(style, 256, cache_dir=folder)
    assert len(_entries(folder)) == 1
    monkeypatch.setattr(Stylizer, "style_cache", lambda *a, **k: pytest.fail("recomputed"))
    again = model.load_style(style, 256, cache_dir=folder)
    assert again.size == first.size and set(again.stats) == set(first.stats)
    for point in first.stats:
        for label, s in first.stats[point].items():
            assert torch.equal(again.stats[point][label].colour, s.colour)
            assert torch.equal(again.stats[point][label].mean, s.mean)


def test_the_key_follows_everything_the_statistics_depend_on(model, style, tmp_path):
    base = stylestore.key(style, "w1", "g", 1024, "fp32")
    assert base == stylestore.key(style, "w1", "g", 1024, "fp32")
    other = write_photo(tmp_path / "other.jpg", size=(96, 72), source="astronaut")
    mask = write_photo(tmp_path / "mask.png", size=(96, 72))
    for changed in (
        stylestore.key(other, "w1", "g", 1024, "fp32"),
        stylestore.key(style, "w2", "g", 1024, "fp32"),
        stylestore.key(style, "w1", "h", 1024, "fp32"),
        stylestore.key(style, "w1", "g", 512, "fp32"),
        stylestore.key(style, "w1", "g", 1024, "bf16"),
        stylestore.key(style, "w1", "g", 1024, "fp32", mask),
    ):
        assert changed != base


def test_a_corrupt_entry_is_ignored_and_rebuilt(model, style, tmp_path):
    folder = tmp_path / "cache"
    good = model.load_style(style, 256, cache_dir=folder)
    (entry,) = _entries(folder)
    entry.write_bytes(b"not a torch file")
    rebuilt = model.load_style(style, 256, cache_dir=folder)
    assert torch.equal(rebuilt.stats["relu1_1"][-1].colour, good.stats["relu1_1"][-1].colour)
    assert stylestore.load(folder, entry.stem) is not None  # written again, readable


def test_an_unwritable_cache_never_fails_the_job(model, style, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    cache = model.load_style(style, 256, cache_dir=blocker / "cache")
    assert "relu1_1" in cache.stats


def test_a_network_not_loaded_from_a_file_is_not_cached(style, tmp_path):
    model = Stylizer("photonas").eval()
    model.load_style(style, 256, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_stylize_uses_the_cache_and_no_cache_turns_it_off(
    tmp_path, style, weights_file, _style_cache, monkeypatch
):
    content = write_photo(tmp_path / "c.jpg")

    def run(*extra):
        argv = ["stylize", str(content), "--style", str(style), "--weights", str(weights_file)]
        return CliRunner().invoke(
            main, [*argv, "-o", str(tmp_path / "o.png"), "--overwrite", *extra]
        )

    assert run("--no-cache").exit_code == 0
    assert _entries(_style_cache) == []
    assert run().exit_code == 0
    assert len(_entries(_style_cache)) == 1
    monkeypatch.setenv("STYLENAS_CACHE", "")  # empty: off
    assert stylestore.cache_dir() is None

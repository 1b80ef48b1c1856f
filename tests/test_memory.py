"""Memory estimates and the up-front refusal (memory.py)."""

import pytest

from stylenas_cli import memory
from stylenas_cli.errors import OutOfMemory


def test_the_lift_needs_a_few_bytes_per_pixel_native_needs_far_more():
    twelve_mp = (3000, 4000)
    lifted = memory.estimate_bytes(*twelve_mp, work_size=512)
    native = memory.estimate_bytes(*twelve_mp, work_size=None)
    assert lifted < 1 << 30  # < 1 GiB beyond the idle process
    assert native > 10 * lifted
    assert memory.estimate_bytes(*twelve_mp, batch=2, work_size=512) > lifted
    assert memory.estimate_bytes(*twelve_mp, work_size=512, float_source=True) > lifted


def test_an_absurd_size_is_refused_with_what_to_change(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 8 << 30)
    with pytest.raises(OutOfMemory) as info:
        memory.check_fits("pano.jpg", 60_000, 90_000, "cpu", work_size=None)
    text = str(info.value)
    assert "\n" not in text
    assert "pano.jpg" in text and "90000x60000" in text and "--work-size 1024" in text
    memory.check_fits("photo.jpg", 3000, 4000, "cpu", work_size=512)  # fits: no error


def test_available_memory_is_read_on_linux():
    have = memory.available_bytes("cpu")
    assert have is None or have > 0


def test_a_batch_gives_freed_memory_back_after_each_group(tmp_path, monkeypatch, weights_file):
    import stylenas_cli.batch as batch
    import stylenas_cli.jobs as jobs
    from conftest import write_photo
    from stylenas_cli.memory import release_freed_memory
    from stylenas_cli.model import Stylizer

    release_freed_memory()  # callable here (glibc) and a no-op elsewhere
    calls = []
    monkeypatch.setattr(batch, "release_freed_memory", lambda: calls.append(1))
    photos = [write_photo(tmp_path / f"{i}.jpg", size=(64 + 8 * i, 48)) for i in range(3)]
    style = write_photo(tmp_path / "s.jpg", source="coffee")
    outputs = batch.plan_image_outputs(photos, f"{tmp_path / 'out'}/")
    model = Stylizer.from_pretrained("photonas", weights_file, "cpu", "fp32")
    results = jobs.stylize_files(model, photos, style, outputs, batch.StylizeConfig())
    assert all(r.ok for r in results) and len(calls) == 3  # three sizes, three groups

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

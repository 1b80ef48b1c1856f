"""Image loading/saving (stylenas_cli.io): orientation, alpha, bit depth, errors, atomicity."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import PHOTO_SIZE, alpha_ramp, photo_array, write_labels
from stylenas_cli.images import ImageError, atomic_write, load_image, load_labels, save_image

W, H = PHOTO_SIZE


def _tmp_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".*.tmp"))


def _as_float_rgb(loaded) -> np.ndarray:
    return loaded.rgb[0].permute(1, 2, 0).numpy()


def _check_rgb(loaded, w: int = W, h: int = H) -> None:
    assert loaded.rgb.shape == (1, 3, h, w)
    assert loaded.rgb.dtype == torch.float32
    assert float(loaded.rgb.min()) >= 0.0 and float(loaded.rgb.max()) <= 1.0
    assert loaded.size == (w, h)


# --- loading -------------------------------------------------------------------------------


def test_load_png_rgb_exact(make_photo):
    path = make_photo("a.png")
    loaded = load_image(path)
    _check_rgb(loaded)
    assert loaded.alpha is None and not loaded.sixteen_bit
    expected = photo_array().astype(np.float32) / 255.0
    np.testing.assert_allclose(_as_float_rgb(loaded), expected, atol=1e-6)


def test_exif_orientation_is_honoured(make_photo):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = make_photo("rot.jpg", exif=exif.tobytes(), quality=95)
    with Image.open(path) as raw:
        assert raw.size == (W, H)  # stored landscape
    loaded = load_image(path)
    _check_rgb(loaded, w=H, h=W)  # displayed portrait
    clockwise = np.rot90(photo_array(), k=-1).astype(np.float32) / 255.0
    counter = np.rot90(photo_array(), k=1).astype(np.float32) / 255.0
    got = _as_float_rgb(loaded)
    assert np.abs(got - clockwise).mean() < 0.03
    assert np.abs(got - counter).mean() > 3 * np.abs(got - clockwise).mean()


def test_sixteen_bit_png(tmp_path):
    ramp = np.linspace(0, 65535, W * H).reshape(H, W).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as img:
        assert img.mode.startswith("I;16")
    loaded = load_image(tmp_path / "g16.png")
    _check_rgb(loaded)
    assert loaded.sixteen_bit
    rgb = loaded.rgb[0]
    assert torch.equal(rgb[0], rgb[1]) and torch.equal(rgb[1], rgb[2])
    np.testing.assert_allclose(rgb[0].numpy(), ramp / 65535.0, atol=1e-6)


def test_dark_sixteen_bit_png_stays_dark(tmp_path):
    # Values all below 256 are still 16-bit: 200/65535 is nearly black, not 200/255.
    dark = (np.arange(W * H).reshape(H, W) % 200).astype(np.uint16)
    Image.fromarray(dark).save(tmp_path / "dark16.png")
    loaded = load_image(tmp_path / "dark16.png")
    _check_rgb(loaded)
    assert float(loaded.rgb.max()) == pytest.approx(199 / 65535.0, rel=1e-5)


def test_sixteen_bit_png_with_max_size(tmp_path):
    ramp = np.linspace(0, 65535, W * H).reshape(H, W).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    loaded = load_image(tmp_path / "g16.png", max_size=40)
    _check_rgb(loaded, w=40, h=32)
    assert float(loaded.rgb.max()) > 0.8


def test_grayscale_png(make_photo):
    path = make_photo("gray.png", mode="L")
    loaded = load_image(path)
    _check_rgb(loaded)
    rgb = loaded.rgb[0]
    assert torch.equal(rgb[0], rgb[1]) and torch.equal(rgb[1], rgb[2])
    with Image.open(path) as img:
        expected = np.asarray(img, np.float32) / 255.0
    np.testing.assert_allclose(rgb[0].numpy(), expected, atol=1e-6)


def test_cmyk_jpeg(make_photo):
    path = make_photo("cmyk.jpg", mode="CMYK", quality=95)
    with Image.open(path) as img:
        assert img.mode == "CMYK"
    loaded = load_image(path)
    _check_rgb(loaded)
    original = photo_array().astype(np.float32) / 255.0
    assert np.abs(_as_float_rgb(loaded) - original).mean() < 0.05


def test_rgba_png_keeps_alpha(make_photo):
    path = make_photo("a.png", mode="RGBA")
    loaded = load_image(path)
    _check_rgb(loaded)
    assert loaded.alpha is not None
    np.testing.assert_array_equal(loaded.alpha, alpha_ramp())


def test_palette_with_transparency_has_alpha(tmp_path):
    img = Image.fromarray(photo_array()).quantize(16)
    img.info["transparency"] = 0
    img.save(tmp_path / "p.png", transparency=0)
    loaded = load_image(tmp_path / "p.png")
    _check_rgb(loaded)
    assert loaded.alpha is not None
    idx = np.asarray(Image.open(tmp_path / "p.png"))
    np.testing.assert_array_equal(loaded.alpha == 0, idx == 0)


def test_max_size_shrinks_long_side(make_photo):
    path = make_photo("a.png")
    _check_rgb(load_image(path, max_size=40), w=40, h=32)
    _check_rgb(load_image(path, max_size=500))  # never enlarged
    portrait = make_photo("p.png", size=(48, 96))
    _check_rgb(load_image(portrait, max_size=64), w=32, h=64)


def _truncated_jpeg(path: Path) -> Path:
    buf = path.with_suffix(".full.jpg")
    Image.fromarray(photo_array()).save(buf, quality=95)
    data = buf.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("missing", "not found"),
        ("directory", "directory"),
        ("empty", "empty"),
        ("text", "not a readable image"),
        ("truncated", "not a readable image"),
        ("header_only", "not a readable image"),
    ],
)
def test_bad_files_raise_image_error(tmp_path, kind, reason):
    path = tmp_path / f"{kind}.jpg"
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a photo\n" * 20)
    elif kind == "truncated":
        _truncated_jpeg(path)
    elif kind == "header_only":
        _truncated_jpeg(path)
        path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageError) as info:
        load_image(path)
    message = str(info.value)
    assert str(path) in message and reason in message
    assert "\n" not in message


# --- label maps ----------------------------------------------------------------------------


def test_load_labels_two_colours(tmp_path):
    a = load_labels(write_labels(tmp_path / "a.png", (80, 64), split=0.25), size=(80, 64))
    b = load_labels(write_labels(tmp_path / "b.png", (40, 30), split=0.75))
    assert a.shape == (64, 80) and b.shape == (30, 40)
    assert a.dtype == torch.int64
    assert set(a.unique().tolist()) == set(b.unique().tolist())  # colours -> same labels
    assert len(a.unique()) == 2
    assert int((a == a[0, 0]).sum()) == 64 * 20  # red: left quarter
    assert a[0, 0] != a[0, -1]


def test_load_labels_size_mismatch(tmp_path):
    path = write_labels(tmp_path / "m.png", (40, 40))
    with pytest.raises(ImageError, match=r"40x40.*80x64.*must match"):
        load_labels(path, size=(80, 64))


def test_load_labels_missing_and_unreadable(tmp_path):
    with pytest.raises(ImageError, match="mask file not found"):
        load_labels(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_text("not a png")
    with pytest.raises(ImageError, match="not a readable mask"):
        load_labels(tmp_path / "bad.png")


# --- saving and atomic writes --------------------------------------------------------------


def _rgb_tensor() -> torch.Tensor:
    return torch.from_numpy(photo_array().astype(np.float32) / 255.0).permute(2, 0, 1)


def test_save_png_roundtrip(tmp_path):
    rgb = _rgb_tensor()
    dest = save_image(rgb, tmp_path / "out.png")
    with Image.open(dest) as img:
        assert img.format == "PNG" and img.mode == "RGB" and img.size == (W, H)
        np.testing.assert_array_equal(np.asarray(img), photo_array())
    assert _tmp_files(tmp_path) == []


def test_save_jpeg_readable(tmp_path):
    dest = save_image(_rgb_tensor(), tmp_path / "out.JPG")
    with Image.open(dest) as img:
        assert img.format == "JPEG" and img.size == (W, H)
        diff = np.abs(np.asarray(img, np.float32) - photo_array()).mean()
    assert diff < 4  # quality 95


def test_save_keeps_alpha_in_png_drops_it_in_jpeg(tmp_path):
    alpha = alpha_ramp()
    png = save_image(_rgb_tensor(), tmp_path / "a.png", alpha)
    with Image.open(png) as img:
        assert img.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(img)[..., 3], alpha)
    jpg = save_image(_rgb_tensor(), tmp_path / "a.jpg", alpha)
    with Image.open(jpg) as img:
        assert img.mode == "RGB" and img.size == (W, H)


def test_save_resizes_mismatched_alpha(tmp_path):
    png = save_image(_rgb_tensor(), tmp_path / "a.png", alpha_ramp((40, 32)))
    with Image.open(png) as img:
        assert img.mode == "RGBA" and img.size == (W, H)


def test_save_unsupported_format(tmp_path):
    with pytest.raises(ImageError, match="unsupported output format"):
        save_image(_rgb_tensor(), tmp_path / "out.gif")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_success_uses_usual_mode(tmp_path):
    dest = tmp_path / "sub" / "f.txt"
    assert atomic_write(dest, lambda tmp: tmp.write_text("new")) == dest
    assert dest.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o666 & ~umask
    assert _tmp_files(tmp_path) == []


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_atomic_write_failure_leaves_dest_untouched(tmp_path, exc):
    dest = tmp_path / "f.png"
    dest.write_bytes(b"original")
    seen = []

    def writer(tmp: Path) -> None:
        seen.append(tmp)
        assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.name.endswith(".tmp")
        tmp.write_bytes(b"half-written")
        raise exc("boom")

    with pytest.raises(exc):
        atomic_write(dest, writer)
    assert dest.read_bytes() == b"original"
    assert seen and not seen[0].exists()
    assert _tmp_files(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]


def test_atomic_write_failure_without_existing_dest(tmp_path):
    def writer(tmp: Path) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "new.png", writer)
    assert list(tmp_path.iterdir()) == []

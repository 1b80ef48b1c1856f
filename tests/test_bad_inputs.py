"""The bad-input corpus (issue 15): every file is generated here (no binary fixtures). For each
bad case ``stylenas stylize`` exits non-zero with one ``error:`` line naming what is wrong and
what to do, no traceback, no output or temp file, and the inputs byte-identical; the awkward
but valid cases are stylised. Videos, search records and the interrupt paths have their
corpus in test_video.py, test_nas_evolution.py and test_cli_common.py."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from conftest import (
    PHOTO_SIZE,
    assert_nothing_written,
    assert_refused,
    digests,
    write_labels,
    write_photo,
)
from stylenas_cli.cli import main
from stylenas_cli.errors import StylenasError
from stylenas_cli.genotype import N_BITS, UNUSED_BIT, Genotype, resolve
from stylenas_cli.images import ImageError, load_image, load_labels

pytestmark = pytest.mark.usefixtures("one_thread", "fast_encoder")

W, H = PHOTO_SIZE
ROOT = os.geteuid() == 0  # root reads and writes through any permission


# --- generators ------------------------------------------------------------------------------


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A valid PNG declaring ``width × height`` with almost no pixel data: the shape of a
    decompression bomb, a few hundred bytes on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\0" * (1 + 3 * min(width, 64)) * 4)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )
    return path


def truncated(path: Path, fmt: str) -> Path:
    buf = io.BytesIO()
    write_photo(path.with_suffix(".full" + path.suffix))
    Image.open(path.with_suffix(".full" + path.suffix)).save(buf, format=fmt)
    path.with_suffix(".full" + path.suffix).unlink()
    data = buf.getvalue()
    path.write_bytes(data[: len(data) * 2 // 5])
    return path


def gray_image(path: Path, size: tuple[int, int]) -> Path:
    Image.new("L", size, 128).save(path)
    return path


BAD_CONTENTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "zero-byte": (lambda d: _touch(d / "empty.jpg"), "empty file"),
    "random .jpg": (lambda d: _random(d / "noise.jpg"), "not a readable image"),
    "random .png": (lambda d: _random(d / "noise.png"), "not a readable image"),
    "text as .png": (lambda d: _text(d / "notes.png"), "not a readable image"),
    "truncated JPEG": (lambda d: truncated(d / "cut.jpg", "JPEG"), "not a readable image"),
    "truncated PNG": (lambda d: truncated(d / "cut.png", "PNG"), "not a readable image"),
    "bomb 20000²": (lambda d: png_header_only(d / "bomb.png", 20000, 20000), "--max-pixels"),
    "bomb 30000²": (lambda d: png_header_only(d / "bomb3.png", 30000, 30000), "--max-pixels"),
    "1x1": (lambda d: gray_image(d / "dot.png", (1, 1)), ">= 32 px"),
    "1x100000": (lambda d: gray_image(d / "line.png", (1, 100000)), ">= 32 px"),
    "empty directory": (lambda d: _dir(d / "folder.jpg"), "holds no images"),
    "missing": (lambda d: d / "nowhere.jpg", "not found"),
}


def _touch(p: Path) -> Path:
    p.write_bytes(b"")
    return p


def _random(p: Path) -> Path:
    p.write_bytes(np.random.default_rng(len(p.name)).bytes(4096))
    return p


def _text(p: Path) -> Path:
    p.write_text("this is not a picture\n")
    return p


def _dir(p: Path) -> Path:
    p.mkdir()
    return p


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def style(tmp_path) -> Path:
    return write_photo(tmp_path / "style" / "ref.jpg", size=(96, 72), source="coffee")


@pytest.fixture
def stylize(weights_file):
    def run(*args):
        argv = ["stylize", *map(str, args), "--weights", str(weights_file)]
        return CliRunner().invoke(main, argv)

    return run


# --- bad contents, styles and masks ----------------------------------------------------------


@pytest.mark.parametrize("case", list(BAD_CONTENTS))
def test_a_bad_content_is_one_clean_line_and_leaves_everything_as_it_was(
    tmp_path, style, stylize, case
):
    make, fragment = BAD_CONTENTS[case]
    inputs = tmp_path / "in"
    inputs.mkdir()
    content = make(inputs)
    before = digests(tmp_path)
    result = stylize(content, "--style", style, "-o", tmp_path / "in" / "out.png")
    assert_refused(result, fragment)
    assert_nothing_written(tmp_path, before)


@pytest.mark.parametrize("case", ["zero-byte", "random .jpg", "truncated PNG", "bomb 20000²"])
def test_a_bad_style_is_refused_before_the_model_loads(tmp_path, style, stylize, case, monkeypatch):
    import stylenas_cli.model as model

    def no_model(*a, **k):
        raise AssertionError("the model loaded before the inputs were checked")

    monkeypatch.setattr(model.Stylizer, "from_pretrained", no_model)
    make, fragment = BAD_CONTENTS[case]
    content = write_photo(tmp_path / "a.jpg")
    bad = make(tmp_path)
    before = digests(tmp_path)
    assert_refused(stylize(content, "--style", bad), fragment.replace("readable image", "readable"))
    assert_nothing_written(tmp_path, before)


def test_a_folder_given_as_the_style_says_so(tmp_path, stylize):
    content = write_photo(tmp_path / "a.jpg")
    (tmp_path / "styles").mkdir()
    assert_refused(stylize(content, "--style", tmp_path / "styles"), "is a directory")


def test_a_bomb_as_a_mask_is_refused(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.png")
    mask = png_header_only(tmp_path / "mask.png", 20000, 20000)
    result = stylize(content, "--style", style, "--content-mask", mask)
    assert_refused(result, "mask.png", "--max-pixels")


def test_one_bomb_in_a_folder_does_not_stop_the_good_photos(tmp_path, style, stylize):
    folder = tmp_path / "photos"
    write_photo(folder / "a.jpg")
    png_header_only(folder / "b_bomb.png", 20000, 20000)
    write_photo(folder / "c.jpg", source="coffee")
    result = stylize(folder, "--style", style, "-o", tmp_path / "out/")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a_stylized.jpg",
        "c_stylized.jpg",
    ]
    assert "1 of 3 failed" in result.stderr


def test_max_pixels_lets_a_genuine_large_photo_through(tmp_path, style, stylize):
    content = write_photo(tmp_path / "big.png", size=(400, 300))
    out = tmp_path / "out.png"
    assert_refused(stylize(content, "--style", style, "-o", out, "--max-pixels", 100_000), "120000")
    assert not out.exists()
    result = stylize(content, "--style", style, "-o", out, "--max-pixels", 120_000)
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (400, 300)


def test_a_mask_of_the_wrong_size_is_refused(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.png")
    mask = write_labels(tmp_path / "m.png", (W + 8, H))
    assert_refused(stylize(content, "--style", style, "--content-mask", mask), "must match")


def test_a_mask_colour_missing_from_the_style_map_is_handled(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.png")
    cmask = write_labels(tmp_path / "cm.png", (W, H))
    smask = tmp_path / "sm.png"
    Image.new("RGB", (96, 72), (0, 255, 0)).save(smask)  # green only: no red, no blue
    result = stylize(content, "--style", style, "--content-mask", cmask, "--style-mask", smask)
    assert "Traceback" not in result.output
    if result.exit_code == 0:  # regions without a partner take the whole style
        assert (tmp_path / "a_stylized.png").is_file()
    else:
        assert_refused(result, "sm.png")


# --- outputs that would destroy an input -----------------------------------------------------


@pytest.mark.parametrize("target", ["content", "style"])
def test_output_naming_an_input_is_refused_even_with_overwrite(tmp_path, style, stylize, target):
    content = write_photo(tmp_path / "a.jpg")
    out = content if target == "content" else style
    before = digests(tmp_path)
    result = stylize(content, "--style", style, "-o", out, "--overwrite")
    assert_refused(result, "replace")
    assert_nothing_written(tmp_path, before)


def test_an_output_written_meanwhile_is_not_clobbered(tmp_path):
    """The 'output exists' check happens at the rename, not only before stylising."""
    from stylenas_cli.files import OutputError
    from stylenas_cli.images import save_image

    dest = tmp_path / "x.png"
    first = np.zeros((8, 8, 3), np.uint8)
    save_image(first, dest, overwrite=False)
    with pytest.raises(OutputError, match="output exists"):
        save_image(first + 1, dest, overwrite=False)
    assert np.asarray(Image.open(dest)).max() == 0  # the first file, intact
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]  # no temp left


def test_a_dead_runs_temp_files_are_removed_by_the_next_run(tmp_path, style, stylize):
    import subprocess
    import sys

    content = write_photo(tmp_path / "a.jpg")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    stale = tmp_path / f".a_stylized.{pid}.stylenas_k3j2abcd.jpg.tmp"
    stale.write_bytes(b"partial")
    mine = tmp_path / f".a_stylized.{os.getpid()}.stylenas_zzzzzzzz.jpg.tmp"  # a live run's
    mine.write_bytes(b"in progress")
    users = tmp_path / f".a_stylized.{pid}.notes.tmp"  # the old pattern, without our marker
    users.write_bytes(b"a user's notes")
    result = stylize(content, "--style", style)
    assert result.exit_code == 0, result.output
    assert not stale.exists() and mine.exists()
    assert users.read_bytes() == b"a user's notes"


@pytest.mark.skipif(ROOT, reason="root reads and writes through permissions")
def test_unreadable_content_and_unwritable_output_directory(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.jpg")
    content.chmod(0)
    try:
        assert_refused(stylize(content, "--style", style), "a.jpg")
    finally:
        content.chmod(0o644)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert_refused(stylize(content, "--style", style, "-o", locked / "x.jpg"), "locked")
    finally:
        locked.chmod(0o755)


# --- awkward but valid images ----------------------------------------------------------------


def _sixteen_bit(p: Path) -> Path:
    arr = (np.linspace(0, 65535, W * H).reshape(H, W)).astype(np.uint16)
    Image.fromarray(arr).save(p)  # uint16: mode I;16
    return p


def _palette_transparency(p: Path) -> Path:
    img = Image.open(write_photo(p.with_suffix(".src.png"))).convert("P", palette=Image.ADAPTIVE)
    img.info["transparency"] = 0
    img.save(p, transparency=0)
    return p


def linear_rgb_profile() -> bytes:
    """A real RGB ICC profile other than sRGB: LittleCMS's sRGB with its tone curves made
    linear (gamma 1), so the same 8-bit numbers mean darker-looking colours in sRGB."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack(">I", data[128:132])
    for i in range(count):
        sig, offset, _ = struct.unpack(">4sII", data[132 + 12 * i : 144 + 12 * i])
        if sig in (b"rTRC", b"gTRC", b"bTRC") and data[offset : offset + 4] == b"para":
            data[offset + 12 : offset + 16] = struct.pack(">i", 1 << 16)  # gamma 1.0
    return bytes(data)


def _icc(p: Path) -> Path:
    Image.open(write_photo(p.with_suffix(".src.png"))).save(p, icc_profile=linear_rgb_profile())
    return p


def _rotated_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° when displayed
    return exif


def _animated(p: Path) -> Path:
    frames = [Image.fromarray(np.full((H, W, 3), v, np.uint8)) for v in (40, 200, 90)]
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return p


VALID = {
    "16-bit PNG": lambda d: _sixteen_bit(d / "deep.png"),
    "palette + transparency": lambda d: _palette_transparency(d / "pal.png"),
    "LA": lambda d: write_photo(d / "la.png", mode="LA"),
    "CMYK JPEG": lambda d: write_photo(d / "cmyk.jpg", mode="CMYK"),
    "animated GIF": lambda d: _animated(d / "anim.gif"),
    "animated WebP": lambda d: _animated(d / "anim.webp"),
    "ICC-profiled": lambda d: _icc(d / "wide.png"),
    "EXIF-rotated": lambda d: write_photo(d / "rot.jpg", exif=_rotated_exif()),
    "spaces and non-ASCII": lambda d: write_photo(d / "mes photos" / "été à Zürich.jpg"),
}


@pytest.mark.parametrize("case", list(VALID))
def test_awkward_valid_images_are_stylised(tmp_path, style, stylize, case):
    content = VALID[case](tmp_path)
    out = tmp_path / "out" / "result.png"
    result = stylize(content, "--style", style, "-o", out)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    w, h = Image.open(content).size
    assert Image.open(out).size == ((h, w) if case == "EXIF-rotated" else (w, h))
    if case.startswith("animated"):
        assert "first frame" in result.stderr


def test_icc_profiled_pixels_are_converted_to_srgb(tmp_path):
    plain = write_photo(tmp_path / "plain.png")
    profiled = _icc(tmp_path / "profiled.png")
    raw = load_image(plain).pixels.astype(int)
    got = load_image(profiled).pixels.astype(int)
    linear = ImageCms.ImageCmsProfile(io.BytesIO(linear_rgb_profile()))
    srgb = ImageCms.createProfile("sRGB")
    expected = ImageCms.profileToProfile(Image.open(plain), linear, srgb, outputMode="RGB")
    assert np.abs(got - np.asarray(expected).astype(int)).max() <= 1
    assert np.abs(got - raw).mean() > 10  # the conversion did something


# --- weights and genotypes -------------------------------------------------------------------


def _weights_variant(tmp_path: Path, weights_file: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.pt"
    data = torch.load(weights_file, weights_only=True)
    if kind == "corrupt":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "truncated":
        raw = weights_file.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    elif kind == "genotype not a string":
        data["genotype"] = 12345
        torch.save(data, path)
    elif kind == "state dict of non-tensors":
        data["state_dict"] = {k: 1.0 for k in data["state_dict"]}
        torch.save(data, path)
    elif kind == "wrong architecture":
        data["genotype"] = "11111111011111111111111111111111"  # photonet, photonas tensors
        torch.save(data, path)
    return path


@pytest.mark.parametrize(
    "kind,fragment",
    [
        ("corrupt", "not a readable weights file"),
        ("truncated", "not a readable weights file"),
        ("genotype not a string", "genotype field"),
        ("state dict of non-tensors", "tensors"),
        ("wrong architecture", "do not fit"),
    ],
)
def test_bad_weights_files_are_one_line(tmp_path, style, weights_file, kind, fragment):
    content = write_photo(tmp_path / "a.jpg")
    bad = _weights_variant(tmp_path, weights_file, kind)
    before = digests(tmp_path)
    result = CliRunner().invoke(main, ["stylize", str(content), str(style), "--weights", str(bad)])
    assert_refused(result, fragment)
    assert_nothing_written(tmp_path, before)


@pytest.mark.parametrize(
    "arch,fragment",
    [
        ("0101", "has 4 bits"),
        ("1" * 32, "bit 8"),
        ("0101x" + "0" * 27, "unknown architecture"),
    ],
)
def test_bad_genotype_strings_say_what_is_wrong(tmp_path, style, stylize, arch, fragment):
    content = write_photo(tmp_path / "a.jpg")
    result = CliRunner().invoke(main, ["stylize", str(content), str(style), "--arch", arch])
    assert_refused(result, fragment)


# --- properties ------------------------------------------------------------------------------


@given(st.text(alphabet="01x ", max_size=40))
def test_genotype_parser_accepts_exactly_the_valid_strings(text):
    valid = (
        len(text.strip()) == N_BITS
        and set(text.strip()) <= {"0", "1"}
        and text.strip()[UNUSED_BIT] == "0"
    )
    try:
        g = resolve(text)
    except StylenasError:
        assert not valid
    else:
        assert valid and str(g) == text.strip() and Genotype(str(g)) == g


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600), st.sampled_from([".png", ".jpg", ".gif", ".webp", ".tif"]))
def test_the_image_loader_never_fails_other_than_with_an_image_error(tmp_path, data, suffix):
    path = tmp_path / f"x{suffix}"
    path.write_bytes(data)
    try:
        img = load_image(path)
    except ImageError as err:
        assert "\n" not in str(err)
    else:
        assert img.pixels.ndim == 3 and img.pixels.shape[2] == 3


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from([(255, 0, 0), (0, 0, 255), (7, 8, 9)]), min_size=12, max_size=12))
def test_label_maps_give_one_label_per_colour(tmp_path, colours):
    arr = np.array(colours, np.uint8).reshape(3, 4, 3)
    path = tmp_path / "labels.png"
    Image.fromarray(arr).save(path)
    labels = load_labels(path, (4, 3)).numpy()
    flat = arr.reshape(-1, 3)
    for i in range(12):
        for j in range(12):
            same = (flat[i] == flat[j]).all()
            assert (labels.flat[i] == labels.flat[j]) == same


# --- training data ---------------------------------------------------------------------------


def test_training_data_skips_unreadable_photos_and_names_them(tmp_path):
    from stylenas_cli.train import DataError, list_images

    folder = tmp_path / "train"
    for name in ("a.jpg", "b.jpg", "c.png"):
        write_photo(folder / name)
    truncated(folder / "d_cut.jpg", "JPEG")
    _random(folder / "e_noise.png")
    png_header_only(folder / "f_bomb.png", 20000, 20000)
    skipped: list[str] = []
    files = list_images(folder, skipped.append)
    assert [f.name for f in files] == ["a.jpg", "b.jpg", "c.png"]
    assert len(skipped) == 3
    assert all(any(n in m for m in skipped) for n in ("d_cut.jpg", "e_noise.png", "f_bomb.png"))
    (folder / "a.jpg").unlink()
    (folder / "b.jpg").unlink()
    with pytest.raises(DataError, match="2 readable photos"):
        list_images(folder)


# --- durability: kill -9 at any moment -------------------------------------------------------


def test_training_killed_with_sigkill_resumes_from_an_intact_checkpoint(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "train"
    for i in range(4):
        write_photo(folder / f"{i}.jpg", source=("astronaut", "coffee")[i % 2])
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "stylenas_cli", "train", str(folder), "--arch", "photonas"]
    argv += ["-o", str(out), "--batch", "1", "--size", "32", "--checkpoint-every", "1"]
    argv += ["--val-every", "100000", "--device", "cpu", "--precision", "fp32"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*argv, "--steps", "100000"], env=env, stderr=subprocess.DEVNULL)
    ckpt = out / "last.pt"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (
            ckpt.is_file() and torch.load(ckpt, weights_only=False)["step"] >= 3
        ):
            time.sleep(0.2)
        time.sleep(0.37)  # somewhere inside a step or a checkpoint write
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    step = torch.load(ckpt, weights_only=False)["step"]  # intact: it loads
    assert step >= 3
    done = subprocess.run([*argv, "--steps", str(step + 2), "--resume"], env=env, text=True,
                          capture_output=True, timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = " ".join((done.stdout + done.stderr).split())  # rich wraps long lines
    assert f"resumed from {ckpt} at step {step}" in said
    assert torch.load(ckpt, weights_only=False)["step"] == step + 2
    assert list(out.glob(".*.tmp")) == []  # the killed run's temp file, if any, is gone


def test_two_runs_writing_one_output_never_both_succeed(tmp_path, style, weights_file):
    import subprocess
    import sys

    content = write_photo(tmp_path / "a.jpg")
    out = tmp_path / "same.png"
    argv = [sys.executable, "-m", "stylenas_cli", "stylize", str(content), "--style", str(style)]
    argv += ["-o", str(out), "--weights", str(weights_file), "--device", "cpu", "--no-cache"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    codes = [p.wait(240) for p in procs]
    errors = [p.stderr.read() for p in procs]
    assert sorted(codes) == [0, 1], errors
    loser = errors[codes.index(1)]
    assert "output exists" in loser and "Traceback" not in loser
    assert Image.open(out).size == (W, H)  # whole, not torn
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "same.png", "style"]


# --- batch semantics: interrupt, resume ------------------------------------------------------


def test_a_batch_stopped_by_sigterm_resumes_with_skip_existing(tmp_path, style, weights_file):
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "photos"
    for i in range(40):  # different sizes: one batch each, so outputs appear one by one
        write_photo(folder / f"{i:02d}.jpg", size=(64 + 2 * i, 48 + i))
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "stylenas_cli", "stylize", str(folder), "--style", str(style)]
    argv += ["-o", f"{out}/", "--weights", str(weights_file), "--device", "cpu", "--quiet"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(out.glob("*.jpg"))) < 2:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(60)
    said = proc.stderr.read()
    assert code == 130, said
    assert "--skip-existing" in said and "Traceback" not in said
    done = sorted(out.glob("*.jpg"))
    assert 2 <= len(done) < 40
    assert all(Image.open(p).size == Image.open(folder / p.name.replace("_stylized", "")).size
               for p in done)  # fmt: skip
    assert list(out.glob(".*")) == []  # no temp file left
    before = {p.name: p.stat().st_mtime_ns for p in done}

    again = CliRunner().invoke(
        main,
        ["stylize", str(folder), "--style", str(style), "-o", f"{out}/", "--skip-existing"]
        + ["--weights", str(weights_file), "--json"],
    )
    assert again.exit_code == 0, again.output
    *rows, last = [json.loads(line) for line in again.stdout.splitlines()]
    assert last == {"summary": {"written": 40 - len(done), "skipped": len(done), "failed": 0}}
    assert sum(r.get("skipped", False) for r in rows) == len(done)
    assert all(r["ok"] for r in rows) and len(rows) == 40
    assert len(list(out.glob("*.jpg"))) == 40
    assert all(p.stat().st_mtime_ns == before[p.name] for p in done)  # not rewritten


def test_video_stopped_by_sigterm_leaves_nothing_and_says_so(tmp_path, style, weights_file):
    import signal
    import subprocess
    import sys
    import time

    from stylenas_cli.video.ffmpeg import ffmpeg_exe

    clip = tmp_path / "clip.mp4"
    make = [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x96:rate=24:d=20"]
    subprocess.run([*make, "-pix_fmt", "yuv420p", str(clip)], check=True)
    out = tmp_path / "out.mp4"
    argv = [sys.executable, "-m", "stylenas_cli", "video", str(clip), "--style", str(style)]
    argv += ["-o", str(out), "--weights", str(weights_file), "--device", "cpu", "--quiet"]
    argv += ["--mode", "frames"]  # the network on every frame: long enough to interrupt
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list(tmp_path.glob(".out.*.video.tmp")):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    time.sleep(1.0)  # frames are being encoded
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(60)
    said = proc.stderr.read()
    assert code == 130, said
    assert "interrupted" in said and "Traceback" not in said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "style"]


def test_search_killed_with_sigkill_resumes_without_losing_a_record(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    train = tmp_path / "train"
    for k, size in enumerate([(80, 60), (60, 80), (96, 64), (80, 60)]):
        write_photo(train / f"{k:02d}.jpg", size, ("astronaut", "coffee")[k % 2])
    pairs = tmp_path / "pairs"
    for k, (c, s) in enumerate([("astronaut", "coffee"), ("coffee", "astronaut")]):
        write_photo(pairs / "content" / f"{k:02d}.jpg", (64, 48), c)
        write_photo(pairs / "style" / f"{k:02d}.jpg", (64, 48), s)
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "stylenas_cli", "search", "--train-data", str(train)]
    argv += ["--val-pairs", str(pairs), "-o", str(out), "--population", "2", "--sample", "1"]
    argv += ["--train-steps", "2", "--image-size", "48", "--val-size", "48", "--batch", "2"]
    argv += ["--val-photos", "1", "--device", "cpu", "--seed", "3", "--proxy", "train"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    records = out / "records.jsonl"

    def lines() -> list[str]:
        return records.read_text().splitlines() if records.is_file() else []

    proc = subprocess.Popen([*argv, "--budget", "50"], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(lines()) < 2:
            assert proc.poll() is None
            time.sleep(0.1)
        time.sleep(0.7)  # inside the next candidate (or writing its record)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    before = [ln for ln in lines() if ln.endswith("}")]  # a torn last line is allowed
    assert len(before) >= 2
    done = subprocess.run([*argv, "--budget", str(len(before) + 1), "--resume"], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    after = [json.loads(ln) for ln in lines()]
    assert [json.dumps(r, sort_keys=True) for r in after[: len(before)]] == [
        json.dumps(json.loads(ln), sort_keys=True) for ln in before
    ]  # nothing finished was lost or rewritten
    assert len(after) == len(before) + 1
    assert len({r["genotype"] for r in after}) == len(after)  # nothing repeated

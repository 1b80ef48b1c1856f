"""The bad-input corpus, second sweep (issue 30): code-running checkpoints, manifests that
would destroy or escape, failure reports, thin photos, non-finite numbers, a style cache entry
of the wrong shapes, what the Python API accepts, Ray addresses, long names and the messages
that used to mislead. Every file is generated here; each case asserts its exit code, one
``error:`` line and no traceback, or a correct output, and that the inputs are untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import assert_nothing_written, assert_refused, digests, write_photo
from stylenas_cli.cli import main
from stylenas_cli.errors import StylenasError

pytestmark = pytest.mark.usefixtures("one_thread", "fast_encoder")


class _RunsCode:
    """A pickle that runs ``touch <marker>`` when it is loaded without weights_only."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant(path: Path, marker: Path, **fields) -> Path:
    """A ``torch.save`` file at ``path`` whose payload runs code when unpickled unsafely."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"genotype": "0" * 32, "state_dict": _RunsCode(marker), **fields}, path)
    return path


def make_clip(path: Path, seconds: float, size: tuple[int, int]) -> Path:
    """A 24 fps testsrc clip (libx264, yuv420p) of ``size``."""
    import imageio_ffmpeg

    w, h = size
    done = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
         f"testsrc=size={w}x{h}:rate=24:d={seconds}", "-c:v", "libx264", "-pix_fmt", "yuv420p",
         str(path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def style(tmp_path) -> Path:
    return write_photo(tmp_path / "style" / "ref.jpg", size=(96, 72), source="coffee")


# --- 1. no file the tool loads can run code -------------------------------------------------


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "PWNED"


def test_a_code_running_weights_file_and_best_json_checkpoint_are_refused(tmp_path, style, marker):
    content = write_photo(tmp_path / "a.jpg")
    evil = plant(tmp_path / "evil.pt", marker)
    assert_refused(run("stylize", content, style, "--weights", evil), "refused", "posix.system")
    best = tmp_path / "run" / "best.json"
    best.parent.mkdir()
    best.write_text(json.dumps({"genotype": "01010000000100000000000000001111",
                                "checkpoint": "../evil.pt"}))  # fmt: skip
    assert_refused(run("stylize", content, style, "--arch", best), "refused")
    assert not marker.exists() and not (tmp_path / "a_stylized.jpg").exists()


def test_train_init_resume_and_export_never_run_a_checkpoints_code(tmp_path, marker):
    from stylenas_cli.train import export_weights, read_checkpoint, warm_start

    photos = tmp_path / "photos"
    for i, source in enumerate(("astronaut", "coffee", "astronaut")):
        write_photo(photos / f"{i}.jpg", size=(64, 48), source=source)
    evil = plant(tmp_path / "evil.pt", marker)
    init = run("train", photos, "--init", evil, "-o", tmp_path / "t1", "--steps", "1",
               "--size", "32", "--batch", "1")  # fmt: skip
    assert_refused(init, "evil.pt", "refused")
    plant(tmp_path / "t2" / "last.pt", marker)
    resume = run("train", photos, "--resume", "-o", tmp_path / "t2", "--steps", "1",
                 "--size", "32", "--batch", "1")  # fmt: skip
    assert_refused(resume, "last.pt", "refused")
    from stylenas_cli.decoder import Decoder
    from stylenas_cli.genotype import NAMED

    for call in (
        lambda: export_weights(evil, tmp_path / "out.pt"),
        lambda: read_checkpoint(evil),
        lambda: warm_start(Decoder(NAMED["photonas"]), evil),
    ):
        with pytest.raises(StylenasError, match="refused") as err:
            call()
        assert "\n" not in str(err.value)
    assert not marker.exists() and not (tmp_path / "out.pt").exists()


def test_search_and_prune_run_folders_never_run_a_checkpoints_code(tmp_path, marker):
    """What ``search|prune --resume`` read from a run folder: validation.pt, a candidate's
    decoder (the winner's start) and final/last.pt (the winner's training)."""
    from stylenas_cli.nas import objectives

    validation = plant(tmp_path / "run" / "validation.pt", marker, key={})
    with pytest.raises(StylenasError, match="refused"):
        objectives._is_current(validation, {"any": "key"})
    with pytest.raises(StylenasError, match="refused"):
        objectives._validation(validation)
    candidate = plant(tmp_path / "run" / "candidates" / ("0" * 32 + ".pt"), marker)
    from stylenas_cli.decoder import Decoder
    from stylenas_cli.genotype import NAMED

    with pytest.raises(StylenasError, match="refused"):
        objectives.warm_start(Decoder(NAMED["photonas"]), candidate)
    last = plant(tmp_path / "run" / "final" / "last.pt", marker)
    with pytest.raises(StylenasError, match="refused"):
        objectives.read_checkpoint(last)
    assert not marker.exists()


def test_a_code_running_style_cache_entry_is_ignored_and_rebuilt(
    tmp_path, style, marker, weights_file, _style_cache
):
    content = write_photo(tmp_path / "a.png")
    first = run("stylize", content, style, "--weights", weights_file, "-o", tmp_path / "1.png")
    assert first.exit_code == 0, first.output
    [entry] = list(_style_cache.glob("*.pt"))
    plant(entry, marker)
    again = run("stylize", content, style, "--weights", weights_file, "-o", tmp_path / "2.png")
    assert again.exit_code == 0, again.output
    assert not marker.exists()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "1.png")),
                          np.asarray(Image.open(tmp_path / "2.png")))  # fmt: skip


def test_a_device_file_as_a_checkpoint_is_not_a_regular_file(tmp_path, style):
    content = write_photo(tmp_path / "a.jpg")
    best = tmp_path / "best.json"
    best.write_text(json.dumps({"genotype": "01010000000100000000000000001111",
                                "checkpoint": "/dev/zero"}))  # fmt: skip
    assert_refused(run("stylize", content, style, "--arch", best), "/dev/zero", "regular file")
    assert_refused(run("stylize", content, style, "--weights", "/dev/zero"), "regular file")


# --- 2-4. manifests and failure reports --------------------------------------------------------


@pytest.fixture
def shoot(tmp_path) -> Path:
    lib = tmp_path / "lib"
    write_photo(lib / "a.jpg")
    write_photo(lib / "b.png", size=(64, 64))
    write_photo(lib / "s.jpg", size=(96, 80), source="coffee")
    write_photo(lib / "t.png", size=(64, 64), source="coffee")
    return lib


def _manifest(lib: Path, text: str, name: str = "m.csv") -> Path:
    (lib / name).write_text(text)
    return lib / name


def test_a_row_that_would_overwrite_another_rows_input_is_refused(shoot, weights_file):
    manifest = _manifest(shoot, "content,style,output\na.jpg,s.jpg,\nb.png,t.png,a.jpg\n"
                         "a.jpg,t.png,s.jpg\n")  # fmt: skip
    before = digests(shoot)
    result = run("stylize", "--pairs", manifest, "--weights", weights_file, "--overwrite",
                 "--json")  # fmt: skip
    assert result.exit_code == 1
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 2 and "Traceback" not in result.output
    assert f"{manifest}:3:" in errors[0] + errors[1] and f"{manifest}:4:" in errors[0] + errors[1]
    assert all("would replace an input" in e for e in errors)
    written = {k: v for k, v in digests(shoot).items() if k not in before}
    assert list(written) == ["a_stylized.jpg"]  # the good row ran
    assert {k: v for k, v in digests(shoot).items() if k in before} == before
    summary = json.loads(result.stdout.splitlines()[-1])["summary"]
    assert summary == {"written": 1, "skipped": 0, "failed": 2}


def test_a_row_output_outside_the_output_folder_is_refused(shoot, tmp_path, weights_file):
    outside = tmp_path / "absolute.jpg"
    manifest = _manifest(shoot, f"content,style,output\na.jpg,s.jpg,../../escape.jpg\n"
                         f"b.png,s.jpg,{outside}\na.jpg,t.png,inside/a_t.jpg\n")  # fmt: skip
    out = tmp_path / "out" / "deep"
    result = run("stylize", "--pairs", manifest, "-o", out, "--weights", weights_file)
    assert result.exit_code == 1
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 2 and all("outside -o" in e for e in errors)
    assert f"{manifest}:2:" in errors[0] and f"{manifest}:3:" in errors[1]
    assert not outside.exists() and not (tmp_path / "out" / "escape.jpg").exists()
    assert (out / "inside" / "a_t.jpg").is_file()  # relative to -o


def test_failures_are_written_only_on_failure_and_never_over_a_file(shoot, tmp_path, weights_file):
    manifest = _manifest(shoot, "content,style\na.jpg,s.jpg\n")
    keep = write_photo(tmp_path / "keep.jpg")
    before = keep.read_bytes()
    # a file in the way: refused before anything runs, without --overwrite
    exists = run("stylize", "--pairs", manifest, "--weights", weights_file, "--failures", keep)
    assert_refused(exists, "keep.jpg", "--overwrite")
    assert not (shoot / "a_stylized.jpg").exists()
    # the manifest itself: refused even with --overwrite
    itself = run("stylize", "--pairs", manifest, "--weights", weights_file, "--failures",
                 manifest, "--overwrite")  # fmt: skip
    assert_refused(itself, "would replace an input")
    assert manifest.read_text() == "content,style\na.jpg,s.jpg\n"
    # nothing failed: the report is not written, the file in the way untouched
    ok = run("stylize", "--pairs", manifest, "--weights", weights_file, "--failures", keep,
             "--overwrite")  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert keep.read_bytes() == before
    # something failed: written, a manifest of the failure
    broken = _manifest(shoot, "content,style\nmissing.jpg,s.jpg\n", "broken.csv")
    report = tmp_path / "failed.jsonl"
    bad = run("stylize", "--pairs", broken, "--weights", weights_file, "--failures", report)
    assert bad.exit_code == 1
    [row] = [json.loads(x) for x in report.read_text().splitlines()]
    assert row["content"] == str(shoot / "missing.jpg") and row["error"]
    assert not list(tmp_path.glob(".*.tmp"))


# --- 5. any aspect ratio -----------------------------------------------------------------------


def test_thin_photos_are_stylised_at_their_own_size_with_the_others(tmp_path, weights_file):
    folder = tmp_path / "in"
    write_photo(folder / "wide.jpg", size=(1600, 40))
    write_photo(folder / "tall.png", size=(90, 1600))
    write_photo(folder / "ok.jpg")
    thin_style = write_photo(tmp_path / "thin_style.jpg", size=(2000, 36), source="coffee")
    result = run("stylize", folder, "--style", thin_style, "-o", tmp_path / "out",
                 "--weights", weights_file)  # fmt: skip
    assert result.exit_code == 0, result.output
    sizes = {p.name: Image.open(p).size for p in (tmp_path / "out").iterdir()}
    assert sizes == {"wide_stylized.jpg": (1600, 40), "tall_stylized.png": (90, 1600),
                     "ok_stylized.jpg": (80, 64)}  # fmt: skip
    wide = np.asarray(Image.open(tmp_path / "out" / "wide_stylized.jpg"), np.float32)
    assert wide.std() > 5  # a photo, not a flat fill


def test_mirror_padding_round_trips_and_reaches_the_minimum_side():
    from stylenas_cli.shape import MIN_SIDE, min_side_pads, mirror_pad, unpad

    for h, w in [(10, 384), (1, 5), (3, 1), (31, 40), (32, 32), (2, 100)]:
        x = torch.rand(1, 3, h, w)
        pads = min_side_pads(h, w)
        y = mirror_pad(x, pads)
        assert min(y.shape[-2:]) >= MIN_SIDE and torch.equal(unpad(y, pads), x)
        if min(h, w) >= 2:  # mirrored: every value of the padding is one of the image's
            assert set(y.flatten().tolist()) <= set(x.flatten().tolist())


def test_a_thin_video_is_stylised(tmp_path, weights_file, style):
    clip = make_clip(tmp_path / "thin.mp4", seconds=0.25, size=(640, 34))
    result = run("video", clip, "-s", style, "--weights", weights_file, "-o",
                 tmp_path / "out.mp4", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["width"], summary["height"]) == (640, 34) and summary["frames"] == 6


# --- 6. numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["stylize", "a.jpg", "b.jpg", "--lift-eps", "inf"],
        ["stylize", "a.jpg", "b.jpg", "--lift-eps", "nan"],
        ["stylize", "a.jpg", "b.jpg", "--alpha", "nan"],
        ["video", "a.mp4", "-s", "b.jpg", "--smoothing", "nan"],
        ["train", ".", "--lr", "nan"],
        ["train", ".", "--gamma", "0.5,inf"],
        ["search", "--w-gram", "inf"],
    ],
)
def test_non_finite_numbers_are_usage_errors(argv, monkeypatch):
    import stylenas_cli.model as model

    monkeypatch.setattr(model.Stylizer, "from_pretrained", lambda *a, **k: pytest.fail("loaded"))
    result = run(*argv)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "finite" in result.stderr


def test_the_library_refuses_non_finite_settings():
    from stylenas_cli.config import LiftConfig
    from stylenas_cli.train import TrainConfig

    for eps in (float("inf"), float("nan"), 0.0):
        with pytest.raises(ValueError, match="eps"):
            LiftConfig(eps=eps)
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(data=".", lr=float("nan"))


# --- 7. the style cache ------------------------------------------------------------------------


def test_a_cache_entry_of_the_wrong_shapes_is_rebuilt_once_with_a_note(
    tmp_path, style, weights_file, _style_cache
):
    from stylenas_cli import stylestore

    content = write_photo(tmp_path / "a.png")
    args = ("stylize", content, style, "--weights", weights_file)
    assert run(*args, "-o", tmp_path / "1.png").exit_code == 0
    [entry] = list(_style_cache.glob("*.pt"))
    stats, size = stylestore.load(_style_cache, entry.stem)
    bad = {p: {k: type(v)(v.mean[:5], v.colour[:5, :5]) for k, v in d.items()}
           for p, d in stats.items()}  # fmt: skip
    stylestore.save(_style_cache, entry.stem, bad, size)
    again = run(*args, "-o", tmp_path / "2.png")
    assert again.exit_code == 0, again.output
    notes = [ln for ln in again.stderr.splitlines() if ln.startswith("note:")]
    assert len(notes) == 1 and "made again" in notes[0]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "1.png")),
                          np.asarray(Image.open(tmp_path / "2.png")))  # fmt: skip
    third = run(*args, "-o", tmp_path / "3.png")  # the entry was rebuilt: no note now
    assert third.exit_code == 0 and "note:" not in third.stderr


# --- 8. the Python API -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "array, fragment",
    [
        (lambda a: a.astype(np.float32), "[0, 1]"),
        (lambda a: a.astype(np.uint16) * 256, "uint16"),
        (lambda a: a.astype(np.int64), "int64"),
        (lambda a: a > 128, "bool"),
        (lambda a: a[..., 0], "shape"),
    ],
)
def test_the_api_refuses_what_it_does_not_document(tmp_path, weights_file, style, array, fragment):
    import stylenas_cli
    from stylenas_cli.images import ImageError

    pixels = np.asarray(Image.open(write_photo(tmp_path / "a.png")))
    with pytest.raises(ImageError) as err:
        stylenas_cli.stylize(array(pixels), style, weights=weights_file)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_the_api_reads_16_bit_pil_images_and_names_a_bad_style(tmp_path, weights_file, style):
    import stylenas_cli
    from stylenas_cli.images import ImageError

    dark = Image.fromarray(np.full((64, 80), 3000, np.uint16))  # I;16: 3000/65535 is dark
    same = stylenas_cli.stylize(dark, style, weights=weights_file, alpha=0.0)
    assert same.mode == "RGB" and abs(np.asarray(same).mean() - 3000 / 65535 * 255) < 1
    styled = stylenas_cli.stylize(dark, style, weights=weights_file)
    assert np.asarray(styled).mean() < 128  # not saturated to white
    pixels = np.asarray(Image.open(write_photo(tmp_path / "a.png")))
    for bad, fragment in ((tmp_path / "nope.jpg", "not found"), (tmp_path, "is a directory")):
        with pytest.raises(ImageError, match=fragment):
            stylenas_cli.stylize(pixels, bad, weights=weights_file)


# --- 9. Ray --------------------------------------------------------------------------------


def test_a_malformed_ray_address_is_a_usage_error_before_ray_starts(tmp_path, style):
    content = write_photo(tmp_path / "a.jpg")
    for address in ("garbage", "host:port", "ray://", "http://x:1"):
        result = run("stylize", content, style, "--backend", "ray", "--address", address)
        assert result.exit_code == 2 and "expected auto, HOST:PORT" in result.stderr
    assert run("search", "--address", "garbage").exit_code == 2


def test_ray_connections_fail_in_one_line_and_in_time(monkeypatch):
    import socket

    import stylenas_cli.raycluster as rc

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(rc.RayConnectError, match="cannot reach a Ray cluster"):
        rc.init_ray(object(), f"127.0.0.1:{port}", 5)
    real = rc.importlib.util.find_spec
    monkeypatch.setattr(rc.importlib.util, "find_spec",
                        lambda name: None if name == "grpc" else real(name))  # fmt: skip
    with pytest.raises(rc.RayConnectError, match=r"stylenas-cli\[ray\]"):
        rc.init_ray(object(), "ray://127.0.0.1:10001", 5)


def test_a_port_that_is_not_ray_times_out_in_one_line():
    pytest.importorskip("ray")
    code = (
        "import socket, sys\n"
        "from stylenas_cli.raycluster import init_ray, import_ray\n"
        "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen()\n"
        "try:\n"
        "    init_ray(import_ray(), f'127.0.0.1:{srv.getsockname()[1]}', 2)\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e); sys.exit(3)\n"
    )
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "RayConnectError no answer from a Ray cluster" in done.stdout
    assert time.perf_counter() - t0 < 60


# --- 10-12. names, folders, messages -----------------------------------------------------


def test_a_long_legal_name_is_written_and_an_illegal_one_refused_first(
    tmp_path, style, weights_file, monkeypatch
):
    content = write_photo(tmp_path / "a.jpg")
    legal = tmp_path / ("x" * 246 + ".jpg")  # 250 bytes: its temp name must be shortened
    result = run("stylize", content, style, "--weights", weights_file, "-o", legal)
    assert result.exit_code == 0, result.output
    assert legal.is_file() and not list(tmp_path.glob(".*.tmp"))
    import stylenas_cli.model as model

    monkeypatch.setattr(model.Stylizer, "from_pretrained", lambda *a, **k: pytest.fail("loaded"))
    too_long = tmp_path / ("é" * 130 + ".jpg")  # 264 bytes
    assert_refused(run("stylize", content, style, "-o", too_long), "bytes", "limit")


def test_the_input_folder_as_the_output_folder_works(tmp_path, style, weights_file):
    folder = tmp_path / "shoot"
    write_photo(folder / "a.jpg")
    write_photo(folder / "b.jpg")
    (tmp_path / "link").symlink_to(folder)
    for out in (folder, tmp_path / "link"):
        result = run("stylize", folder, "--style", style, "-o", out, "--weights", weights_file,
                     "--overwrite")  # fmt: skip
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == [
        "a.jpg", "a_stylized.jpg", "b.jpg", "b_stylized.jpg"]  # fmt: skip


def test_an_output_folder_that_cannot_be_made_is_refused_before_the_model_loads(
    tmp_path, style, monkeypatch
):
    import stylenas_cli.model as model

    monkeypatch.setattr(model.Stylizer, "from_pretrained", lambda *a, **k: pytest.fail("loaded"))
    content = write_photo(tmp_path / "a.jpg")
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    before = digests(tmp_path)
    assert_refused(run("stylize", content, style, "-o", f"{blocker}/out/"), "is a file")
    assert_nothing_written(tmp_path, before)
    if os.geteuid() != 0:  # root writes through permissions
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        assert_refused(run("stylize", content, style, "-o", f"{locked}/"), "cannot write")


def test_a_codec_the_container_cannot_hold_fails_before_the_model_loads(
    tmp_path, style, monkeypatch
):
    import stylenas_cli.model as model

    monkeypatch.setattr(model.Stylizer, "from_pretrained", lambda *a, **k: pytest.fail("loaded"))
    clip = make_clip(tmp_path / "c.mp4", seconds=0.25, size=(64, 48))
    result = run("video", clip, "-s", style, "-o", tmp_path / "out.webm", "--codec", "libx264")
    assert_refused(result, "libx264", ".webm", "VP8 or VP9")


def test_training_on_the_cpu_defaults_to_fp32(tmp_path):
    from stylenas_cli.train import TrainConfig, train

    photos = tmp_path / "photos"
    for i in range(3):
        write_photo(photos / f"{i}.jpg", size=(64, 48))
    cfg = TrainConfig(data=str(photos), out=str(tmp_path / "t"), steps=1, batch=1, size=32,
                      device="cpu", val_size=32, levels=("relu1_1",))  # fmt: skip
    assert cfg.precision == "auto"
    ckpt = torch.load(train(cfg, log=lambda m: None), weights_only=True)
    assert ckpt["config"]["precision"] == "fp32"


def test_a_folder_held_by_another_process_is_refused_and_freed_when_it_ends(tmp_path):
    from stylenas_cli.files import OutputError, exclusive_dir

    held = tmp_path / "run"
    script = (
        "import sys\nfrom stylenas_cli.files import exclusive_dir\n"
        f"with exclusive_dir({str(held)!r}):\n    print('held', flush=True)\n    sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = rf"in use by another stylenas run \(pid {holder.pid}\)"
        with pytest.raises(OutputError, match=busy):
            with exclusive_dir(held):
                pass
    finally:
        holder.communicate("", timeout=30)  # its block ends: the folder, empty, goes too
    assert holder.returncode == 0 and not held.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    with exclusive_dir(kept) as folder:
        (folder / "last.pt").write_bytes(b"x")
    assert sorted(p.name for p in kept.iterdir()) == [".lock", "last.pt"]

"""The ``stylenas stylize`` command (cli.py over stylize.py): outputs, errors, masks, JSON."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import PHOTO_SIZE, alpha_ramp, write_labels, write_photo
from stylenas_cli.cli import main
from stylenas_cli.genotype import NAMED

pytestmark = pytest.mark.usefixtures("one_thread", "fast_encoder")

W, H = PHOTO_SIZE
STYLE_SIZE = (96, 72)


@pytest.fixture
def style(tmp_path) -> Path:
    return write_photo(tmp_path / "style" / "ref.jpg", size=STYLE_SIZE, source="coffee")


@pytest.fixture
def stylize(weights_file):
    """Run ``stylenas stylize ARGS --weights <random decoder>``."""

    def run(*args, weights: bool = True):
        argv = ["stylize", *map(str, args)]
        if weights:
            argv += ["--weights", str(weights_file)]
        return CliRunner().invoke(main, argv)

    return run


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


def _json_lines(result) -> list[dict]:
    """One object per content (the last line, ``{"summary": ...}``, left out)."""
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert set(lines[-1]) == {"summary"}, lines[-1]
    return lines[:-1]


def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def _assert_clean_failure(result, *fragments: str) -> str:
    """Exit 1, no traceback, one ``error:`` line holding every fragment; returns it."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    errors = _error_lines(result)
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def _no_tmp_files(*folders: Path) -> None:
    for folder in folders:
        assert sorted(folder.rglob(".*.tmp")) == [], folder


# --- where outputs go ----------------------------------------------------------------------


def test_single_content_default_output_beside_it(tmp_path, style, stylize):
    content = write_photo(tmp_path / "in" / "a.jpg")
    result = stylize(content, style)
    assert result.exit_code == 0, result.output
    out = tmp_path / "in" / "a_stylized.jpg"
    assert sorted(p.name for p in out.parent.iterdir()) == ["a.jpg", "a_stylized.jpg"]
    with Image.open(out) as img:
        assert img.format == "JPEG" and img.mode == "RGB" and img.size == (W, H)
        pixels = np.asarray(img, np.float32)
    assert np.abs(pixels - np.asarray(Image.open(content), np.float32)).mean() > 1
    assert not (style.parent / "ref_stylized.jpg").exists()
    assert _error_lines(result) == []


def test_output_file_option(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.jpg")
    out = tmp_path / "new" / "result.png"
    result = stylize(content, style, "-o", out)
    assert result.exit_code == 0, result.output
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (W, H)
    assert not (tmp_path / "a_stylized.jpg").exists()
    _no_tmp_files(tmp_path)


def test_output_directory_with_trailing_slash(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.jpg")
    result = stylize(content, style, "-o", f"{tmp_path / 'outdir'}/")
    assert result.exit_code == 0, result.output
    assert _size(tmp_path / "outdir" / "a_stylized.jpg") == (W, H)


def test_output_without_image_extension(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.jpg")
    result = stylize(content, style, "-o", tmp_path / "result")
    _assert_clean_failure(result, "image extension")
    assert not (tmp_path / "result").exists()


def test_several_contents_to_output_directory_json(tmp_path, style, stylize):
    a = write_photo(tmp_path / "a.jpg")
    b = write_photo(tmp_path / "b.png", size=(64, 96), source="coffee")  # portrait
    c = write_photo(tmp_path / "c.jpg", size=(72, 48))
    out = tmp_path / "out"
    result = stylize(a, b, c, "--style", style, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    expected = {
        "a.jpg": ("a_stylized.jpg", (W, H)),
        "b.png": ("b_stylized.png", (64, 96)),
        "c.jpg": ("c_stylized.jpg", (72, 48)),
    }
    assert sorted(p.name for p in out.iterdir()) == sorted(n for n, _ in expected.values())
    records = _json_lines(result)
    assert len(records) == 3
    for rec in records:
        keys = {"content", "output", "ok", "width", "height", "seconds", "device", "style"}
        assert set(rec) == keys
        assert rec["style"] == str(style)
        name, size = expected[Path(rec["content"]).name]
        assert rec["ok"] is True
        assert rec["output"] == str(out / name)
        assert (rec["width"], rec["height"]) == size == _size(out / name)
        assert isinstance(rec["seconds"], float) and rec["seconds"] >= 0
        assert rec["device"].split(":")[0] in ("cpu", "cuda")


def test_directory_of_contents(tmp_path, style, stylize):
    photos = tmp_path / "photos"
    write_photo(photos / "x.jpg")
    write_photo(photos / "y.PNG", size=(64, 64), source="coffee")
    (photos / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    result = stylize(photos, "-s", style, "-o", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["x_stylized.jpg", "y_stylized.PNG"]
    assert _size(out / "y_stylized.PNG") == (64, 64)


def test_directory_without_images(tmp_path, style, stylize):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    _assert_clean_failure(stylize(empty, style), "holds no images")


def test_last_positional_is_the_style(tmp_path, stylize):
    a = write_photo(tmp_path / "a.jpg")
    b = write_photo(tmp_path / "b.jpg", source="coffee")
    s = write_photo(tmp_path / "s.jpg", size=STYLE_SIZE, source="coffee")
    result = stylize(a, b, s)
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["a.jpg", "a_stylized.jpg", "b.jpg", "b_stylized.jpg", "s.jpg"]


def test_with_style_option_every_positional_is_content(tmp_path, style, stylize):
    a = write_photo(tmp_path / "a.jpg")
    s = write_photo(tmp_path / "s.jpg", size=STYLE_SIZE, source="coffee")
    result = stylize(a, s, "--style", style)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a_stylized.jpg").is_file()
    assert (tmp_path / "s_stylized.jpg").is_file()


def test_content_without_style_is_a_usage_error(tmp_path, stylize):
    a = write_photo(tmp_path / "a.jpg")
    result = stylize(a)
    assert result.exit_code == 2
    assert "STYLE" in result.stderr
    assert not (tmp_path / "a_stylized.jpg").exists()


def test_duplicate_output_names(tmp_path, style, stylize):
    a1 = write_photo(tmp_path / "one" / "a.jpg")
    a2 = write_photo(tmp_path / "two" / "a.jpg")
    result = stylize(a1, a2, "-s", style, "-o", tmp_path / "out")
    _assert_clean_failure(result, "same output file")
    assert not (tmp_path / "out").exists()


# --- existing outputs ----------------------------------------------------------------------


def test_existing_output_needs_overwrite(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.jpg")
    out = tmp_path / "a_stylized.jpg"
    out.write_bytes(b"keep me")
    result = stylize(content, style, "--json")
    _assert_clean_failure(result, str(out), "--overwrite")
    assert out.read_bytes() == b"keep me"
    [rec] = _json_lines(result)
    assert rec["ok"] is False and "--overwrite" in rec["error"]
    _no_tmp_files(tmp_path)


def test_overwrite_replaces(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.jpg")
    out = tmp_path / "a_stylized.jpg"
    out.write_bytes(b"replace me")
    result = stylize(content, style, "--overwrite")
    assert result.exit_code == 0, result.output
    with Image.open(out) as img:
        assert img.format == "JPEG" and img.size == (W, H)
    _no_tmp_files(tmp_path)


# --- bad inputs ----------------------------------------------------------------------------


def _bad_content(path: Path, kind: str) -> Path:
    if kind == "text":
        path.write_text("hello, I am not a JPEG\n" * 10)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        write_photo(path, quality=95)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "tiny":
        write_photo(path, size=(40, 20))
    return path


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("missing", "file not found"),
        ("text", "not a readable image"),
        ("empty", "empty file"),
        ("truncated", "not a readable image"),
        ("tiny", "40x20; both sides must be >= 32 px"),
    ],
)
def test_bad_content(tmp_path, style, stylize, kind, reason):
    content = _bad_content(tmp_path / "bad.jpg", kind)
    result = stylize(content, style, "--json")
    _assert_clean_failure(result, str(content), reason)
    [rec] = _json_lines(result)
    assert rec["ok"] is False and rec["output"] is None and reason in rec["error"]
    assert not (tmp_path / "bad_stylized.jpg").exists()
    _no_tmp_files(tmp_path)
    assert "1 of 1 failed" in result.stderr


def test_missing_style(tmp_path, stylize):
    content = write_photo(tmp_path / "a.jpg")
    result = stylize(content, tmp_path / "nostyle.jpg")
    _assert_clean_failure(result, "nostyle.jpg", "not found")
    assert not (tmp_path / "a_stylized.jpg").exists()


@pytest.mark.parametrize("kind", ["text", "tiny"])
def test_bad_style(tmp_path, stylize, kind):
    content = write_photo(tmp_path / "a.jpg")
    bad = _bad_content(tmp_path / "style.jpg", kind)
    result = stylize(content, bad)
    _assert_clean_failure(result, str(bad))
    assert not (tmp_path / "a_stylized.jpg").exists()


def test_one_bad_content_does_not_stop_the_others(tmp_path, style, stylize):
    good1 = write_photo(tmp_path / "in" / "a.jpg")
    bad = _bad_content(tmp_path / "in" / "b.jpg", "text")
    good2 = write_photo(tmp_path / "in" / "c.png", size=(64, 64))
    out = tmp_path / "out"
    result = stylize(good1, bad, good2, "-s", style, "-o", out, "--json")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir()) == ["a_stylized.jpg", "c_stylized.png"]
    assert _size(out / "c_stylized.png") == (64, 64)
    records = {Path(r["content"]).name: r for r in _json_lines(result)}
    assert [records[n]["ok"] for n in ("a.jpg", "b.jpg", "c.png")] == [True, False, True]
    errors = _error_lines(result)
    assert len(errors) == 1 and str(bad) in errors[0]
    assert "1 of 3 failed" in result.stderr
    _no_tmp_files(tmp_path)


def test_write_failure_leaves_no_temp_file(tmp_path, style, stylize):
    a = write_photo(tmp_path / "a.jpg")
    b = write_photo(tmp_path / "b.jpg", source="coffee")
    out = tmp_path / "out"
    (out / "a_stylized.jpg").mkdir(parents=True)  # cannot be replaced by a file
    result = stylize(a, b, "-s", style, "-o", out, "--overwrite")
    assert result.exit_code == 1
    _assert_clean_failure(result, "could not write output")
    assert (out / "a_stylized.jpg").is_dir()
    assert _size(out / "b_stylized.jpg") == (W, H)
    _no_tmp_files(out)
    assert sorted(p.name for p in out.iterdir()) == ["a_stylized.jpg", "b_stylized.jpg"]


# --- options -------------------------------------------------------------------------------


def test_unknown_arch(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.jpg")
    result = stylize(content, style, "--arch", "bogus")
    _assert_clean_failure(result, "unknown architecture 'bogus'")
    assert result.stderr.strip().splitlines() == _error_lines(result)  # that line only
    assert not (tmp_path / "a_stylized.jpg").exists()


def test_genotype_mismatch_between_arch_and_weights(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.jpg")
    result = stylize(content, style, "--arch", "photonet")
    _assert_clean_failure(result, str(NAMED["photonas"]), str(NAMED["photonet"]))
    assert not (tmp_path / "a_stylized.jpg").exists()


def test_arch_matching_weights(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.jpg")
    result = stylize(content, style, "--arch", str(NAMED["photonas"]))
    assert result.exit_code == 0, result.output


def test_missing_weights_file(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.jpg")
    result = stylize(content, style, "--weights", tmp_path / "none.pt", weights=False)
    _assert_clean_failure(result, "weights file not found", "none.pt")


def test_shipped_weights_missing(tmp_path, style, stylize, monkeypatch):
    monkeypatch.setenv("STYLENAS_WEIGHTS_DIR", str(tmp_path / "nothing"))
    content = write_photo(tmp_path / "a.jpg")
    result = stylize(content, style, weights=False)
    _assert_clean_failure(result, "photonas.pt are missing")


def test_arch_from_best_json(tmp_path, style, stylize, weights_file):
    run = tmp_path / "run"
    run.mkdir()
    (run / "x.pt").write_bytes(weights_file.read_bytes())
    best = run / "best.json"
    best.write_text(json.dumps({"genotype": str(NAMED["photonas"]), "checkpoint": "x.pt"}))
    content = write_photo(tmp_path / "a.jpg")
    result = stylize(content, style, "--arch", best, weights=False)
    assert result.exit_code == 0, result.output
    assert _size(tmp_path / "a_stylized.jpg") == (W, H)


@pytest.mark.parametrize("alpha", ["1.5", "-0.1", "nan"])
def test_alpha_out_of_range(tmp_path, style, stylize, alpha):
    content = write_photo(tmp_path / "a.jpg")
    result = stylize(content, style, f"--alpha={alpha}")
    assert result.exit_code == 2
    assert "--alpha" in result.stderr
    assert "0<=x<=1" in result.stderr or "finite" in result.stderr
    assert not (tmp_path / "a_stylized.jpg").exists()


def test_alpha_changes_the_result(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.png")
    assert stylize(content, style, "-o", tmp_path / "full.png").exit_code == 0
    assert stylize(content, style, "-o", tmp_path / "none.png", "--alpha", "0").exit_code == 0
    full = np.asarray(Image.open(tmp_path / "full.png"), np.float32)
    none = np.asarray(Image.open(tmp_path / "none.png"), np.float32)
    assert np.abs(full - none).mean() > 1
    # --alpha 0 gives the content back, pixel for pixel (its help says so).
    assert np.array_equal(none, np.asarray(Image.open(content), np.float32))


def test_max_size_shrinks_long_side(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.png")
    result = stylize(content, style, "--max-size", "48", "--json")
    assert result.exit_code == 0, result.output
    assert _size(tmp_path / "a_stylized.png") == (48, 38)
    [rec] = _json_lines(result)
    assert (rec["width"], rec["height"]) == (48, 38)


def test_max_size_below_minimum_rejected(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.png")
    result = stylize(content, style, "--max-size", "16")
    assert result.exit_code == 2 and "--max-size" in result.stderr


def test_batching_does_not_change_results(tmp_path, style, stylize):
    a = write_photo(tmp_path / "a.png")
    b = write_photo(tmp_path / "b.png", source="coffee")
    # fp32: under bf16 (auto on CPUs with AMX) the kernels round differently per batch size.
    fp32 = ("-s", style, "--precision", "fp32")
    assert stylize(a, b, *fp32, "-o", tmp_path / "one", "--batch-size", "1").exit_code == 0
    assert stylize(a, b, *fp32, "-o", tmp_path / "two", "--batch-size", "2").exit_code == 0
    for name in ("a_stylized.png", "b_stylized.png"):
        one = np.asarray(Image.open(tmp_path / "one" / name), np.int16)
        two = np.asarray(Image.open(tmp_path / "two" / name), np.int16)
        assert np.abs(one - two).max() <= 1


def test_quiet_success_is_silent(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.jpg")
    result = stylize(content, style, "-q")
    assert result.exit_code == 0
    assert result.stdout == "" and result.stderr == ""


@pytest.mark.parametrize("name", ["shot[bold].png", "shot[/x].png"])
def test_file_names_with_brackets(tmp_path, style, stylize, monkeypatch, name):
    monkeypatch.chdir(tmp_path)  # short relative paths: no line wrapping in the report
    write_photo(tmp_path / name)
    result = stylize(name, style)
    assert result.exit_code == 0, result.output
    out_name = name.replace(".png", "_stylized.png")
    assert (tmp_path / out_name).is_file()
    assert out_name in result.stderr


# --- image properties carried through ------------------------------------------------------


def test_rgba_png_keeps_alpha(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.png", mode="RGBA")
    result = stylize(content, style)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "a_stylized.png") as img:
        assert img.mode == "RGBA" and img.size == (W, H)
        np.testing.assert_array_equal(np.asarray(img)[..., 3], alpha_ramp())


def test_rgba_png_to_jpeg_output(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.png", mode="RGBA")
    result = stylize(content, style, "-o", tmp_path / "out.jpg")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out.jpg") as img:
        assert img.format == "JPEG" and img.mode == "RGB" and img.size == (W, H)


def test_exif_rotated_content(tmp_path, style, stylize):
    exif = Image.Exif()
    exif[0x0112] = 6
    content = write_photo(tmp_path / "a.jpg", exif=exif.tobytes())
    result = stylize(content, style)
    assert result.exit_code == 0, result.output
    assert _size(tmp_path / "a_stylized.jpg") == (H, W)


@pytest.mark.parametrize("mode, name", [("L", "g.png"), ("CMYK", "k.jpg")])
def test_grayscale_and_cmyk_contents(tmp_path, style, stylize, mode, name):
    content = write_photo(tmp_path / name, mode=mode)
    out = tmp_path / "out.png"
    result = stylize(content, style, "-o", out)
    assert result.exit_code == 0, result.output
    with Image.open(out) as img:
        assert img.mode == "RGB" and img.size == (W, H)


# --- masks ---------------------------------------------------------------------------------


def test_masked_stylisation(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.jpg")
    cmask = write_labels(tmp_path / "a_mask.png", (W, H), split=0.3)
    smask = write_labels(tmp_path / "s_mask.png", STYLE_SIZE, split=0.6)
    out = tmp_path / "out.png"
    result = stylize(content, style, "--content-mask", cmask, "--style-mask", smask, "-o", out)
    assert result.exit_code == 0, result.output
    assert _size(out) == (W, H)


def test_masked_stylisation_with_max_size(tmp_path, style, stylize):
    # Masks are drawn at the photos' original sizes; --max-size shrinks them along.
    content = write_photo(tmp_path / "a.jpg")
    cmask = write_labels(tmp_path / "a_mask.png", (W, H))
    smask = write_labels(tmp_path / "s_mask.png", STYLE_SIZE)
    out = tmp_path / "out.png"
    masks = ("--content-mask", cmask, "--style-mask", smask)
    result = stylize(content, style, *masks, "-o", out, "--max-size", "48")
    assert result.exit_code == 0, result.output
    assert _size(out) == (48, 38)


def test_masks_change_the_result(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.png")
    cmask = write_labels(tmp_path / "a_mask.png", (W, H))
    smask = write_labels(tmp_path / "s_mask.png", STYLE_SIZE)
    masked, plain = tmp_path / "masked.png", tmp_path / "plain.png"
    args = ("--content-mask", cmask, "--style-mask", smask)
    assert stylize(content, style, *args, "-o", masked).exit_code == 0
    assert stylize(content, style, "-o", plain).exit_code == 0
    diff = np.abs(
        np.asarray(Image.open(masked), np.float32) - np.asarray(Image.open(plain), np.float32)
    )
    assert diff.mean() > 0.5


def test_mask_snap_moves_the_drawn_boundary_and_zero_keeps_it(tmp_path, style, stylize):
    # The drawn split is not on the photo's edges: snapping it (the default) changes the
    # result, --mask-snap 0 uses the mask as drawn; a negative radius is refused.
    content = write_photo(tmp_path / "a.png")
    cmask = write_labels(tmp_path / "a_mask.png", (W, H), split=0.45)
    smask = write_labels(tmp_path / "s_mask.png", STYLE_SIZE)
    args = ("--content-mask", cmask, "--style-mask", smask)
    outs = {}
    for snap in ("default", "0", "8"):
        outs[snap] = tmp_path / f"out_{snap}.png"
        extra = () if snap == "default" else ("--mask-snap", snap)
        result = stylize(content, style, *args, *extra, "-o", outs[snap])
        assert result.exit_code == 0, result.output

    def pixels(name):
        return np.asarray(Image.open(outs[name]), np.float32)

    assert np.array_equal(pixels("default"), pixels("8"))
    assert np.abs(pixels("default") - pixels("0")).mean() > 0.05
    bad = stylize(content, style, *args, "--mask-snap", "-1", "-o", tmp_path / "bad.png")
    assert bad.exit_code == 2 and not (tmp_path / "bad.png").exists()


def test_content_mask_size_mismatch(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.jpg")
    cmask = write_labels(tmp_path / "a_mask.png", (40, 40))
    result = stylize(content, style, "--content-mask", cmask)
    _assert_clean_failure(result, "a_mask.png", "40x40", f"{W}x{H}", "must match")
    assert not (tmp_path / "a_stylized.jpg").exists()
    _no_tmp_files(tmp_path)


def test_style_mask_size_mismatch(tmp_path, style, stylize):
    content = write_photo(tmp_path / "a.jpg")
    smask = write_labels(tmp_path / "s_mask.png", (W, H))
    result = stylize(content, style, "--style-mask", smask)
    _assert_clean_failure(result, "s_mask.png", "must match")
    assert not (tmp_path / "a_stylized.jpg").exists()


def test_content_mask_needs_one_content(tmp_path, style, stylize):
    a = write_photo(tmp_path / "a.jpg")
    b = write_photo(tmp_path / "b.jpg")
    cmask = write_labels(tmp_path / "mask.png", (W, H))
    result = stylize(a, b, "-s", style, "--content-mask", cmask, "-o", tmp_path / "out")
    _assert_clean_failure(result, "exactly one content")
    assert not (tmp_path / "out").exists()


# --- working resolution and the lift (issue 13) ---------------------------------------------


@pytest.fixture
def network_sizes(monkeypatch) -> list[tuple[int, int]]:
    """The (H, W) of every batch the network (Stylizer.stylize) is given."""
    from stylenas_cli.model import Stylizer

    seen: list[tuple[int, int]] = []
    real = Stylizer.stylize

    def spy(self, content, *args, **kwargs):
        seen.append(tuple(content.shape[-2:]))
        return real(self, content, *args, **kwargs)

    monkeypatch.setattr(Stylizer, "stylize", spy)
    return seen


def test_a_large_photo_goes_through_the_network_at_the_work_size(
    tmp_path, style, stylize, network_sizes
):
    content = write_photo(tmp_path / "big.jpg", size=(640, 480))
    out = tmp_path / "big_out.png"
    result = stylize(content, "--style", style, "-o", out, "--work-size", "96", "--json")
    assert result.exit_code == 0, result.output
    assert network_sizes == [(72, 96)]  # never the full 480x640
    assert _size(out) == (640, 480)  # the output has the photo's own size
    record = _json_lines(result)[0]
    assert (record["width"], record["height"]) == (640, 480)
    # The lift keeps the photo's edges: the output follows the content far better than the
    # network's own 96 px result blown up would.
    got = np.asarray(Image.open(out).convert("L"), dtype=np.float64)
    photo = np.asarray(Image.open(content).convert("L"), dtype=np.float64)
    grad = lambda a: np.abs(np.diff(a, axis=1))  # noqa: E731
    assert np.corrcoef(grad(got).ravel(), grad(photo).ravel())[0, 1] > 0.5


def test_native_runs_the_network_on_every_pixel(tmp_path, style, stylize, network_sizes):
    content = write_photo(tmp_path / "c.jpg", size=(160, 120))
    result = stylize(content, "--style", style, "-o", tmp_path / "o.png", "--work-size", "native")
    assert result.exit_code == 0, result.output
    assert network_sizes == [(120, 160)]


def test_a_photo_smaller_than_the_work_size_is_the_plain_network_output(tmp_path, style):
    from stylenas_cli.images import load_image
    from stylenas_cli.model import Stylizer

    st = Stylizer("photonas").eval()
    img = load_image(write_photo(tmp_path / "c.png", size=(80, 64)))
    cache = st.load_style(style)
    lifted = st.stylize_at(img.tensor(), cache, work_size=512)
    assert torch.equal(lifted, st.stylize(img.rgb, cache))


@pytest.mark.parametrize("value", ["0", "abc", "16"])
def test_bad_work_size_is_a_usage_error(tmp_path, style, stylize, value):
    content = write_photo(tmp_path / "c.jpg")
    result = stylize(content, "--style", style, "--work-size", value)
    assert result.exit_code == 2 and "--work-size" in result.output


def test_a_job_too_big_for_memory_is_refused_in_one_line(tmp_path, style, stylize, monkeypatch):
    monkeypatch.setattr("stylenas_cli.memory.available_bytes", lambda device="cpu": 300 << 20)
    content = write_photo(tmp_path / "c.jpg", size=(640, 480))
    out = tmp_path / "o.png"
    result = stylize(content, "--style", style, "-o", out, "--work-size", "native")
    line = _assert_clean_failure(result, "c.jpg", "640x480", "GiB", "--work-size")
    assert "available" in line
    assert not out.exists()
    _no_tmp_files(tmp_path)


def test_cpu_allocator_failure_retries_one_by_one_then_is_one_clean_line(
    tmp_path, style, stylize, monkeypatch
):
    from stylenas_cli.model import Stylizer

    calls: list[int] = []

    def fail(self, content, *args, **kwargs):
        calls.append(content.shape[0])
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:124] data. DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 6144000000 bytes. Error code 12"
        )

    monkeypatch.setattr(Stylizer, "stylize", fail)
    folder = tmp_path / "photos"
    for name in ("a.jpg", "b.jpg"):
        write_photo(folder / name)
    result = stylize(folder, "--style", style, "-o", tmp_path / "out")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert calls == [2, 1, 1]  # the batch, then each photo alone
    errors = _error_lines(result)
    assert len(errors) == 2 and all("out of memory" in e for e in errors)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# --- pipes and trees (issue 16) ------------------------------------------------------------

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "bench" / "stylenas" / "content"


def test_a_photo_piped_through_stdin_and_stdout_equals_the_file_paths_result(
    tmp_path, style, stylize, weights_file
):
    real = REAL / "00.jpg"
    content = real if real.is_file() else write_photo(tmp_path / "c.jpg")
    by_path = tmp_path / "by_path.jpg"
    assert stylize(content, "--style", style, "-o", by_path).exit_code == 0
    argv = ["stylize", "-", "--style", str(style), "-o", "-", "--weights", str(weights_file)]
    piped = CliRunner().invoke(main, argv, input=content.read_bytes())
    assert piped.exit_code == 0, piped.stderr
    assert piped.stdout_bytes == by_path.read_bytes()  # byte for byte, nothing else on stdout
    as_png = CliRunner().invoke(main, [*argv, "--format", "png"], input=content.read_bytes())
    assert as_png.exit_code == 0 and as_png.stdout_bytes.startswith(b"\x89PNG")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(as_png.stdout_bytes))).shape,
                          np.asarray(Image.open(by_path)).shape)  # fmt: skip


def test_pipe_misuse_is_a_usage_error(tmp_path, style, stylize):
    a, b = write_photo(tmp_path / "a.jpg"), write_photo(tmp_path / "b.jpg")
    assert stylize(a, b, "--style", style, "-o", "-").exit_code == 2
    assert stylize(a, "--style", style, "-o", "-", "--json").exit_code == 2
    garbage = CliRunner().invoke(main, ["stylize", "-", "--style", str(style), "-o", "-"],
                                 input=b"not an image")  # fmt: skip
    assert garbage.exit_code == 1 and garbage.stdout_bytes == b""
    assert "not a readable image" in garbage.stderr


def test_recursive_walks_sub_folders_and_mirrors_the_tree(tmp_path, style, stylize):
    src = tmp_path / "library"
    write_photo(src / "b.jpg")
    write_photo(src / "trip" / "a.jpg", source="coffee")
    write_photo(src / "trip" / "day2" / "c.png")
    write_photo(src / ".thumbs" / "hidden.jpg")
    out = tmp_path / "out"
    flat = stylize(src, "--style", style, "-o", f"{out}/", "--json")
    assert flat.exit_code == 0, flat.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*")) == ["b_stylized.jpg"]
    deep = stylize(src, "--style", style, "-o", f"{out}/", "-r", "--skip-existing", "--json")
    assert deep.exit_code == 0, deep.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*")) == [
        "b_stylized.jpg",
        "trip/a_stylized.jpg",
        "trip/day2/c_stylized.png",
    ]
    summary = json.loads(deep.stdout.splitlines()[-1])["summary"]
    assert summary == {"written": 2, "skipped": 1, "failed": 0}

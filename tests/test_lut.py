"""3D LUTs: applying, fitting, the .cube and HALD files (and what ffmpeg makes of ours), the
``lut`` command, ``stylize --lut``, shots and ``video --mode lut``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import assert_nothing_written, assert_refused, digests, photo_array, write_photo
from stylenas_cli.cli import main
from stylenas_cli.lut import (
    Lut3D,
    LutError,
    colour_pairs,
    fit_lut,
    lookup,
    read_cube,
    read_hald,
    read_lut,
    write_cube,
    write_hald,
)
from stylenas_cli.video.shots import ShotTracker, blend_weights

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def smooth_lut(size: int = 17, seed: int = 0) -> Lut3D:
    """A known smooth look: the identity plus low-frequency offsets (a warm, contrasty tint)."""
    base = Lut3D.identity(size).values
    r, g, b = base[..., 0], base[..., 1], base[..., 2]
    gen = torch.Generator().manual_seed(seed)
    k = 0.05 + 0.05 * torch.rand(3, generator=gen)
    offset = torch.stack(
        [k[0] * torch.sin(np.pi * r) + 0.03 * g, -k[1] * torch.sin(np.pi * g) * b, -k[2] * b * r],
        -1,
    )
    return Lut3D((base + offset).clamp(0, 1))


def test_the_identity_lut_is_the_identity():
    pixels = photo_array("astronaut", (120, 90))
    assert np.array_equal(Lut3D.identity(33).apply(pixels), pixels)
    assert np.array_equal(Lut3D.identity(2).apply(pixels), pixels)  # trilinear: exact
    floats = pixels.astype(np.float32) / 255.0  # a 16-bit source's path
    assert np.array_equal(Lut3D.identity(33).apply(floats), pixels)


def test_the_256_table_is_trilinear_interpolation():
    lut = smooth_lut(9)
    colours = torch.randint(0, 256, (5000, 3))
    want = lut(colours.float() / 255).mul(255).round().clamp(0, 255).to(torch.uint8).numpy()
    got = lookup(lut.table(), colours.to(torch.uint8)).numpy()
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_a_photo_mapped_by_a_known_lut_gives_that_lut_back():
    true = smooth_lut(17)
    photo = photo_array("coffee", (160, 120))
    photo = photo.copy()  # writable: a tensor shares it
    mapped = true(torch.from_numpy(photo).reshape(-1, 3).float() / 255.0).reshape(photo.shape)
    src, dst, count = colour_pairs(photo, mapped.numpy(), bits=8)
    fitted = fit_lut(src, dst, 17, count)
    seen = torch.from_numpy(photo).reshape(-1, 3).float() / 255.0
    error = (fitted(seen) - true(seen)).abs().max()
    assert float(error) <= 1 / 255
    # Colours no photo showed are filled smoothly: no node far from its neighbours.
    v = fitted.values
    assert float(v.diff(dim=0).abs().max()) < 0.5 and float(v.diff(dim=2).abs().max()) < 0.5


def test_a_few_odd_pixels_do_not_bend_the_look():
    photo = photo_array("astronaut", (120, 90)).reshape(-1, 3)
    src = torch.from_numpy(photo.copy()).double() / 255
    dst = src.clone() * 0.8  # the look: darker
    dst[:20] = 1.0  # twenty pixels of something else (a specular highlight)
    fitted = fit_lut(src, dst, 17)
    rest = fitted(src[20:].float()) - dst[20:].float()
    assert float(rest.abs().mean()) < 2 / 255


def test_cube_files_round_trip(tmp_path):
    lut = smooth_lut(9)
    lut.title = "warm look"
    path = write_cube(lut, tmp_path / "look.cube")
    text = path.read_text().splitlines()
    assert text[:2] == ['TITLE "warm look"', "LUT_3D_SIZE 9"]
    assert len(text) == 4 + 9**3
    back = read_cube(path)
    assert back.title == "warm look" and torch.allclose(back.values, lut.values, atol=1e-6)
    # red varies fastest: the second row is (r=1, g=0, b=0) of the lattice
    assert [float(x) for x in text[5].split()] == pytest.approx(
        lut.values[0, 0, 1].tolist(), abs=1e-6
    )


def test_hald_images_round_trip(tmp_path):
    lut = smooth_lut(16)  # level 4: 64 x 64 pixels
    path = write_hald(lut, tmp_path / "look.png")
    assert Image.open(path).size == (64, 64)
    back = read_hald(path)
    assert back.size == 16 and float((back.values - lut.values).abs().max()) <= 0.5 / 255 + 1e-6
    identity = write_hald(Lut3D.identity(64), tmp_path / "identity.png")  # level 8
    assert Image.open(identity).size == (512, 512)
    pixels = photo_array("astronaut", (64, 48))
    assert np.abs(read_lut(identity).apply(pixels).astype(int) - pixels).max() <= 1
    with pytest.raises(LutError, match="square"):
        write_hald(Lut3D.identity(33), tmp_path / "bad.png")


def test_ffmpeg_applies_our_cube_as_we_do(tmp_path):
    lut = smooth_lut(17)
    write_cube(lut, tmp_path / "look.cube")
    src = tmp_path / "in.png"
    Image.fromarray(photo_array("coffee", (128, 96))).save(src)
    out = tmp_path / "ffmpeg.png"
    run = subprocess.run(
        [FFMPEG, "-v", "error", "-y", "-i", str(src), "-vf",
         f"lut3d=file={tmp_path / 'look.cube'}:interp=trilinear", "-pix_fmt", "rgb24", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    theirs = np.asarray(Image.open(out)).astype(int)
    ours = lut.apply(np.asarray(Image.open(src))).astype(int)
    assert np.abs(theirs - ours).max() <= 1


BAD_CUBES = {
    "too few rows": ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 7, "needs 8 rows, found 7"),
    "a missing value": ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 7 + "0 0\n", ":9: expected 3 numbers"),
    "not a number": ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 7 + "0 x 0\n", ":9: not a number"),
    "NaN": ("LUT_3D_SIZE 2\n" + "0 0 0\n" * 7 + "0 nan 0\n", ":9:"),
    "1D LUT": ("LUT_1D_SIZE 4\n0 0 0\n" * 1, ":1: a 1D LUT"),
    "size over 256": ("LUT_3D_SIZE 300\n", ":1: LUT_3D_SIZE 300 is outside"),
    "no size": ("0 0 0\n", "before LUT_3D_SIZE"),
}


@pytest.mark.parametrize("case", list(BAD_CUBES))
def test_a_malformed_cube_is_one_line_naming_the_file(tmp_path, case):
    text, fragment = BAD_CUBES[case]
    path = tmp_path / "bad.cube"
    path.write_text(text)
    with pytest.raises(LutError) as err:
        read_lut(path)
    assert str(path) in str(err.value) and fragment in str(err.value)
    assert "\n" not in str(err.value)
    content = write_photo(tmp_path / "a.jpg")
    before = digests(tmp_path)
    result = CliRunner().invoke(main, ["stylize", str(content), "--lut", str(path)])
    assert_refused(result, "bad.cube")
    assert_nothing_written(tmp_path, before)


def test_a_hald_of_the_wrong_size_is_refused(tmp_path):
    path = tmp_path / "hald.png"
    Image.new("RGB", (100, 100)).save(path)
    with pytest.raises(LutError, match="HALD CLUT is a square of side"):
        read_lut(path)


def test_stylize_with_a_lut_applies_it_to_every_photo_with_the_batch_rules(tmp_path):
    lut = smooth_lut(17)
    cube = write_cube(lut, tmp_path / "look.cube")
    photos = tmp_path / "photos"
    write_photo(photos / "a.png")
    write_photo(photos / "sub" / "b.png", source="coffee", size=(64, 96))
    run = CliRunner().invoke
    out = tmp_path / "out"
    result = run(main, ["stylize", str(photos), "--lut", str(cube), "-o", str(out), "-r", "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(x) for x in result.stdout.splitlines()]
    assert records[-1]["summary"] == {"written": 2, "skipped": 0, "failed": 0}
    got = np.asarray(Image.open(out / "a_stylized.png"))
    assert np.array_equal(got, lut.apply(np.asarray(Image.open(photos / "a.png"))))
    assert (out / "sub" / "b_stylized.png").is_file()
    again = run(main, ["stylize", str(photos), "--lut", str(cube), "-o", str(out), "-r",
                       "--skip-existing", "--json"])  # fmt: skip
    assert json.loads(again.stdout.splitlines()[-1])["summary"]["skipped"] == 2
    clash = run(main, ["stylize", str(photos), "--lut", str(cube), "--style", str(cube)])
    assert clash.exit_code == 2 and "--lut" in clash.output


def test_the_lut_command_exports_a_look_that_stylize_applies(tmp_path, weights_file, one_thread):
    content = write_photo(tmp_path / "a.png", size=(96, 72))
    style = write_photo(tmp_path / "s.png", size=(96, 72), source="coffee")
    run = CliRunner().invoke
    cube = tmp_path / "look.cube"
    result = run(main, ["lut", str(content), "-s", str(style), "-o", str(cube), "--weights",
                        str(weights_file), "--json", "--no-cache"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    # (a random-weights decoder: noisy outputs, which no global LUT reproduces closely)
    assert summary["size"] == 33 and len(summary["psnr"]) == 1 and summary["mean_psnr"] > 10
    assert read_cube(cube).size == 33
    exists = run(main, ["lut", str(content), "-s", str(style), "-o", str(cube), "--weights",
                        str(weights_file)])  # fmt: skip
    assert_refused(exists, "--overwrite")
    hald = tmp_path / "look.png"
    result = run(main, ["lut", str(content), "-s", str(style), "-o", str(hald), "--weights",
                        str(weights_file), "--no-cache", "-q"])  # fmt: skip
    assert result.exit_code == 0 and Image.open(hald).size == (512, 512)
    odd = run(main, ["lut", str(content), "-s", str(style), "-o", str(tmp_path / "x.png"),
                     "--size", "33", "--weights", str(weights_file)])  # fmt: skip
    assert_refused(odd, "square")


def test_a_cut_starts_a_shot_and_keyframes_follow_the_clock():
    g = np.random.default_rng(0)
    red = np.zeros((20, 30, 3), np.uint8)
    red[..., 0] = 200
    blue = np.zeros((20, 30, 3), np.uint8)
    blue[..., 2] = 200
    frames = [red + g.integers(0, 8, red.shape, dtype=np.uint8) for _ in range(7)]
    frames += [blue + g.integers(0, 8, blue.shape, dtype=np.uint8) for _ in range(5)]
    tracker = ShotTracker(key_every=3)
    steps = [tracker.step(f) for f in frames]
    assert [i for i, (cut, _) in enumerate(steps) if cut] == [0, 7]
    assert [i for i, (_, key) in enumerate(steps) if key] == [0, 3, 6, 7, 10]
    keys, shots = [0, 3, 6, 7, 10], [0, 7]
    assert blend_weights(1, keys, shots) == [(0, pytest.approx(2 / 3)), (1, pytest.approx(1 / 3))]
    assert blend_weights(6, keys, shots) == [(2, 1.0)]  # the last key of its shot: held
    assert blend_weights(8, keys, shots)[0][0] == 3  # never blended across the cut


def _clip_with_a_cut(path: Path) -> Path:
    """2 s at 12 fps: a red then a blue test pattern (a cut at frame 12), with a tone."""
    sources = "testsrc2=size=96x64:rate=12:d=1,hue=h=0[a];testsrc2=size=96x64:rate=12:d=1,negate[b]"
    run = subprocess.run(
        [FFMPEG, "-v", "error", "-y", "-filter_complex", f"{sources};[a][b]concat=n=2:v=1:a=0",
         "-f", "lavfi", "-i", "sine=frequency=440:d=2", "-c:v", "libx264", "-pix_fmt",
         "yuv420p", "-c:a", "aac", "-shortest", str(path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return path


def test_video_lut_mode_keeps_frames_rate_and_audio_and_finds_the_cut(
    tmp_path, weights_file, one_thread, fast_encoder
):
    clip = _clip_with_a_cut(tmp_path / "cut.mp4")
    style = write_photo(tmp_path / "s.png", size=(96, 72), source="coffee")
    out = tmp_path / "out.mp4"
    cube = tmp_path / "clip.cube"
    result = CliRunner().invoke(main, ["video", str(clip), "-s", str(style), "-o", str(out),
                                       "--mode", "lut", "--weights", str(weights_file),
                                       "--export-lut", str(cube), "--json", "-q"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["mode"] == "lut" and summary["frames"] == 24 and summary["video_fps"] == 12
    assert "audio" in summary["streams_copied"]
    assert any("2 shot(s)" in n for n in summary["notes"])
    assert read_cube(cube).size == 33


def test_the_api_applies_a_lut_to_paths_pil_images_and_arrays(tmp_path):
    import stylenas_cli

    lut = smooth_lut(17)
    cube = write_cube(lut, tmp_path / "look.cube")
    pixels = photo_array("astronaut", (80, 64))
    want = lut.apply(pixels)
    assert np.array_equal(stylenas_cli.apply_lut(pixels, cube), want)
    assert np.array_equal(np.asarray(stylenas_cli.apply_lut(Image.fromarray(pixels), lut)), want)
    floats = stylenas_cli.apply_lut(pixels.astype(np.float32) / 255, lut)
    assert floats.dtype == np.float32 and np.abs(floats * 255 - want).max() < 0.51
    src = tmp_path / "a.png"
    Image.fromarray(pixels).save(src)
    dest = stylenas_cli.apply_lut(src, cube)
    assert dest == tmp_path / "a_stylized.png"
    assert np.array_equal(np.asarray(Image.open(dest)), want)


def test_a_frame_between_two_keyframes_is_their_luts_blended_by_time_over_every_colour():
    from stylenas_cli.video.looks import ClipLook, LookPlayer

    white = Lut3D(torch.ones(2, 2, 2, 3))  # every colour -> 255
    ident = Lut3D.identity(2)
    look = ClipLook(keys=[0, 4], shots=[0], luts=[white, ident])
    every = np.arange(256, dtype=np.uint8)
    frames = np.stack([np.stack([every] * 3, -1)[None]] * 5)  # (5, 1, 256, 3): all levels
    out = LookPlayer(look).apply(frames, 0, np.empty_like(frames))
    for t in range(5):  # frame t: (4 - t)/4 of white, t/4 of the identity, rounded
        want = np.floor((255 * (256 - 64 * t) + every.astype(np.int64) * 64 * t + 128) / 256)
        assert np.array_equal(out[t, 0, :, 0], want.astype(np.uint8)), t

"""``stylenas_cli.stylize``: one call for scripts; paths, PIL images and arrays in, the same
type out, equal to what ``stylenas stylize`` writes."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import stylenas_cli
from conftest import paint_sky, write_photo
from stylenas_cli.cli import main
from stylenas_cli.errors import StylenasError

pytestmark = pytest.mark.usefixtures("one_thread", "fast_encoder")


@pytest.fixture
def photos(tmp_path):
    content = write_photo(tmp_path / "a.png")
    style = write_photo(tmp_path / "s.png", size=(96, 72), source="coffee")
    return content, style


def test_paths_in_path_out_equal_to_the_command_line(tmp_path, photos, weights_file):
    content, style = photos
    cli_out = tmp_path / "cli.png"
    result = CliRunner().invoke(
        main,
        ["stylize", str(content), str(style), "-o", str(cli_out), "--weights", str(weights_file)],
    )
    assert result.exit_code == 0, result.output
    out = stylenas_cli.stylize(content, style, weights=weights_file)
    assert out == tmp_path / "a_stylized.png"
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(cli_out)))
    with pytest.raises(StylenasError, match="exists"):  # like the CLI: no silent overwrite
        stylenas_cli.stylize(content, style, weights=weights_file)


def test_pil_and_arrays_come_back_as_they_went_in(tmp_path, photos, weights_file):
    content, style = photos
    reference = np.asarray(Image.open(stylenas_cli.stylize(content, style, weights=weights_file)))
    pil = stylenas_cli.stylize(Image.open(content), Image.open(style), weights=weights_file)
    assert isinstance(pil, Image.Image) and pil.mode == "RGB" and pil.size == (80, 64)
    # Same pixels as the file path (the style read from a PIL image at the same size).
    assert np.abs(np.asarray(pil).astype(int) - reference).max() <= 1
    arr = np.asarray(Image.open(content))
    out8 = stylenas_cli.stylize(arr, style, weights=weights_file)
    assert out8.dtype == np.uint8 and out8.shape == arr.shape
    assert np.array_equal(out8, reference)
    outf = stylenas_cli.stylize(arr / 255.0, style, weights=weights_file)
    assert outf.dtype == np.float64 and np.abs(outf * 255 - reference).max() <= 1
    with pytest.raises(StylenasError, match="H, W, 3"):
        stylenas_cli.stylize(np.zeros((64, 64)), style, weights=weights_file)


def test_automatic_regions_like_the_command_lines_auto_masks(tmp_path, photos, weights_file):
    # A sky over the photo in both: regions the content tells apart (automask.match_margin).
    content, style = paint_sky(photos[0], 24), paint_sky(photos[1], 30)
    cli_out = tmp_path / "cli.png"
    args = ["stylize", str(content), str(style), "-o", str(cli_out), "--weights",
            str(weights_file), "--auto-masks", "--regions", "2"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    auto = stylenas_cli.stylize(np.asarray(Image.open(content)), style, weights=weights_file,
                                regions=2)  # fmt: skip
    plain = stylenas_cli.stylize(np.asarray(Image.open(content)), style, weights=weights_file)
    assert np.array_equal(auto, np.asarray(Image.open(cli_out)))
    assert np.abs(auto.astype(int) - plain).mean() > 0.1  # the regions changed the result
    with pytest.raises(ValueError, match="regions"):
        stylenas_cli.stylize(content, style, weights=weights_file, regions=-1)

"""Metrics (EVAL.md) and colour-transfer baselines: mathematical properties, not snapshots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.color import rgb2lab
from skimage.filters import gaussian

from conftest import photo_array
from stylenas_cli.decoder import Decoder
from stylenas_cli.encoder import LEVELS
from stylenas_cli.errors import StylenasError
from stylenas_cli.evaluation import baselines, metrics
from stylenas_cli.genotype import NAMED

pytestmark = pytest.mark.usefixtures("one_thread")

GRAM_SIDE = 64  # EVAL.md uses 512; the properties hold at any size and 64 px is quick


def photo(source: str = "astronaut", size: tuple[int, int] = (80, 64)) -> np.ndarray:
    return photo_array(source, size).astype(np.float64) / 255.0


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian(image, sigma=sigma, channel_axis=-1)


# --- images --------------------------------------------------------------------------------


def test_as_rgb_takes_arrays_and_tensors_alike():
    img = photo()
    tensor = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    np.testing.assert_allclose(metrics.as_rgb(tensor), img, atol=1e-6)
    np.testing.assert_allclose(metrics.as_rgb(tensor[0]), img, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(H, W, 3\).*\(64, 80\)"):
        metrics.as_rgb(img[..., 0])
    with pytest.raises(ValueError, match=r"got \(2, 3, 64, 80\)"):
        metrics.as_rgb(torch.zeros(2, 3, 64, 80))


def test_resize_to_content_size_and_long_side():
    img = photo(size=(96, 48))
    out = metrics.resize(img, (40, 20))
    assert out.shape == (20, 40, 3)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert metrics.resize(img, (96, 48)) is not None
    np.testing.assert_array_equal(metrics.resize(img, (96, 48)), img)
    assert metrics.resize_long_side(img, 64).shape == (32, 64, 3)
    assert metrics.resize_long_side(img, 192).shape == (96, 192, 3)  # up as well as down


# --- structure -----------------------------------------------------------------------------


def test_identical_images_score_perfect_structure():
    img = photo()
    assert metrics.ssim(img, img) == pytest.approx(1.0)
    assert metrics.edge_ssim(img, img) == pytest.approx(1.0)


def test_heavier_blur_lowers_ssim_and_edge_ssim():
    img = photo()
    light, heavy = blur(img, 1.0), blur(img, 4.0)
    assert metrics.ssim(img, heavy) < metrics.ssim(img, light) < 1.0
    assert metrics.edge_ssim(img, heavy) < metrics.edge_ssim(img, light) < 1.0
    assert metrics.ssim(img, heavy) < 0.6
    assert metrics.edge_ssim(img, heavy) < 0.5


def test_structure_ignores_a_colour_shift_more_than_a_blur():
    img = photo()
    tinted = np.clip(img * [1.0, 0.8, 0.6], 0, 1)  # same edges, other colours
    assert metrics.edge_ssim(img, tinted) > metrics.edge_ssim(img, blur(img, 4.0))


def test_flat_images_have_no_edges_and_count_as_identical():
    flat = np.full((40, 40, 3), 0.5)
    assert metrics.edge_ssim(flat, flat) == 1.0


def test_output_must_be_at_the_content_size():
    with pytest.raises(ValueError, match="40x32.*80x64"):
        metrics.ssim(photo(), photo(size=(40, 32)))


def test_ssim_takes_chw_tensors_as_the_searches_hold_them():
    img, other = photo(), blur(photo(), 2.0)
    as_chw = [torch.from_numpy(a).permute(2, 0, 1).float() for a in (img, other)]  # (3, H, W)
    assert metrics.ssim(*as_chw) == pytest.approx(metrics.ssim(img, other), abs=1e-6)
    assert metrics.ssim(as_chw[0], as_chw[0]) == pytest.approx(1.0)


# --- colour --------------------------------------------------------------------------------


def test_lab_w1_is_zero_for_the_same_colours_and_symmetric():
    a, c = photo(), photo("coffee")
    assert metrics.lab_w1(a, a) == 0.0
    # A permutation of the pixels has the same colour distribution.
    shuffled = np.random.default_rng(1).permutation(a.reshape(-1, 3)).reshape(a.shape)
    assert metrics.lab_w1(shuffled, a) == pytest.approx(0.0, abs=1e-9)
    assert metrics.lab_w1(a, c) == pytest.approx(metrics.lab_w1(c, a))
    assert metrics.lab_w1(a, c) > 5.0


def test_lab_w1_of_a_shift_is_the_shift_averaged_over_channels():
    lab = rgb2lab(photo()).reshape(-1, 3)
    assert metrics.lab_w1_samples(lab, lab + [6.0, 0.0, 0.0]) == pytest.approx(2.0)


def test_lab_samples_are_capped_and_reproducible():
    big = photo(size=(250, 200))  # 50,000 pixels
    s1, s2 = metrics.lab_samples(big), metrics.lab_samples(big)
    assert s1.shape == (metrics.LAB_SAMPLES, 3)
    np.testing.assert_array_equal(s1, s2)
    assert metrics.lab_samples(photo()).shape == (80 * 64, 3)  # small: every pixel


def test_gain_is_one_for_a_perfect_colour_match_and_zero_for_the_content():
    content, style = photo(), photo("coffee")
    lab_c = metrics.lab_w1(content, style)
    perfect = np.random.default_rng(0).permutation(style.reshape(-1, 3)).reshape(content.shape)
    assert metrics.gain(metrics.lab_w1(perfect, style), lab_c) == pytest.approx(1.0)
    assert metrics.gain(metrics.lab_w1(content, style), lab_c) == 0.0
    assert np.isnan(metrics.gain(1.0, 0.0))


# --- style ---------------------------------------------------------------------------------


def test_gram_is_zero_for_identical_images():
    img = photo()
    assert metrics.gram(img, img, long_side=GRAM_SIDE) == 0.0


def test_gram_matrices_are_symmetric_psd_per_level():
    grams = metrics.gram_matrices(photo(), long_side=GRAM_SIDE)
    assert list(grams) == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    for level, g in grams.items():
        assert g.shape[0] == g.shape[1], level
        torch.testing.assert_close(g, g.T)
        assert torch.linalg.eigvalsh(g).min() > -1e-6 * g.abs().max()


def test_grams_of_is_f_ft_over_hw_for_any_features():
    feats = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    one = metrics.grams_of({"x": feats[:1]})["x"]
    f = feats[0].reshape(4, 15).float()
    assert one.shape == (4, 4)
    torch.testing.assert_close(one, f @ f.T / 15)
    torch.testing.assert_close(metrics.grams_of({"x": feats[0]})["x"], one)  # (C, H, W)
    batch = metrics.grams_of({"x": feats})["x"]
    assert batch.shape == (2, 4, 4)
    torch.testing.assert_close(batch[0], one)
    with pytest.raises(ValueError, match=r"x: expected .* got \(4, 15\)"):
        metrics.grams_of({"x": feats[0].reshape(4, 15)})


def test_gram_distance_of_any_encoders_grams():
    feats = {"a": torch.rand(1, 8, 6, 6), "b": torch.rand(1, 16, 3, 3)}
    grams = metrics.grams_of(feats)
    assert metrics.gram_distance(grams, grams) == 0.0
    # Features twice as large: Gram matrices 4x, so ‖4G − G‖² / ‖G‖² = 9 at every level.
    doubled = metrics.grams_of({k: 2 * f for k, f in feats.items()})
    assert metrics.gram_distance(doubled, grams) == pytest.approx(9.0, rel=1e-5)
    with pytest.raises(ValueError, match="b: expected a"):
        metrics.gram_distance({"a": grams["a"]}, grams)


def test_gram_matrices_are_grams_of_the_gram_encoder():
    img = photo()
    x = torch.from_numpy(metrics.resize_long_side(img, GRAM_SIDE)).float().permute(2, 0, 1)
    expected = metrics.grams_of(metrics.gram_encoder()(x[None], LEVELS))
    got = metrics.gram_matrices(img, long_side=GRAM_SIDE)
    assert list(got) == list(LEVELS)
    for level in got:
        torch.testing.assert_close(got[level], expected[level].double())


def test_swapping_the_style_raises_gram():
    s1, s2 = photo("coffee"), photo("astronaut")
    out = s1[:, ::-1].copy()  # the style's own pixels, mirrored: the same style
    own = metrics.gram(out, s1, long_side=GRAM_SIDE)
    assert own < 0.2
    assert metrics.gram(out, s2, long_side=GRAM_SIDE) > 3 * own


# --- cost ----------------------------------------------------------------------------------


def test_seconds_per_megapixel_is_a_warm_median():
    calls = []

    def fn():
        calls.append(1)
        if len(calls) == 1:  # a slow first (cold) call is not counted
            import time

            time.sleep(0.2)

    spm = metrics.seconds_per_megapixel(fn, pixels=500_000, repeats=3, warmup=1)
    assert len(calls) == 4
    assert 0.0 <= spm < 0.1
    with pytest.raises(ValueError):
        metrics.seconds_per_megapixel(fn, pixels=0)


def test_peak_memory_on_cpu_sees_an_allocation():
    import resource

    size = 256 * 2**20
    page = resource.getpagesize()
    before: list[int] = []

    def resident() -> int:  # this process's RSS now, in bytes
        return int(Path("/proc/self/statm").read_text().split()[1]) * page

    def allocate():
        before.append(resident())  # measured inside: what other threads freed earlier is out
        buf = np.ones(size, dtype=np.uint8)  # written: resident
        return int(buf[::4096].sum())

    peak = metrics.peak_memory(allocate, "cpu")
    if peak.kind != "rss":
        pytest.skip("the peak RSS cannot be reset here (no /proc/self/clear_refs)")
    assert peak.bytes - before[0] >= 0.9 * size
    assert metrics.peak_memory(lambda: None, "cpu").bytes < peak.bytes  # reset: it fell back


def test_parameters_and_flops_follow_the_genotype():
    small, big = Decoder(NAMED["photonas"]), Decoder(NAMED["wct5"])
    assert metrics.parameters(small) == sum(p.numel() for p in small.parameters())
    f_small = metrics.flops_per_megapixel(small, 64)
    assert f_small == pytest.approx(metrics.flops_per_megapixel(small, 128))  # per MP
    assert metrics.flops_per_megapixel(big, 64) > f_small > 0


# --- baselines -----------------------------------------------------------------------------


def test_reinhard_gives_the_style_lab_means_and_stds():
    content, style = rgb2lab(photo()), rgb2lab(photo("coffee", (64, 96)))
    out = baselines.reinhard_lab(content, style)
    np.testing.assert_allclose(out.mean(axis=(0, 1)), style.mean(axis=(0, 1)), atol=1e-9)
    np.testing.assert_allclose(out.std(axis=(0, 1)), style.std(axis=(0, 1)), rtol=1e-9)


def test_reinhard_rgb_output_is_close_to_the_style_statistics():
    content, style = photo(), photo("coffee", (64, 96))
    out = baselines.reinhard(content, style)
    assert out.shape == content.shape and out.min() >= 0 and out.max() <= 1
    lab_out, lab_style = rgb2lab(out), rgb2lab(style)
    # Only gamut clipping separates the RGB result from the exact Lab transfer.
    np.testing.assert_allclose(lab_out.mean(axis=(0, 1)), lab_style.mean(axis=(0, 1)), atol=3.0)
    np.testing.assert_allclose(lab_out.std(axis=(0, 1)), lab_style.std(axis=(0, 1)), rtol=0.1)
    assert metrics.ssim(content, out) > 0.5  # structure kept


def test_reinhard_of_a_photo_onto_itself_changes_nothing():
    img = photo()
    np.testing.assert_allclose(baselines.reinhard(img, img), img, atol=1e-3)


def test_histogram_matching_closes_most_of_the_colour_gap():
    content, style = photo(), photo("coffee")
    out = baselines.histogram_match(content, style)
    assert out.shape == content.shape
    lab_c = metrics.lab_w1(content, style)
    assert metrics.gain(metrics.lab_w1(out, style), lab_c) > 0.7


def test_unknown_baseline_lists_the_valid_names():
    with pytest.raises(ValueError, match="histogram, reinhard"):
        baselines.get("reinhardt")
    with pytest.raises(StylenasError):  # shown by the CLI as one clean line
        baselines.get("reinhardt")

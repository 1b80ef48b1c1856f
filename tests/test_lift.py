"""The full-resolution lift (lift.py): a guided-filter fit at the working size, applied in
bands at full size."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import photo_array
from stylenas_cli.lift import (
    LiftConfig,
    apply_coefficients,
    box_mean,
    guided_coefficients,
    guided_filter,
    lift,
)


def _photo(size=(96, 72), source="astronaut") -> torch.Tensor:
    return torch.from_numpy(photo_array(source, size).copy()).permute(2, 0, 1)[None].float() / 255.0


def _affine(x: torch.Tensor, m: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.einsum("oc,bchw->bohw", m, x) + b.view(1, 3, 1, 1)


M = torch.tensor([[0.6, 0.2, 0.1], [0.1, 0.5, 0.2], [0.05, 0.1, 0.7]])
B = torch.tensor([0.05, 0.1, 0.02])


def test_box_mean_is_the_window_average_cut_at_the_borders():
    x = torch.arange(25, dtype=torch.float64).reshape(1, 1, 5, 5)
    got = box_mean(x, 1)
    assert got[0, 0, 2, 2] == x[0, 0, 1:4, 1:4].mean()
    assert got[0, 0, 0, 0] == x[0, 0, :2, :2].mean()  # corner: a 2x2 window


def test_a_global_affine_colour_change_comes_back_exactly_at_full_size():
    full = _photo((192, 144))
    small = F.interpolate(full, size=(48, 64), mode="bilinear", antialias=True)
    target = _affine(small, M, B)
    out = lift(small, target, full, LiftConfig(radius=2, eps=1e-8))
    want = _affine(full, M, B).clamp(0, 1)
    assert out.shape == full.shape
    assert (out - want).abs().max() < 1e-3  # well under one 8-bit level


def test_banded_apply_equals_the_unbanded_one():
    guide = _photo((40, 30))
    target = guide.flip(1) ** 1.5  # a non-affine, spatially varying change
    coeffs = guided_coefficients(guide, target, radius=3, eps=1e-3)
    image = _photo((150, 113))
    one_band = apply_coefficients(coeffs, image, band_rows=10_000)
    banded = apply_coefficients(coeffs, image, band_rows=7)
    assert torch.equal(one_band, banded)
    # And both equal the textbook form: coefficients upsampled by F.interpolate.
    up = F.interpolate(coeffs, size=image.shape[-2:], mode="bilinear", align_corners=False)
    a = up[:, :9].reshape(1, 3, 3, *image.shape[-2:])
    ref = ((a * image[:, None]).sum(2) + up[:, 9:]).clamp(0, 1)
    assert (banded - ref).abs().max() < 1e-5


def test_uint8_image_and_channels_last_output_match_the_float_path():
    guide = _photo((32, 24))
    coeffs = guided_coefficients(guide, guide.roll(1, 1), radius=2)
    image = _photo((100, 75))
    image8 = (image * 255).round().to(torch.uint8)
    hwc = torch.empty(1, 75, 100, 3, dtype=torch.uint8)  # what gets saved
    apply_coefficients(coeffs, image8, out=hwc.permute(0, 3, 1, 2), band_rows=16)
    ref = apply_coefficients(coeffs, image8.float() / 255)
    assert (hwc.permute(0, 3, 1, 2).float() / 255 - ref).abs().max() <= 0.5 / 255 + 1e-6


def test_edges_stay_sharp_and_flat_regions_follow_the_target():
    # A step edge in the guide: the lifted output must keep it at full resolution.
    full = torch.zeros(1, 3, 64, 64)
    full[..., 32:] = 1.0
    small = F.interpolate(full, size=(16, 16), mode="area")
    target = small * 0.5 + 0.25  # the "stylised" version: darker, lifted blacks
    out = lift(small, target, full, LiftConfig(radius=2, eps=1e-4))
    assert (out[..., :30] - 0.25).abs().max() < 0.02
    assert (out[..., 34:] - 0.75).abs().max() < 0.02
    assert (out[..., 32] - out[..., 31]).abs().min() > 0.4  # one-pixel step, not blurred


def test_batches_are_independent():
    g = torch.cat([_photo((32, 24)), _photo((32, 24), "coffee")])
    t = g**2
    both = guided_coefficients(g, t, 2)
    assert torch.allclose(both[1:], guided_coefficients(g[1:], t[1:], 2), atol=1e-6)


def test_bad_shapes_and_settings_are_refused():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        guided_coefficients(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="one shape"):
        guided_coefficients(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match="radius"):
        LiftConfig(radius=0)
    with pytest.raises(ValueError, match="eps"):
        LiftConfig(eps=0.0)


def test_guided_filter_of_any_channel_count_keeps_affine_maps_of_the_guide():
    # A target that is an affine function of the guide (here 5 channels) passes unchanged;
    # a constant one stays constant.
    guide = torch.rand(2, 3, 24, 20, generator=torch.Generator().manual_seed(1))
    mix = torch.randn(5, 3, generator=torch.Generator().manual_seed(2))
    target = torch.einsum("kc,bchw->bkhw", mix, guide) + 0.3
    out = guided_filter(guide, target, radius=3, eps=1e-8)
    assert out.shape == target.shape and torch.allclose(out, target, atol=1e-3)
    flat = torch.full((2, 1, 24, 20), 0.7)
    assert torch.allclose(guided_filter(guide, flat, 3, 1e-3), flat, atol=1e-5)
    with pytest.raises(ValueError):
        guided_filter(guide, target[:, :, :10], 3, 1e-3)


DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "bench" / "stylenas"


@pytest.mark.skipif(not DEV.is_dir(), reason="../shared/data (dev pairs) not present")
def test_on_dev_photos_the_banded_uint8_apply_is_the_textbook_lift_within_one_level():
    from stylenas_cli.images import load_image

    for name in sorted(p.stem for p in (DEV / "content").glob("*.jpg"))[:3]:
        content = load_image(DEV / "content" / f"{name}.jpg", 1000).tensor()  # uint8 HWC view
        style = load_image(DEV / "style" / f"{name}.jpg", 96).rgb
        small = F.interpolate(content.float() / 255, size=(72, 96), mode="area")
        target = (small * style.mean((2, 3), keepdim=True) * 2).clamp(0, 1)  # a colour cast
        coeffs = guided_coefficients(small, target, radius=2)
        hwc = torch.empty(content.shape[0], *content.shape[2:], 3, dtype=torch.uint8)
        apply_coefficients(coeffs, content, out=hwc.permute(0, 3, 1, 2), band_rows=37)
        up = F.interpolate(coeffs, size=content.shape[-2:], mode="bilinear", align_corners=False)
        a = up[:, :9].reshape(1, 3, 3, *content.shape[-2:])
        ref = ((a * (content.float() / 255)[:, None]).sum(2) + up[:, 9:]).clamp(0, 1)
        got = hwc.permute(0, 3, 1, 2).float()
        assert (got - ref * 255).abs().max() <= 0.5 + 1e-3  # rounded: within one level
        assert (got - content.float()).abs().mean() > 5  # and the cast was applied

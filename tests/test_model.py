from dataclasses import FrozenInstanceError, replace

import pytest
import torch
import torch.nn.functional as F
from skimage import data

from stylenas_cli.config import DEFAULT_TRANSFER, TransferSettings
from stylenas_cli.genotype import NAMED
from stylenas_cli.model import Stylizer, pil_to_tensor, tensor_to_pil
from stylenas_cli.regions import snap_labels
from stylenas_cli.style import StyleCache
from stylenas_cli.wct import wct

NO_IMAGE_POINT = replace(DEFAULT_TRANSFER, colour_match=0.0)


def _photo(arr, h=64, w=80):
    t = torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255.0
    return F.interpolate(t, size=(h, w), mode="bilinear", antialias=True)


@pytest.fixture(scope="module", params=["photonas", "photonet"])
def stylizer(request):
    torch.manual_seed(0)
    return Stylizer(NAMED[request.param]).eval()


def test_stylize_shape_range_and_alpha_zero(stylizer):
    content = torch.cat([_photo(data.astronaut()), _photo(data.chelsea())])
    style = _photo(data.coffee(), 48, 72)
    out = stylizer.stylize(content, style)
    assert out.shape == content.shape
    assert out.min() >= 0 and out.max() <= 1
    # alpha = 0 transfers nothing: the content itself, not its reconstruction.
    assert torch.equal(stylizer.stylize(content, style, alpha=0.0), content)
    assert not torch.allclose(out, content, atol=1e-3)


def test_style_cache_once_equals_direct_and_batch_equals_single(stylizer):
    content = torch.cat([_photo(data.astronaut()), _photo(data.chelsea())])
    style = _photo(data.coffee())
    cache = stylizer.style_cache(style)
    assert set(cache.stats) == {*stylizer.needed_points(), "image"}
    direct = stylizer.stylize(content, style)
    cached = stylizer.stylize(content, cache)
    single = torch.cat([stylizer.stylize(content[i : i + 1], cache) for i in range(2)])
    assert torch.allclose(direct, cached)
    assert torch.allclose(cached, single, atol=1e-4)


def test_masks_are_used(stylizer):
    content, style = _photo(data.astronaut()), _photo(data.coffee())
    c_lab = torch.zeros(64, 80, dtype=torch.long)
    c_lab[:, 40:] = 1
    s_lab = torch.zeros(64, 80, dtype=torch.long)
    s_lab[32:] = 1
    masked = stylizer.stylize(content, style, content_labels=c_lab, style_labels=s_lab)
    assert masked.shape == content.shape
    assert not torch.allclose(masked, stylizer.stylize(content, style), atol=1e-3)
    # Masks under bf16 autocast (the per-label transform answers in bf16 there).
    stylizer.precision = "bf16"
    try:
        low = stylizer.stylize(content, style, content_labels=c_lab, style_labels=s_lab)
    finally:
        stylizer.precision = "fp32"
    assert low.dtype == torch.float32 and (low - masked).abs().mean() < 0.03


def test_bad_alpha_and_precision():
    with pytest.raises(ValueError, match="precision"):
        Stylizer("photonas", precision="fp8")
    st = Stylizer("photonas")
    with pytest.raises(ValueError, match="alpha"):
        st.stylize(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), alpha=-0.1)


def test_bf16_autocast_runs_and_stays_close():
    torch.manual_seed(0)
    st = Stylizer("photonas")
    content, style = _photo(data.astronaut()), _photo(data.coffee())
    ref = st.stylize(content, style)
    st.precision = "bf16"
    low = st.stylize(content, style)
    assert low.dtype == torch.float32 and low.shape == ref.shape
    assert (low - ref).abs().mean() < 0.05


def test_pil_round_trip():
    img = tensor_to_pil(_photo(data.chelsea())[0])
    back = pil_to_tensor(img)
    assert back.shape == (1, 3, 64, 80)
    assert (back - _photo(data.chelsea())).abs().max() <= 1 / 255 + 1e-6


def test_image_point_gives_the_output_the_style_photos_colours(stylizer):
    content = _photo(data.coffee(), 48, 64)
    grey = content.mean(1, keepdim=True).expand(1, 3, 48, 64).contiguous()  # a grey style
    cache = stylizer.style_cache(grey)
    assert "image" in cache.stats

    def colourfulness(x: torch.Tensor) -> float:
        return float((x - x.mean(1, keepdim=True)).abs().mean())

    plain = stylizer.stylize(content, cache, settings=NO_IMAGE_POINT)
    matched = stylizer.stylize(content, cache)
    assert colourfulness(matched) < 0.2 * colourfulness(plain)
    assert colourfulness(matched) < 0.01


def test_image_point_whitens_with_its_own_shrinkage(stylizer):
    # The image point is WCT on the decoder's RGB output toward the style photo's colour
    # statistics, with the image point's own shrinkage (not the feature levels').
    content = _photo(data.coffee(), 48, 64)
    cache = stylizer.style_cache(_photo(data.astronaut(), 48, 64))
    decoded = stylizer.stylize(content, cache, settings=NO_IMAGE_POINT)
    outs = {}
    for shrink in (0.0, 0.67):
        settings = replace(DEFAULT_TRANSFER, colour_shrink=shrink)
        outs[shrink] = stylizer.stylize(content, cache, settings=settings)
        want = wct(decoded.clone(), cache.stats["image"], shrink=shrink).clamp(0, 1)
        assert torch.allclose(outs[shrink], want, atol=1e-4)
    assert (outs[0.0] - outs[0.67]).abs().max() > 1e-3


def test_image_point_is_over_the_whole_image_also_with_labels(stylizer):
    content = _photo(data.coffee(), 48, 64)
    style = _photo(data.astronaut(), 48, 64) * 0.6 + 0.2
    labels = torch.zeros(48, 64, dtype=torch.long)
    labels[:, 32:] = 1
    cache = stylizer.style_cache(style, labels)
    settings = replace(DEFAULT_TRANSFER, colour_shrink=0.0)
    whole = stylizer.stylize(content, cache, settings=settings, content_labels=labels)
    # Over the whole image the output takes the whole style photo's mean colour.
    assert torch.allclose(whole.mean((2, 3)), style.mean((2, 3)), atol=0.02)


def test_automatic_regions_are_found_in_the_style_and_the_content(stylizer):
    # A smooth sky over a textured ground, in both photos: two regions, labelled per segment
    # of each photo and blended along its edges; the image point has statistics per region.
    sky = torch.tensor([0.5, 0.7, 0.95])[None, :, None, None]
    style = _photo(data.astronaut(), 96, 128)
    style[..., :40, :] = sky
    content = _photo(data.chelsea(), 96, 128)
    content[..., :56, :] = sky * 0.9
    auto = replace(DEFAULT_TRANSFER, regions=2)
    cache = stylizer.style_cache(style, settings=auto)
    assert len(cache.centres) == 2 and set(cache.stats["image"]) == {-1, 0, 1}
    regional = stylizer.stylize(content, cache, settings=auto)
    plain = stylizer.stylize(content, stylizer.style_cache(style))
    assert (regional - plain).abs().mean() > 1e-3


def test_automatic_regions_are_dropped_where_the_content_cannot_tell_them_apart(stylizer):
    style = _photo(data.astronaut(), 96, 128)
    style[..., :40, :] = torch.tensor([0.5, 0.7, 0.95])[None, :, None, None]
    content = _photo(data.chelsea(), 96, 128)
    auto = stylizer.style_cache(style, settings=replace(DEFAULT_TRANSFER, regions=2))
    plain = stylizer.stylize(content, stylizer.style_cache(style))
    assert len(auto.centres) == 2
    never = replace(DEFAULT_TRANSFER, min_match_margin=2.0)  # a cosine margin is at most 2
    assert torch.equal(stylizer.stylize(content, auto, settings=never), plain)
    always = replace(DEFAULT_TRANSFER, min_match_margin=0.0)
    assert (stylizer.stylize(content, auto, settings=always) - plain).abs().mean() > 1e-3


def _decoder_stats_from(cache: StyleCache, other: StyleCache) -> StyleCache:
    """``cache`` with its decoder points' statistics (d1 ... d5) taken from ``other``."""
    stats = {p: other.stats[p] if p.startswith("d") else v for p, v in cache.stats.items()}
    return StyleCache(stats, cache.size, cache.centres)


def test_the_decoder_points_transfer_only_when_switched_on(stylizer):
    # By default the decoder's own points (d1 ... d5) transfer nothing, with or without labels:
    # the style pass does not run the decoder for them, and their statistics, had a summary
    # them, could be anything without changing the result. Switched on, they count.
    content = _photo(data.chelsea(), 96, 128)
    style, other = _photo(data.astronaut(), 96, 128), _photo(data.coffee(), 96, 128)
    c_lab = torch.zeros(96, 128, dtype=torch.long)
    c_lab[:48] = 1
    s_lab = torch.zeros(96, 128, dtype=torch.long)
    s_lab[:, 64:] = 1
    assert not DEFAULT_TRANSFER.decoder_transfers
    assert any(p.startswith("d") for p in stylizer.decoder.transfer_points)
    assert stylizer.needed_points() == [
        p for p in stylizer.decoder.transfer_points if not p.startswith("d")
    ]
    modes = [({}, {}, 0), ({"labels": s_lab}, {"content_labels": c_lab}, 0), ({}, {}, 2)]
    for summary, labels, regions in modes:
        off_settings = replace(DEFAULT_TRANSFER, regions=regions)
        on_settings = replace(off_settings, decoder_transfers=True)
        off = stylizer.style_cache(style, **summary, settings=off_settings)
        assert not any(p.startswith("d") for p in off.stats)
        with pytest.raises(ValueError, match="summarise the style again"):
            stylizer.stylize(content, off, settings=on_settings, **labels)
        full = stylizer.style_cache(style, **summary, settings=on_settings)
        assert all(p in full.stats for p in stylizer.decoder.transfer_points)
        swapped = _decoder_stats_from(
            full, stylizer.style_cache(other, **summary, settings=on_settings)
        )
        on = stylizer.stylize(content, full, settings=on_settings, **labels)
        assert (on - stylizer.stylize(content, swapped, settings=on_settings,
                                      **labels)).abs().mean() > 1e-3  # fmt: skip
        kept = stylizer.stylize(content, off, settings=off_settings, **labels)
        assert torch.equal(kept, stylizer.stylize(content, full, settings=off_settings, **labels))
        assert torch.equal(kept, stylizer.stylize(content, swapped, settings=off_settings,
                                                  **labels))  # fmt: skip
        assert (on - kept).abs().mean() > 1e-3


def test_dead_channels_and_reach_apply_at_the_instance_normalised_skips_only(stylizer, monkeypatch):
    import stylenas_cli.model as model_module

    calls = []  # (dead_ratio, reach) of each transfer, the image point's last

    def recording_wct(x, stats, *args, **kwargs):
        calls.append((kwargs.get("dead_ratio", 0.0), kwargs.get("reach", 0.0)))
        return wct(x, stats, *args, **kwargs)

    content, style = _photo(data.chelsea()), _photo(data.coffee())
    cache = stylizer.style_cache(style)
    expected = stylizer.stylize(content, cache)
    monkeypatch.setattr(model_module, "wct", recording_wct)
    assert torch.equal(stylizer.stylize(content, cache), expected)
    points = stylizer.needed_points() + ["image"]
    skips = stylizer.decoder.normalised_skips
    assert "relu1_1" in skips and not any(p.startswith("d") for p in skips)
    on = (DEFAULT_TRANSFER.dead_ratio, DEFAULT_TRANSFER.whitened_reach)
    assert on[0] > 0 and on[1] > 0
    assert calls == [on if p in skips else (0.0, 0.0) for p in points]
    no_limits = replace(DEFAULT_TRANSFER, dead_ratio=0.0, whitened_reach=0.0)
    off = stylizer.stylize(content, cache, settings=no_limits)
    assert (off - expected).abs().mean() > 1e-3


def test_drawn_labels_are_snapped_to_the_content_at_the_working_size(stylizer):
    # With label_snap the network sees the drawn map snapped to the (downscaled) content:
    # the same result as passing the snapped map itself, and not the unsnapped one.
    content, style = _photo(data.astronaut(), 128, 160), _photo(data.coffee())
    drawn = torch.zeros(128, 160, dtype=torch.long)
    drawn[:, 70:] = 1  # a boundary drawn across the photo, not along its edges
    s_lab = torch.zeros(64, 80, dtype=torch.long)
    s_lab[32:] = 1
    cache = stylizer.style_cache(style, s_lab)
    small = F.interpolate(content, size=(64, 80), mode="bilinear", antialias=True)
    snapped = snap_labels(drawn, small[0], radius=4)
    assert not torch.equal(snapped, drawn[::2, ::2])  # the photo's edges moved it
    snap4, as_drawn = (
        replace(DEFAULT_TRANSFER, label_snap=4),
        replace(DEFAULT_TRANSFER, label_snap=0),
    )
    got = stylizer.stylize_at(content, cache, 1.0, snap4, drawn, work_size=80)
    want = stylizer.stylize_at(content, cache, 1.0, as_drawn, snapped, work_size=80)
    plain = stylizer.stylize_at(content, cache, 1.0, as_drawn, drawn, work_size=80)
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, plain, atol=1e-3)


def test_settings_are_data_passed_in_not_state_on_the_model():
    model = Stylizer(NAMED["photonas"]).eval()
    assert not hasattr(model, "settings") and not hasattr(model, "label_snap")
    with pytest.raises(FrozenInstanceError):
        DEFAULT_TRANSFER.shrink = 0.1  # type: ignore[misc]
    with pytest.raises(ValueError, match="region_prior"):
        TransferSettings(region_prior=1.5)
    with pytest.raises(ValueError, match="finite"):
        TransferSettings(shrink=float("nan"))
    # Two settings used in turn on one model (two threads, two Ray calls): neither sees the
    # other's, each gives what it gives alone.
    content, style = _photo(data.chelsea()), _photo(data.coffee())
    cache = model.style_cache(style)
    light = replace(DEFAULT_TRANSFER, shrink=0.0)
    a1 = model.stylize(content, cache, settings=light)
    b1 = model.stylize(content, cache)
    a2 = model.stylize(content, cache, settings=light)
    assert torch.equal(a1, a2) and not torch.allclose(a1, b1, atol=1e-4)

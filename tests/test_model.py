import pytest
import torch
import torch.nn.functional as F
from skimage import data

from stylenas_cli.genotype import NAMED
from stylenas_cli.model import (
    WHITEN_SHRINK,
    StyleCache,
    Stylizer,
    pil_to_tensor,
    tensor_to_pil,
)
from stylenas_cli.wct import snap_labels, wct


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

    before = stylizer.colour_match
    try:
        stylizer.colour_match = 0.0
        plain = stylizer.stylize(content, cache)
        stylizer.colour_match = 1.0
        matched = stylizer.stylize(content, cache)
    finally:
        stylizer.colour_match = before
    assert colourfulness(matched) < 0.2 * colourfulness(plain)
    assert colourfulness(matched) < 0.01


def test_image_point_whitens_with_its_own_shrinkage(stylizer):
    # The image point is WCT on the decoder's RGB output toward the style photo's colour
    # statistics, with the image point's own shrinkage (not the feature levels').
    content = _photo(data.coffee(), 48, 64)
    cache = stylizer.style_cache(_photo(data.astronaut(), 48, 64))
    saved = stylizer.colour_match, stylizer.colour_shrink
    try:
        stylizer.colour_match = 0.0
        decoded = stylizer.stylize(content, cache)
        stylizer.colour_match = 1.0
        outs = {}
        for shrink in (0.0, 0.67):
            stylizer.colour_shrink = shrink
            outs[shrink] = stylizer.stylize(content, cache)
            want = wct(decoded.clone(), cache.stats["image"], shrink=shrink).clamp(0, 1)
            assert torch.allclose(outs[shrink], want, atol=1e-4)
    finally:
        stylizer.colour_match, stylizer.colour_shrink = saved
    assert (outs[0.0] - outs[0.67]).abs().max() > 1e-3


def test_image_point_over_the_whole_image_ignores_the_label_map(stylizer):
    content = _photo(data.coffee(), 48, 64)
    style = _photo(data.astronaut(), 48, 64) * 0.6 + 0.2
    labels = torch.zeros(48, 64, dtype=torch.long)
    labels[:, 32:] = 1
    cache = stylizer.style_cache(style, labels)
    saved = stylizer.colour_match, stylizer.colour_shrink, stylizer.colour_regions
    try:
        stylizer.colour_match, stylizer.colour_shrink = 1.0, 0.0
        stylizer.colour_regions = False
        whole = stylizer.stylize(content, cache, content_labels=labels)
        stylizer.colour_regions = True
        regional = stylizer.stylize(content, cache, content_labels=labels)
    finally:
        stylizer.colour_match, stylizer.colour_shrink, stylizer.colour_regions = saved
    # Over the whole image the output takes the whole style photo's mean colour.
    assert torch.allclose(whole.mean((2, 3)), style.mean((2, 3)), atol=0.02)
    assert (whole - regional).abs().mean() > 1e-3


def test_automatic_regions_are_refined_in_the_style_and_the_content(stylizer):
    # A smooth sky over a textured ground, in both photos: two regions, whose boundaries
    # the photos' colours refine; the image point then has statistics per region.
    sky = torch.tensor([0.5, 0.7, 0.95])[None, :, None, None]
    style = _photo(data.astronaut(), 96, 128)
    style[..., :40, :] = sky
    content = _photo(data.chelsea(), 96, 128)
    content[..., :56, :] = sky * 0.9
    with stylizer.settings(region_segments=0, region_band=0, guided_blend=False):
        coarse_cache = stylizer.style_cache(style, regions=2)
        coarse = stylizer.stylize(content, coarse_cache)
    with stylizer.settings(region_segments=0, region_band=16, guided_blend=False):
        cache = stylizer.style_cache(style, regions=2)
        refined = stylizer.stylize(content, cache)
    assert len(cache.centres) == 2 and set(cache.stats["image"]) == {-1, 0, 1}
    assert (refined - coarse).abs().mean() > 1e-3
    # The default: labels per segment of each photo, blended along its edges: another result.
    assert stylizer.region_segments > 0 and stylizer.guided_blend
    segmented = stylizer.stylize(content, stylizer.style_cache(style, regions=2))
    assert (segmented - refined).abs().mean() > 1e-4


def test_automatic_regions_are_dropped_where_the_content_cannot_tell_them_apart(stylizer):
    style = _photo(data.astronaut(), 96, 128)
    style[..., :40, :] = torch.tensor([0.5, 0.7, 0.95])[None, :, None, None]
    content = _photo(data.chelsea(), 96, 128)
    auto = stylizer.style_cache(style, regions=2)
    plain = stylizer.stylize(content, stylizer.style_cache(style))
    assert len(auto.centres) == 2
    with stylizer.settings(min_match_margin=float("inf")):  # no margin is enough: one region
        assert torch.equal(stylizer.stylize(content, auto), plain)
    with stylizer.settings(min_match_margin=0.0):  # any margin is: the regions are used
        assert (stylizer.stylize(content, auto) - plain).abs().mean() > 1e-3


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
    assert not stylizer.decoder_transfers
    assert any(p.startswith("d") for p in stylizer.decoder.transfer_points)
    assert stylizer.needed_points() == [
        p for p in stylizer.decoder.transfer_points if not p.startswith("d")
    ]
    modes = [({}, {}), ({"labels": s_lab}, {"content_labels": c_lab}), ({"regions": 2}, {})]
    for summary, labels in modes:
        off = stylizer.style_cache(style, **summary)
        assert not any(p.startswith("d") for p in off.stats)
        with stylizer.settings(decoder_transfers=True):
            with pytest.raises(ValueError, match="summarise the style again"):
                stylizer.stylize(content, off, **labels)
            full = stylizer.style_cache(style, **summary)
            assert all(p in full.stats for p in stylizer.decoder.transfer_points)
            swapped = _decoder_stats_from(full, stylizer.style_cache(other, **summary))
            on = stylizer.stylize(content, full, **labels)
            assert (on - stylizer.stylize(content, swapped, **labels)).abs().mean() > 1e-3
        kept = stylizer.stylize(content, off, **labels)
        assert torch.equal(kept, stylizer.stylize(content, full, **labels))
        assert torch.equal(kept, stylizer.stylize(content, swapped, **labels))
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
    on = (stylizer.dead_ratio, stylizer.whitened_reach)
    assert on[0] > 0 and on[1] > 0
    assert calls == [on if p in skips else (0.0, 0.0) for p in points]
    with stylizer.settings(dead_ratio=0.0, whitened_reach=0.0):
        off = stylizer.stylize(content, cache)
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
    before = stylizer.label_snap
    try:
        stylizer.label_snap = 4
        got = stylizer.stylize_at(content, cache, content_labels=drawn, work_size=80)
        stylizer.label_snap = 0
        want = stylizer.stylize_at(content, cache, content_labels=snapped, work_size=80)
        plain = stylizer.stylize_at(content, cache, content_labels=drawn, work_size=80)
    finally:
        stylizer.label_snap = before
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, plain, atol=1e-3)


def test_settings_are_set_for_a_block_and_restored():
    model = Stylizer(NAMED["photonas"])
    before = (model.label_snap, model.region_prior)
    with model.settings(label_snap=0, region_prior=0.5, shrink=None) as m:
        assert m is model and (model.label_snap, model.region_prior) == (0, 0.5)
        assert model.shrink == WHITEN_SHRINK  # None: left as it was
    assert (model.label_snap, model.region_prior) == before
    with pytest.raises(RuntimeError), model.settings(label_snap=3):
        raise RuntimeError("boom")
    assert model.label_snap == before[0]
    with pytest.raises(AttributeError, match="no setting"), model.settings(lable_snap=1):
        pass

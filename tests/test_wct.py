import pytest
import torch
import torch.nn.functional as F

from stylenas_cli.regions import snap_labels, soft_regions
from stylenas_cli.wct import (
    CHUNK,
    Regions,
    apply_transform,
    channel_keep,
    moments,
    prior_cov,
    prior_spread,
    resize_labels,
    style_stats,
    transfer,
    trusted_labels,
    wct,
    whitening_matrix,
)


def _cov(x: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(2).double()
    flat = flat - flat.mean(-1, keepdim=True)
    return flat @ flat.transpose(-1, -2) / (flat.shape[-1] - 1)


def _correlated(b, c, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(c, c, generator=g)
    x = torch.randn(b, c, h * w, generator=g)
    return (mix @ x + 3 * torch.randn(1, c, 1, generator=g)).reshape(b, c, h, w)


def _whiten(x: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(2)
    mean, cov = moments(flat)
    white = whitening_matrix(cov)
    return apply_transform(flat, white, -white @ mean).reshape(x.shape)


def test_whitened_covariance_is_identity():
    x = _correlated(2, 8, 16, 16, 0)
    cov = _cov(_whiten(x))
    assert torch.allclose(cov, torch.eye(8, dtype=torch.float64).expand(2, 8, 8), atol=1e-3)
    assert _whiten(x).flatten(2).mean(-1).abs().max() < 1e-4


def test_coloured_covariance_matches_style():
    content = _correlated(1, 8, 20, 20, 1)
    style = _correlated(1, 8, 12, 18, 2)
    out = wct(content, style_stats(style))
    assert torch.allclose(_cov(out), _cov(style), atol=1e-2 * _cov(style).abs().max())
    assert torch.allclose(out.mean((2, 3)), style.mean((2, 3)), atol=1e-3)


def test_alpha_zero_returns_content_and_alpha_blends():
    content = _correlated(2, 4, 8, 8, 3)
    stats = style_stats(_correlated(1, 4, 8, 8, 4))
    assert torch.equal(wct(content, stats, alpha=0.0), content)
    full = wct(content, stats, alpha=1.0)
    half = wct(content, stats, alpha=0.5)
    assert torch.allclose(half, 0.5 * full + 0.5 * content, atol=1e-5)


def test_batched_equals_one_by_one():
    content = _correlated(3, 6, 10, 10, 5)
    stats = style_stats(_correlated(1, 6, 10, 10, 6))
    batched = wct(content, stats)
    single = torch.cat([wct(content[i : i + 1], stats) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-5)


def test_bad_inputs_raise():
    stats = style_stats(torch.randn(1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        wct(torch.zeros(3, 4, 4), stats)
    with pytest.raises(ValueError, match="alpha"):
        wct(torch.randn(1, 2, 4, 4), stats, alpha=1.5)
    with pytest.raises(ValueError, match="one style"):
        style_stats(torch.randn(2, 2, 4, 4))


def test_a_style_transferred_onto_itself_is_itself():
    style = _correlated(1, 5, 16, 16, 7)
    assert torch.allclose(wct(style, style_stats(style)), style, atol=1e-3)


def test_masked_transfer_uses_same_label_statistics():
    # Style: left half has mean +5, right half mean -5 (label 1 / label 2).
    g = torch.Generator().manual_seed(8)
    style = torch.randn(1, 3, 16, 16, generator=g)
    style[..., :8] += 5.0
    style[..., 8:] -= 5.0
    style_labels = torch.ones(16, 16, dtype=torch.long)
    style_labels[:, 8:] = 2
    # Content: top half labelled 2, bottom half labelled 1.
    content = torch.randn(1, 3, 16, 16, generator=g)
    content_labels = torch.ones(16, 16, dtype=torch.long)
    content_labels[:8] = 2
    out = wct(content, style_stats(style, style_labels), regions=Regions(content_labels))
    assert torch.allclose(out[..., :8, :].mean(), torch.tensor(-5.0), atol=0.3)
    assert torch.allclose(out[..., 8:, :].mean(), torch.tensor(5.0), atol=0.3)
    # Without masks everything gets the global mean (≈ 0).
    plain = wct(content, style_stats(style))
    assert plain[..., :8, :].mean().abs() < 2.0


def test_region_prior_limits_the_stretch_of_a_flat_region():
    # The top region (label 2) is nearly flat: whitened alone its tiny variance is stretched
    # to the style region's (std ≈ 1); with the whole map's covariance as a prior it stays
    # far below, and every region keeps its style region's mean.
    stats, content_labels = _halves()
    g = torch.Generator().manual_seed(6)
    content = torch.randn(1, 3, 32, 32, generator=g)
    content[..., :16, :] *= 0.01
    alone = wct(content, stats, regions=Regions(content_labels))
    prior = wct(content, stats, regions=Regions(content_labels), region_prior=0.3)
    assert float(alone[..., :16, :].std()) > 0.8
    assert float(prior[..., :16, :].std()) < 0.4
    assert float(prior[..., :16, :].mean()) == pytest.approx(-5, abs=0.1)
    assert float(prior[..., 16:, :].mean()) == pytest.approx(5, abs=0.1)
    assert torch.equal(
        wct(content, stats, regions=Regions(content_labels), region_prior=0.0), alone
    )


def test_a_full_region_prior_transfers_every_region_by_one_map_with_its_own_means():
    # Prior 1: whitened and coloured by the whole photos' spreads, the regions differ from the
    # whole image's transfer by one constant per region and channel (no halo can come from
    # two maps meeting at a boundary), and each region lands on its style region's means.
    stats, content_labels = _halves()
    content = _correlated(1, 3, 32, 32, 24)
    shared = wct(content, stats, regions=Regions(content_labels), region_prior=1.0)
    whole = wct(content, stats)
    for label in (1, 2):
        sel = content_labels == label
        shift = (shared - whole)[0][:, sel]  # (C, n)
        assert shift.std(1).max() < 1e-3
        got = shared[0][:, sel].mean(1).double()
        assert torch.allclose(got, stats[label].mean.flatten(), atol=1e-3)


def test_prior_spread_mixes_the_colouring_and_keeps_the_regions_mean():
    stats, _ = _halves()
    for share in (0.0, 0.4, 1.0):
        got = prior_spread(stats[1], stats[-1], share)
        assert torch.equal(got.mean, stats[1].mean)
        want = (1 - share) * stats[1].colour + share * stats[-1].colour
        assert torch.allclose(got.colour, want)


def test_prior_cov_ends_are_the_region_and_the_whole():
    a, b = torch.eye(3).double(), 4 * torch.eye(3).double()
    assert torch.equal(prior_cov(a, b, 0.0), a) and torch.equal(prior_cov(a, b, 1.0), b)
    assert torch.allclose(prior_cov(a, b, 0.25), 1.75 * torch.eye(3).double())


def test_label_missing_in_style_falls_back_to_whole_style():
    style = torch.randn(1, 3, 8, 8) + 2.0
    content = torch.randn(1, 3, 8, 8)
    labels = torch.full((8, 8), 7, dtype=torch.long)
    out = wct(
        content, style_stats(style, torch.zeros(8, 8, dtype=torch.long)), regions=Regions(labels)
    )
    assert torch.allclose(out.mean((2, 3)), style.mean((2, 3)), atol=1e-3)


# --- soft region boundaries ----------------------------------------------


def _halves(h: int = 32, w: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """A two-region style (means +5 / -5, left / right) and a content labelled top / bottom."""
    g = torch.Generator().manual_seed(3)
    style = torch.randn(1, 3, h, w, generator=g)
    style[..., : w // 2] += 5.0
    style[..., w // 2 :] -= 5.0
    style_labels = torch.ones(h, w, dtype=torch.long)
    style_labels[:, w // 2 :] = 2
    content_labels = torch.ones(h, w, dtype=torch.long)
    content_labels[: h // 2] = 2
    return style_stats(style, style_labels), content_labels


def _box_regions(labels: torch.Tensor, radius: int) -> Regions:
    """Soft regions whose weights are each label's one-hot map box-blurred."""
    ids = labels.unique().tolist()
    onehot = torch.stack([(labels == i) for i in ids]).float()[None]
    k = 2 * radius + 1
    soft = F.avg_pool2d(onehot, k, stride=1, padding=radius, count_include_pad=False)[0]
    return Regions(labels, soft, tuple(ids))


def test_soft_boundaries_blend_the_two_region_transforms_only_near_the_boundary():
    stats, labels = _halves()
    g = torch.Generator().manual_seed(4)
    content = torch.randn(1, 3, 32, 32, generator=g)
    hard = wct(content, stats, regions=Regions(labels))
    soft = wct(content, stats, regions=_box_regions(labels, 3))
    far = torch.cat([torch.arange(0, 12), torch.arange(20, 32)])
    assert torch.allclose(soft[..., far, :], hard[..., far, :], atol=1e-4)
    # At the boundary rows the result lies between the two regions' means (-5 and +5).
    edge = soft[..., 15:17, :].mean((0, 1, 3))
    assert torch.all(edge.abs() < hard[..., 15:17, :].mean((0, 1, 3)).abs())


def test_regions_guided_by_the_photo_keep_its_edges_where_a_box_blur_would_not():
    stats, labels = _halves()
    g = torch.Generator().manual_seed(4)
    content = torch.randn(1, 3, 32, 32, generator=g)
    photo = torch.full((3, 64, 64), 0.2)
    photo[:, :32] = 0.8  # the photo's edge is the labels' boundary (row 16 of the map)
    hard = wct(content, stats, regions=Regions(labels))
    fine = resize_labels(labels, (64, 64))
    guided = wct(content, stats, regions=soft_regions(fine, photo, radius=6))
    boxed = wct(content, stats, regions=_box_regions(fine, 6))
    assert torch.allclose(guided, hard, atol=0.05)
    assert not torch.allclose(boxed, hard, atol=0.05)


def test_soft_with_one_region_is_that_regions_transfer():
    stats, _ = _halves()
    content = torch.randn(1, 3, 16, 16)
    one = torch.ones(16, 16, dtype=torch.long)
    soft = wct(content, stats, regions=_box_regions(one, 3))
    assert torch.allclose(soft, wct(content, stats, regions=Regions(one)), atol=1e-4)


def _style_with_dead_channel(seed: int, dead: int = 2) -> torch.Tensor:
    style = 4 * _correlated(1, 6, 12, 12, seed)  # its other channels: well above the ratio
    style[:, dead] = 1e-3 * torch.randn(12, 12, generator=torch.Generator().manual_seed(seed))
    return style


def test_a_channel_the_style_barely_uses_keeps_the_contents_pattern():
    content = _correlated(2, 6, 16, 16, 11)
    stats = style_stats(_style_with_dead_channel(12))
    plain = wct(content, stats)
    kept = wct(content, stats, dead_ratio=0.5)
    # Without the guard the dead channel is a faint mix of the other channels ...
    assert plain[:, 2].std() < 0.01 * content[:, 2].std()
    corr = torch.corrcoef(torch.stack([plain[0, 2].flatten(), content[0, 2].flatten()]))[0, 1]
    assert corr.abs() < 0.9
    # ... with it the content's own pattern at the style's mean and deviation (keep ≈ 0.997),
    # and the channels the style uses are unchanged.
    style = _style_with_dead_channel(12)
    for i in range(2):
        k, c = kept[i, 2].flatten(), content[i, 2].flatten()
        assert torch.corrcoef(torch.stack([k, c]))[0, 1] > 0.999
        style_sd = stats[-1].colour[2].norm().item()  # the statistics' (with their ridge)
        assert k.std() == pytest.approx(style_sd, rel=0.02)
        assert k.mean() == pytest.approx(style[0, 2].mean().item(), abs=1e-4)
    others = [0, 1, 3, 4, 5]
    assert torch.allclose(kept[:, others], plain[:, others], atol=1e-4)


def test_with_labels_every_region_keeps_a_dead_channels_pattern_at_its_style_regions_scale():
    content = _correlated(1, 6, 16, 16, 15)
    style = _style_with_dead_channel(16)
    c_lab = torch.zeros(16, 16, dtype=torch.long)
    c_lab[8:] = 1
    s_lab = torch.zeros(12, 12, dtype=torch.long)
    s_lab[:, 6:] = 1
    stats = style_stats(style, s_lab)
    kept = wct(content, stats, regions=Regions(c_lab), dead_ratio=0.5, region_prior=0.3)
    for label in (0, 1):
        rows = c_lab == label
        k, c = kept[0, 2][rows], content[0, 2][rows]
        assert torch.corrcoef(torch.stack([k, c]))[0, 1] > 0.999
        assert k.mean() == pytest.approx(stats[label].mean[2].item(), abs=1e-4)
        assert k.std() == pytest.approx(stats[label].colour[2].norm().item(), rel=0.05)


def test_channel_keep_ramps_from_one_at_a_dead_channel_to_zero_at_the_ratio():
    cov = torch.diag(torch.tensor([4.0, 4.0, 4.0, 4.0], dtype=torch.float64))[None]  # sd 2
    colour_m = torch.diag(torch.tensor([0.0, 0.5, 2.0, 3.0], dtype=torch.float64))  # style sd
    keep = channel_keep(cov, colour_m, ratio=0.5).flatten()  # threshold: sd 1.0
    assert keep.tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0])


def test_reach_scales_only_the_far_pixels_style_part_down_to_the_reach():
    # More pixels than one chunk, so the chunked application is covered too.
    content = _correlated(1, 5, 130, 130, 13)
    assert content.shape[-1] * content.shape[-2] > CHUNK
    stats = style_stats(_correlated(1, 5, 20, 20, 14))
    flat = content.flatten(2)
    mean = flat.double().mean(-1, keepdim=True)
    centred = flat.double() - mean
    cov = centred @ centred.transpose(-1, -2) / (flat.shape[-1] - 1)
    free = transfer(mean, cov, stats[-1], shrink=0.67)
    t = transfer(mean, cov, stats[-1], shrink=0.67, reach=1.2)
    rms = (t.white @ centred).pow(2).mean(1).sqrt()[0]  # (N,)
    assert 0.05 < (rms > 1.2).float().mean() < 0.6  # the limit touches some pixels only
    near, far = rms <= 1.2, rms > 1.2
    plain, limited = free.apply(flat)[0], t.apply(flat)[0]
    assert torch.allclose(limited[:, near], plain[:, near], atol=1e-4)
    style_mean = stats[-1].mean.float()
    scale = (1.2 / rms[far]).float()
    assert torch.allclose(limited[:, far] - style_mean, scale * (plain[:, far] - style_mean),
                          atol=1e-4)  # fmt: skip
    via_wct = wct(content, stats, shrink=0.67, reach=1.2).flatten(2)[0]
    assert torch.allclose(via_wct, limited, atol=1e-4)
    inplace = flat.clone()
    assert torch.equal(t.apply(inplace, inplace=True), inplace)
    assert torch.allclose(inplace[0], limited)


def test_snap_labels_moves_a_loosely_drawn_boundary_onto_the_photos_edge():
    # A photo with a vertical edge at column 20 (dark left, bright right, noisy), labels 3 / 7
    # drawn at twice its size with their boundary at column 24: snapped, the boundary is the
    # photo's, the ids are kept and the map has the photo's size.
    g = torch.Generator().manual_seed(4)
    photo = 0.2 + 0.03 * torch.rand(3, 40, 48, generator=g)
    photo[:, :, 20:] += 0.6
    drawn = torch.full((80, 96), 3, dtype=torch.long)
    drawn[:, 48:] = 7
    snapped = snap_labels(drawn, photo, radius=8)
    assert snapped.shape == (40, 48) and set(snapped.unique().tolist()) == {3, 7}
    assert bool((snapped[:, :20] == 3).all()) and bool((snapped[:, 20:] == 7).all())
    assert bool((resize_labels(drawn, (40, 48))[:, 20:24] == 3).all())  # unsnapped: off


def test_snap_labels_drops_labels_too_small_to_whiten():
    # Stray anti-aliasing colours (a few pixels each) join a neighbouring region.
    photo = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(9))
    drawn = torch.zeros(32, 32, dtype=torch.long)
    drawn[:, 16:] = 5
    drawn[3, 3], drawn[10, 20] = 11, 12  # one pixel each
    snapped = snap_labels(drawn, photo, radius=4)
    assert set(snapped.unique().tolist()) == {0, 5}


def test_trusted_labels_are_those_with_enough_pixels():
    labels = torch.zeros(20, 20, dtype=torch.long)
    labels[:, 10:] = 7
    labels[0, :9] = torch.arange(100, 109)  # nine stray colours of one pixel each
    labels[5, :9] = 3  # nine pixels: one short of MIN_LABEL_PIXELS
    labels[6, :1] = 3
    assert trusted_labels(labels) == [0, 3, 7]
    labels[6, 0] = 0
    assert trusted_labels(labels) == [0, 7]

"""Regions: automatic ones (``--auto-masks``: k-means on the style's deep features, contents
labelled by the nearest style region per segment, blended along the photo's edges) and drawn
label maps snapped to the photo's edges."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

from conftest import paint_sky, write_photo
from stylenas_cli.cli import main
from stylenas_cli.config import TransferSettings
from stylenas_cli.regions import (
    auto_regions,
    match_margin,
    matching_feature,
    segment_regions,
    soft_regions,
    style_regions,
)


def _two_kinds(h: int, w: int, flip: bool, seed: int) -> torch.Tensor:
    """A ``(1, 64, h, w)`` feature whose left half is one kind of thing and right half
    another (two directions plus noise); ``flip`` swaps the halves."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.zeros(64), torch.zeros(64)
    a[:32], b[32:] = 1.0, 1.0
    left, right = (b, a) if flip else (a, b)
    feat = 0.1 * torch.randn(1, 64, h, w, generator=g).abs()
    feat[0, :, :, : w // 2] += left[:, None, None]
    feat[0, :, :, w // 2 :] += right[:, None, None]
    return feat


def test_regions_of_the_style_are_found_and_matched_in_the_content():
    style = _two_kinds(12, 16, flip=False, seed=0)
    centres, labels = style_regions(style, k=2)
    assert centres.shape == (2, 64)
    assert torch.allclose(centres.norm(dim=1), torch.ones(2))
    left, right = labels[:, :8], labels[:, 8:]
    assert left.unique().numel() == 1 and right.unique().numel() == 1 and left[0, 0] != right[0, 0]
    # The content shows the same two kinds of thing, on swapped sides, at another size; its
    # photo has the same two halves, so each half is a segment.
    content = _two_kinds(10, 20, flip=True, seed=1)
    photo = torch.zeros(3, 40, 80)
    photo[:, :, 40:] = 1.0
    found = segment_regions(content, centres, photo, scale=100)
    assert torch.equal(found[:, :40], torch.full((40, 40), int(right[0, 0])))
    assert torch.equal(found[:, 40:], torch.full((40, 40), int(left[0, 0])))


def test_match_margin_is_large_where_the_content_tells_the_regions_apart():
    centres, _ = style_regions(_two_kinds(12, 16, flip=False, seed=0), k=2)
    clear = match_margin(_two_kinds(10, 20, flip=True, seed=1), centres)
    # Every pixel both kinds at once: equally near both centres, the labels would be noise.
    both = _two_kinds(10, 20, flip=False, seed=2) + _two_kinds(10, 20, flip=True, seed=3)
    unclear = match_margin(both, centres)
    assert clear > 0.5 and 0 <= unclear < 0.05
    assert match_margin(both, centres[:1]) == float("inf")  # one region: nothing to confuse


def test_matching_feature_puts_each_level_at_unit_length_at_relu4_1s_size():
    feats = {"relu4_1": torch.rand(1, 512, 6, 8) * 7, "relu5_1": torch.rand(1, 512, 3, 4) * 3}
    feats["relu5_1"][..., 0, 0] = 0.0  # a dead cell stays zero, not NaN
    joint = matching_feature(feats)
    assert joint.shape == (1, 1024, 6, 8) and joint.dtype == torch.float32
    assert torch.allclose(joint[0, :512].norm(dim=0), torch.ones(6, 8), atol=1e-5)
    deep = joint[0, 512:].norm(dim=0)  # upsampled unit vectors: at most unit length
    assert deep.max() <= 1 + 1e-5 and deep[-1, -1] > 0.99 and torch.isfinite(joint).all()
    # The coarse level is spread over the fine one's cells: neighbours share its direction.
    assert F.cosine_similarity(joint[0, 512:, 4, 6], joint[0, 512:, 4, 7], dim=0) > 0.95


def test_tiny_regions_are_dropped():
    style = _two_kinds(20, 20, flip=False, seed=2)[..., :10]  # one kind of thing only
    style[0, :, 0, 0] = torch.linspace(-1, 1, 64)  # one odd pixel: 0.5% of the style
    centres, labels = style_regions(style, k=2)
    assert len(centres) == 1 and labels.max() == 0


def _sky_and_statue(h: int, w: int, edge: int) -> torch.Tensor:
    """A ``(3, h, w)`` photo: a smooth light sky left of column ``edge``, a darker textured
    object right of it."""
    g = torch.Generator().manual_seed(3)
    photo = torch.empty(3, h, w)
    photo[:, :, :edge] = torch.tensor([0.7, 0.8, 0.9])[:, None, None]
    photo[:, :, edge:] = 0.3 + 0.1 * torch.rand(3, h, w - edge, generator=g)
    return photo + 0.005 * torch.randn(3, h, w, generator=g)


def test_segment_regions_put_boundaries_on_the_photos_edges_never_across_a_smooth_area():
    # Features of two kinds whose 8-px cells switch at column 16; the photo's edge is at 22.
    centres, _ = style_regions(_two_kinds(8, 8, flip=False, seed=0), k=2)
    feature = torch.zeros(1, 64, 4, 8)
    feature[0, :, :, :2] = centres[0][:, None, None]
    feature[0, :, :, 2:] = centres[1][:, None, None]
    labels = segment_regions(feature, centres, _sky_and_statue(32, 64, edge=22), scale=100)
    assert labels.shape == (32, 64)
    # The sky is one region up to its edge (the segmentation's 0.8-px smoothing: within 2 px).
    assert (labels[:, :20] == 0).all() and (labels[:, 22:] == 1).all()
    # A smooth gradient over the whole photo is one segment: one label, whatever the cells say.
    ramp = torch.linspace(0.2, 0.8, 64).expand(3, 32, 64).clone()
    flat = segment_regions(feature, centres, ramp, scale=300)
    assert flat.unique().numel() == 1


def test_soft_regions_sum_to_one_and_stay_sharp_across_the_photos_edge():
    photo = _sky_and_statue(32, 96, edge=22)
    labels = torch.zeros(32, 96, dtype=torch.long)
    labels[:, 22:] = 1  # a boundary on the photo's edge ...
    labels[:, 70:] = 2  # ... and one across the smooth, textured object
    regions = soft_regions(labels, photo, radius=4)
    assert regions.ids == (0, 1, 2) and regions.soft.shape == (3, 32, 96)
    w = regions.weights([0, 1, 2], (32, 96))
    assert torch.allclose(w.sum(0), torch.ones(32, 96), atol=1e-5)
    assert (w >= 0).all() and (w <= 1).all()
    # Across the photo's edge the weights jump (the guided filter keeps it sharp) ...
    assert w[1, :, 23].mean() - w[1, :, 20].mean() > 0.8
    # ... inside the object they blend over the window.
    assert 0.1 < w[2, :, 68].mean() < 0.9
    assert (w[0, :, :8] > 0.99).all() and (w[1, :, 40:50] > 0.99).all()
    # At a coarser size (a deep feature's) they still sum to one.
    assert torch.allclose(regions.weights([0, 1, 2], (4, 12)).sum(0), torch.ones(4, 12), atol=1e-5)


def test_auto_regions_are_none_below_the_margin_gate():
    def levels(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"relu4_1": x, "relu5_1": x[..., ::2, ::2]}

    style = _two_kinds(12, 16, flip=False, seed=0)
    centres, _ = style_regions(matching_feature(levels(style)), k=2)
    feats = levels(_two_kinds(10, 20, flip=True, seed=1))
    photo = torch.zeros(3, 40, 80)
    photo[:, :, 40:] = 1.0
    found = auto_regions(feats, centres, photo, TransferSettings())
    assert found is not None and found.labels.shape == (40, 80) and found.soft is not None
    gated = auto_regions(feats, centres, photo, TransferSettings(min_match_margin=2.0))
    assert gated is None  # a cosine margin is at most 2: never enough


def test_auto_masks_stylise_batches_per_photo_and_change_the_result(
    tmp_path, weights_file, fast_encoder, one_thread
):
    from stylenas_cli.model import Stylizer

    model = Stylizer.from_pretrained("photonas", weights_file, "cpu", "fp32")
    style = torch.rand(1, 3, 64, 80)
    cache = model.style_cache(style, settings=TransferSettings(regions=3))
    assert cache.centres is not None and 2 <= len(cache.centres) <= 3
    assert set(cache.stats["relu1_1"]) >= {-1, 0}  # per-region statistics
    contents = torch.rand(2, 3, 48, 64)
    both = model.stylize(contents, cache)
    one = torch.cat([model.stylize(c[None], cache) for c in contents])
    assert torch.allclose(both, one, atol=1e-5)
    # The command line: --auto-masks gives another result than the plain transfer.
    # A sky over both photos: regions the content tells apart (regions.match_margin).
    content = paint_sky(write_photo(tmp_path / "a.png"), 24)
    ref = paint_sky(write_photo(tmp_path / "s.png", size=(96, 80), source="coffee"), 30)
    run = CliRunner().invoke
    w = ["--weights", str(weights_file)]
    assert (
        run(main, ["stylize", str(content), str(ref), "-o", str(tmp_path / "p.png"), *w]).exit_code
        == 0
    )
    auto = ["--auto-masks", "--regions", "2", "-o", str(tmp_path / "m.png")]
    result = run(main, ["stylize", str(content), str(ref), *auto, *w])
    assert result.exit_code == 0, result.output
    a = np.asarray(Image.open(tmp_path / "p.png"), np.float32)
    b = np.asarray(Image.open(tmp_path / "m.png"), np.float32)
    assert np.abs(a - b).mean() > 0.5

"""Automatic regions (``--auto-masks``): k-means on the style's deep features, contents
labelled by the nearest style region."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

from conftest import paint_sky, write_photo
from stylenas_cli.automask import (
    assign_regions,
    match_margin,
    matching_feature,
    refine_regions,
    segment_regions,
    style_regions,
)
from stylenas_cli.cli import main


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
    # The content shows the same two kinds of thing, on swapped sides, at another size.
    content = _two_kinds(10, 20, flip=True, seed=1)
    found = assign_regions(content, centres)
    assert torch.equal(found[:, :10], torch.full((10, 10), int(right[0, 0])))
    assert torch.equal(found[:, 10:], torch.full((10, 10), int(left[0, 0])))


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


def test_refine_regions_moves_coarse_boundaries_onto_the_photos_edge():
    # 8-px cells: the coarse boundary sits at column 16, the photo's edge at 22 (the sky
    # beside the object was labelled as the object, as relu4_1 cells do).
    photo = _sky_and_statue(32, 64, edge=22)
    coarse = torch.zeros(4, 8, dtype=torch.long)
    coarse[:, 2:] = 1
    refined = refine_regions(coarse, photo, band=16)
    assert refined.shape == (32, 64)
    assert (refined[:, :22] == 0).all() and (refined[:, 22:] == 1).all()
    # Without a band nothing moves: the labels are just upsampled.
    same = refine_regions(coarse, photo, band=0)
    assert (same[:, :16] == 0).all() and (same[:, 16:] == 1).all()
    # A narrow band cannot reach the edge: only pixels within it change.
    narrow = refine_regions(coarse, photo, band=3)
    assert (narrow[:, :19] == 0).all() and (narrow[:, 20:] == 1).all()


def test_refine_regions_leaves_pixels_far_from_a_boundary_alone():
    # A patch of sky colour deep inside the object's region keeps the object's label.
    photo = _sky_and_statue(32, 96, edge=16)
    photo[:, 8:16, 64:72] = torch.tensor([0.7, 0.8, 0.9])[:, None, None]
    coarse = torch.zeros(4, 12, dtype=torch.long)
    coarse[:, 2:] = 1
    refined = refine_regions(coarse, photo, band=16)
    assert (refined[8:16, 64:72] == 1).all()


def test_auto_masks_stylise_batches_per_photo_and_change_the_result(
    tmp_path, weights_file, fast_encoder, one_thread
):
    from stylenas_cli.model import Stylizer

    model = Stylizer.from_pretrained("photonas", weights_file, "cpu", "fp32")
    style = torch.rand(1, 3, 64, 80)
    cache = model.style_cache(style, regions=3)
    assert cache.centres is not None and 2 <= len(cache.centres) <= 3
    assert set(cache.stats["relu1_1"]) >= {-1, 0}  # per-region statistics
    contents = torch.rand(2, 3, 48, 64)
    both = model.stylize(contents, cache)
    one = torch.cat([model.stylize(c[None], cache) for c in contents])
    assert torch.allclose(both, one, atol=1e-5)
    # The command line: --auto-masks gives another result than the plain transfer.
    # A sky over both photos: regions the content tells apart (automask.match_margin).
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

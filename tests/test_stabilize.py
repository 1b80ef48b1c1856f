"""The video stabiliser smooths the content moments of the one WCT in wct.py (issue 12: its
own copy of the whitening had lost the Stylizer's shrinkage)."""

from functools import partial

import pytest
import torch

from stylenas_cli.config import DEFAULT_TRANSFER
from stylenas_cli.model import Stylizer
from stylenas_cli.video import StabilizeConfig, Stabilizer, stylize_frames
from stylenas_cli.wct import apply_transform, moments, style_stats, transfer, wct

WHITEN_SHRINK = DEFAULT_TRANSFER.shrink


def _features(b: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(6, 6, generator=g)
    return (mix @ torch.randn(b, 6, 100, generator=g) + 2.0).reshape(b, 6, 10, 10)


def _stabilizer(momentum: float, frames: torch.Tensor) -> Stabilizer:
    stab = Stabilizer(StabilizeConfig(momentum=momentum, blend=0.0, cut=1e9))
    stab.begin(frames)  # first frame of a clip: a cut; the rest: the same shot
    return stab


def test_first_frame_transfer_equals_wct_with_the_same_shrink():
    x = _features(1, 0)
    stats = style_stats(_features(1, 1))
    stab = _stabilizer(0.7, torch.rand(1, 3, 8, 8))
    smoothed = wct(x, stats, 0.8, shrink=WHITEN_SHRINK, smooth=partial(stab.smooth, "d5"))
    assert torch.allclose(smoothed, wct(x, stats, 0.8, shrink=WHITEN_SHRINK), atol=1e-5)
    # The shrink matters: without it the transfer is far from this one.
    assert (wct(x, stats, 0.8, shrink=0.0) - smoothed).abs().mean() > 0.05


def test_later_frames_whiten_with_the_running_moments():
    x = _features(2, 2)
    stats = style_stats(_features(1, 3))
    m = 0.6
    stab = _stabilizer(m, torch.rand(2, 3, 8, 8))
    got = wct(x, stats, 1.0, shrink=WHITEN_SHRINK, smooth=partial(stab.smooth, "relu1_1"))
    mean, cov = moments(x.reshape(2, 6, 100))
    mixed_mean = m * mean[0] + (1 - m) * mean[1]
    mixed_cov = m * cov[0] + (1 - m) * cov[1]
    t = transfer(mixed_mean[None], mixed_cov[None], stats[-1], 1.0, WHITEN_SHRINK)
    want = apply_transform(x[1:].reshape(1, 6, 100), t.m, t.b).reshape(1, 6, 10, 10)
    assert torch.allclose(got[1:], want, atol=1e-5)
    assert torch.allclose(got[:1], wct(x[:1], stats, shrink=WHITEN_SHRINK), atol=1e-5)


@pytest.mark.usefixtures("one_thread")
def test_smoothed_video_frame_equals_the_photo_path():
    torch.manual_seed(0)
    model = Stylizer("photonas").eval()
    frame, style = torch.rand(1, 3, 48, 64), torch.rand(1, 3, 48, 64)
    cache = model.style_cache(style)
    stab = Stabilizer(StabilizeConfig(momentum=0.9))
    out = stylize_frames(model, frame, cache, 1.0, stab)
    assert torch.allclose(out, model.stylize(frame, cache), atol=1e-5)

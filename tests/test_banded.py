"""Banded convolutions (banded.py) equal the whole-image ones they replace."""

import pytest
import torch
import torch.nn.functional as F

from stylenas_cli import banded
from stylenas_cli.banded import banded_conv


def _whole(inputs, bias, p, relu, pool):
    x = torch.cat([t for t, _ in inputs], 1)
    w = torch.cat([w for _, w in inputs], 1)
    out = F.conv2d(F.pad(x, (p, p, p, p), mode="reflect"), w, bias)
    out = F.relu(out) if relu else out
    return F.max_pool2d(out, 2) if pool else out


@pytest.mark.parametrize("relu,pool", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("height", [37, 40])
def test_banded_conv_equals_the_whole_conv(relu, pool, height):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, height, 23, generator=g)
    skip = torch.randn(2, 3, height, 23, generator=g)
    wx, ws = torch.randn(4, 5, 3, 3, generator=g), torch.randn(4, 3, 3, 3, generator=g)
    bias = torch.randn(4, generator=g)
    inputs = [(x, wx), (skip, ws)]
    got = banded_conv(inputs, bias, 1, relu, pool, band_pixels=23 * 6)  # 6-row bands
    assert torch.allclose(got, _whole(inputs, bias, 1, relu, pool), atol=1e-5)


def test_large_inference_through_the_network_is_banded_and_unchanged(monkeypatch):
    from stylenas_cli.model import Stylizer

    torch.manual_seed(0)
    st = Stylizer("photonet").eval()
    content, style = torch.rand(1, 3, 96, 80), torch.rand(1, 3, 64, 64)
    cache = st.style_cache(style)
    whole = st.stylize(content, cache)
    calls = []
    real = banded.banded_conv

    def counting(*args, **kwargs):
        calls.append(args[0][0][0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(banded, "MIN_PIXELS", 96 * 80)  # the full-resolution layers band
    for module in ("stylenas_cli.encoder", "stylenas_cli.decoder"):
        monkeypatch.setattr(f"{module}.banded_conv", counting)
    monkeypatch.setattr(banded, "BAND_PIXELS", 80 * 8)
    got = st.stylize(content, cache)
    assert calls and all(s[-2:] == (96, 80) for s in calls)
    assert torch.allclose(got, whole, atol=1e-4)

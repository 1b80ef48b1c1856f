import pytest
import torch
import torch.nn.functional as F
from skimage import data

from stylenas_cli.genotype import NAMED
from stylenas_cli.model import Stylizer, pil_to_tensor, tensor_to_pil


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
    # alpha = 0 leaves every feature unchanged: the output is the plain reconstruction.
    assert torch.allclose(
        stylizer.stylize(content, style, alpha=0.0), stylizer.reconstruct(content)
    )
    assert not torch.allclose(out, stylizer.reconstruct(content), atol=1e-3)


def test_style_cache_once_equals_direct_and_batch_equals_single(stylizer):
    content = torch.cat([_photo(data.astronaut()), _photo(data.chelsea())])
    style = _photo(data.coffee())
    cache = stylizer.style_cache(style)
    assert set(cache.stats) == {*stylizer.decoder.transfer_points, "image"}
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

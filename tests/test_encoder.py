import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from stylenas_cli.encoder import CHANNELS, LEVELS, VGGEncoder, caffe_preprocess


@pytest.fixture(scope="module")
def encoder():
    return VGGEncoder()


def _photo(arr: np.ndarray, size: int = 128) -> torch.Tensor:
    t = torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255.0
    return F.interpolate(t, size=(size, size), mode="bilinear", antialias=True)


def _signature(enc, img):
    # Global-average-pooled relu5_1: the "top" ImageNet features of the photo.
    return enc(img)["relu5_1"].mean((2, 3))[0]


def test_named_taps_shapes_and_scale(encoder):
    feats = encoder(_photo(data.astronaut()))
    assert list(feats) == list(LEVELS)
    for k, level in enumerate(LEVELS):
        assert feats[level].shape == (1, CHANNELS[level], 128 >> k, 128 >> k)
        # Normalised: mean activation of order 1, not the raw hundreds.
        assert 0.05 < feats[level].mean() < 10


def test_pretrained_weights_recognise_photos(encoder):
    astro = _photo(data.astronaut())
    astro_resized = F.interpolate(_photo(data.astronaut(), 160), size=(128, 128), mode="bilinear")
    coffee = _photo(data.coffee())
    a, a2, c = (_signature(encoder, x) for x in (astro, astro_resized, coffee))
    same = F.cosine_similarity(a, a2, dim=0)
    other = F.cosine_similarity(a, c, dim=0)
    assert same > 0.95
    assert other < same - 0.1


def test_random_weights_would_not_pass_the_same_check():
    # Guards the test above: an untrained VGG gives near-identical signatures for any photo.
    enc = VGGEncoder()
    for m in enc.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
    a = _signature(enc, _photo(data.astronaut()))
    c = _signature(enc, _photo(data.coffee()))
    assert F.cosine_similarity(a, c, dim=0) > 0.9


def test_caffe_preprocessing_is_bgr_minus_mean():
    img = torch.zeros(1, 3, 2, 2)
    img[:, 0] = 1.0  # pure red
    out = caffe_preprocess(img)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([-103.939, -116.779, 255 - 123.68]))


def test_encoder_is_frozen_and_stops_early(encoder):
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.training
    feats = encoder(torch.rand(1, 3, 64, 64), levels=("relu1_1", "relu2_1"))
    assert set(feats) == {"relu1_1", "relu2_1"}


def test_zero_padding_variant_differs_at_borders():
    img = _photo(data.coffee(), 64)
    a = VGGEncoder("reflect")(img)["relu1_1"]
    b = VGGEncoder("zeros")(img)["relu1_1"]
    assert torch.allclose(a[..., 2:-2, 2:-2], b[..., 2:-2, 2:-2], atol=1e-4)
    assert not torch.allclose(a[..., 0, :], b[..., 0, :])
    with pytest.raises(ValueError):
        VGGEncoder("circular")

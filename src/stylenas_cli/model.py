"""Stylizer: frozen VGG19 encoder + a genotype's decoder, with WCT at the transfer points the
:class:`~stylenas_cli.config.TransferSettings` use. The model holds the networks and the
precision only; every setting of the transfer is passed in."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import stylestore
from .config import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_STYLE_SIZE,
    DEFAULT_TRANSFER,
    DEFAULT_WORK_SIZE,
    LiftConfig,
    TransferSettings,
)
from .decoder import Decoder
from .device import CHOICES, autocast, resolve_device, resolve_precision
from .encoder import VGGEncoder
from .genotype import Genotype, resolve
from .lift import downscale, lift
from .shape import min_side_pads, mirror_pad, pad_labels, unpad, work_shape
from .style import IMAGE_POINT, StyleCache, load_style, summarise, used_points
from .wct import Regions, resize_labels, wct

# (transfer point, content mean (B, C, 1), cov (B, C, C)) -> smoothed moments (video).
SmoothMoments = Callable[[str, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class Stylizer(nn.Module):
    """Photorealistic style transfer with one feed-forward pass.

    >>> st = Stylizer.from_pretrained("photonas")          # doctest: +SKIP
    >>> out = st.stylize_pil(Image.open("c.jpg"), Image.open("s.jpg"))  # doctest: +SKIP
    """

    def __init__(self, genotype: Genotype | str, precision: str = "fp32") -> None:
        super().__init__()
        self.genotype = resolve(genotype)
        self.encoder = VGGEncoder()
        self.decoder = Decoder(self.genotype)
        self.precision = precision
        # sha256 of the loaded decoder weights (None: not from a file), keys cached styles.
        self.weights_id: str | None = None

    @classmethod
    def from_pretrained(
        cls,
        arch: str | Genotype = "photonas",
        weights: str | Path | None = None,
        device: str = "auto",
        precision: str = "fp32",
    ) -> Stylizer:
        """Build the network and load its decoder weights (shipped ones by default)."""
        from .weights import load_decoder_state, resolve_arch_and_weights

        genotype, path = resolve_arch_and_weights(arch, weights)
        model = cls(genotype, precision=precision)
        model.decoder.load_state_dict(load_decoder_state(path, genotype))
        model.weights_id = stylestore.file_digest(path)
        return model.to(resolve_device(device)).eval()

    @property
    def precision(self) -> str:
        """The autocast precision in use: ``auto`` resolved for the model's device
        (:func:`~stylenas_cli.device.resolve_precision`)."""
        return resolve_precision(self._precision, self.device)

    @precision.setter
    def precision(self, value: str) -> None:
        if value not in CHOICES:
            resolve_precision(value, "cpu")  # the one error message for a bad name
        self._precision = value

    @property
    def device(self) -> torch.device:
        return next(self.decoder.parameters()).device

    def autocast(self):
        """The autocast context of this model's precision on its device."""
        return autocast(self.device, self.precision)

    @torch.inference_mode()
    def reconstruct(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] -> the auto-encoder's reconstruction, same shape."""
        with self.autocast():
            out = self.decoder(self.encoder(image.to(self.device)), consume=True)
        return out.float().clamp(0, 1)

    def needed_points(self, settings: TransferSettings = DEFAULT_TRANSFER) -> list[str]:
        """The transfer points a stylisation reads the style's statistics at (the image
        point aside)."""
        return used_points(self.decoder.transfer_points, settings)

    def style_cache(
        self,
        style: torch.Tensor,
        labels: torch.Tensor | None = None,
        settings: TransferSettings = DEFAULT_TRANSFER,
    ) -> StyleCache:
        """Summarise a style image ``(1, 3, H, W)`` (:func:`~stylenas_cli.style.summarise`)."""
        return summarise(self, style, labels, settings)

    def load_style(
        self,
        path: str | Path,
        max_side: int = DEFAULT_STYLE_SIZE,
        mask: str | Path | None = None,
        cache_dir: Path | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        settings: TransferSettings = DEFAULT_TRANSFER,
    ) -> StyleCache:
        """Read and summarise a style photo (:func:`~stylenas_cli.style.load_style`)."""
        return load_style(self, path, max_side, mask, cache_dir, max_pixels, settings)

    @torch.inference_mode()
    def stylize(
        self,
        content: torch.Tensor,
        style: torch.Tensor | StyleCache,
        alpha: float = 1.0,
        settings: TransferSettings = DEFAULT_TRANSFER,
        content_labels: torch.Tensor | None = None,
        style_labels: torch.Tensor | None = None,
        smooth: SmoothMoments | None = None,
    ) -> torch.Tensor:
        """Content ``(B, 3, H, W)`` and a style image ``(1, 3, H', W')`` (or its cache)
        -> stylised ``(B, 3, H, W)`` in [0, 1].

        ``content_labels`` ``(H', W')``: a label map of the content (drawn masks: hard
        region boundaries); with a style summarised with automatic regions and no label map,
        each photo's own regions are found. ``smooth(point, mean, cov)``: optional hook on the
        content moments at each transfer point (the video stabiliser averages them)."""
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
        if alpha == 0.0:  # no transfer: the content itself, not its reconstruction
            return content.to(self.device).float().clamp(0, 1)
        cache = style if isinstance(style, StyleCache) else self.style_cache(
            style, style_labels, settings
        )  # fmt: skip
        pads = min_side_pads(*content.shape[-2:])
        if any(pads):  # a thin photo: mirrored out for the network, cropped back after
            labels = None
            if content_labels is not None:
                labels = pad_labels(content_labels, content.shape[-2:], pads)
            out = self.stylize(mirror_pad(content.float(), pads), cache, alpha, settings,
                               labels, smooth=smooth)  # fmt: skip
            return unpad(out, pads).contiguous()
        used = self.needed_points(settings)
        missing = [p for p in used if p not in cache.stats]
        if missing:
            raise ValueError(
                f"the style summary has no statistics at {', '.join(missing)} (made with "
                "decoder_transfers off): summarise the style again"
            )
        auto = cache.centres is not None and content_labels is None
        if auto and content.shape[0] > 1:  # each photo its own regions
            parts = [self.stylize(c[None], cache, alpha, settings, smooth=smooth) for c in content]
            return torch.cat(parts)
        regions = None if content_labels is None else Regions(content_labels.to(self.device))
        normalised = self.decoder.normalised_skips  # the dead-channel and reach levels

        def transfer(point: str, x: torch.Tensor) -> torch.Tensor:
            if point not in used:  # the decoder's own points, unless switched on
                return x
            hook = partial(smooth, point) if smooth is not None else None
            limits = point in normalised
            # In the compute dtype (the statistics and the C×C maths are float64 inside wct)
            # and in place: the decoder consumes its features, nothing else holds this one.
            return wct(
                x, cache.stats[point], alpha, regions, settings.shrink, hook, True,
                region_prior=settings.region_prior,
                dead_ratio=settings.dead_ratio if limits else 0.0,
                reach=settings.whitened_reach if limits else 0.0,
            )  # fmt: skip

        with self.autocast():
            feats = self.encoder(content.to(self.device))
            if auto:
                from .regions import auto_regions

                photo = content[0].to(self.device).float()
                regions = auto_regions(feats, cache.centres, photo, settings)
            out = self.decoder(feats, transfer, consume=True)  # each feature freed once used
        out = out.float().clamp(0, 1)
        if settings.colour_match and IMAGE_POINT in cache.stats:
            # The decoder's colours still lean to the content's: match the style photo's own
            # colour statistics too, over the whole image (also with regions).
            hook = partial(smooth, IMAGE_POINT) if smooth is not None else None
            out = wct(out, cache.stats[IMAGE_POINT], alpha * settings.colour_match, None,
                      settings.colour_shrink, hook, True).clamp_(0, 1)  # fmt: skip
        return out

    @torch.inference_mode()
    def stylize_at(
        self,
        content: torch.Tensor,
        style: torch.Tensor | StyleCache,
        alpha: float = 1.0,
        settings: TransferSettings = DEFAULT_TRANSFER,
        content_labels: torch.Tensor | None = None,
        work_size: int | None = DEFAULT_WORK_SIZE,
        lift_cfg: LiftConfig | None = None,
        small: torch.Tensor | None = None,
        out: torch.Tensor | None = None,
        smooth: SmoothMoments | None = None,
        settle: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The network at a working resolution, its result lifted to the content's own size.

        Args:
            content: ``(B, 3, H, W)`` in [0, 1] (float) or 0..255 (uint8), on any device.
            style: a style image ``(1, 3, H', W')`` or its :class:`StyleCache`.
            settings: the transfer's settings (:class:`~stylenas_cli.config.TransferSettings`).
            content_labels: optional drawn label map ``(H', W')``, snapped to the working
                copy's edges (``settings.label_snap``) or resized for the network.
            work_size: long side the network sees; ``None``: every pixel (the papers' mode).
            lift_cfg: the guided-filter lift (:mod:`stylenas_cli.lift`; default if None).
            small: ``(B, 3, h, w)`` the content already at the working size (saves a resize).
            out: optional ``(B, 3, H, W)`` tensor to write the result into (uint8 allowed).
            smooth: the moment hook of :meth:`stylize`.
            settle: ``settle(small, result)`` -> result, applied to the network's result at
                the working size before the lift (the video stabiliser's blend).

        Returns:
            ``(B, 3, H, W)``: ``out``, or a new float32 tensor in [0, 1].
        """
        if alpha == 0.0:  # no transfer: the content's own pixels
            return _content_as(content, out)
        height, width = content.shape[-2:]
        size = work_shape(height, width, work_size)
        if small is None:
            small = downscale(content, size)
        small = small.to(self.device)
        labels = None
        if content_labels is not None:
            labels = _fit_labels(content_labels, small, settings.label_snap)
        target = self.stylize(small, style, alpha, settings, labels, smooth=smooth)
        if settle is not None:
            target = settle(small, target)
        if size == (height, width):
            if out is None:
                return target
            out.copy_(target.mul(255).round_() if out.dtype == torch.uint8 else target)
            return out
        return lift(small, target, content.to(self.device), lift_cfg or LiftConfig(), out)

    def stylize_pil(
        self,
        content: Image.Image,
        style: Image.Image,
        alpha: float = 1.0,
        work_size: int | None = DEFAULT_WORK_SIZE,
        settings: TransferSettings = DEFAULT_TRANSFER,
    ) -> Image.Image:
        """PIL in, PIL out (RGB): :meth:`stylize_at` (the network at ``work_size``, lifted)."""
        c = pil_to_tensor(content)
        s = pil_to_tensor(style).to(self.device)
        return tensor_to_pil(self.stylize_at(c, s, alpha, settings, work_size=work_size)[0])


def _fit_labels(labels: torch.Tensor, small: torch.Tensor, snap: int) -> torch.Tensor:
    """A drawn label map (any size) for the content at its working size ``small``
    ``(B, 3, h, w)``: snapped to its edges (the batch's mean photo), or just resized."""
    if snap:
        from .regions import snap_labels

        return snap_labels(labels.to(small.device), small.mean(0), snap)
    return resize_labels(labels, tuple(small.shape[-2:]))


def _content_as(content: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    """``content`` (uint8 or float in [0, 1]) in ``out`` (uint8 or float), else as float."""
    if out is None:
        return content.float() / 255.0 if content.dtype == torch.uint8 else content.float().clone()
    if out.dtype == torch.uint8 and content.dtype != torch.uint8:
        return out.copy_(content.float().clamp(0, 1).mul(255).round_())
    if out.dtype != torch.uint8 and content.dtype == torch.uint8:
        return out.copy_(content.float() / 255.0)
    return out.copy_(content)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL image -> ``(1, 3, H, W)`` float in [0, 1]."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """``(3, H, W)`` in [0, 1] -> RGB PIL image."""
    arr = (image.detach().float().clamp(0, 1) * 255.0 + 0.5).byte().permute(1, 2, 0)
    return Image.fromarray(arr.cpu().numpy())

"""U-Net decoder on a ResNet encoder, in the manner of segmentation_models_pytorch's ``Unet``.

Encoder: torchvision-layout ResNet-34 or ResNet-50 (:mod:`.resnet`), so local ImageNet weights
load with ``--encoder-weights``. Decoder (Ronneberger et al. 2015; smp's defaults): at each of
five levels, 2x nearest upsampling, concatenation with the encoder features of that
resolution (none at full resolution), two 3x3 convolutions with BatchNorm and ReLU; decoder
widths 16x, 8x, 4x, 2x, 1x ``width`` (``width=16``: smp's 256-128-64-32-16).
segmentation_models_pytorch itself is not used: it requires torchvision, which does not install
beside the CPU build of torch this project runs on.

The encoder module (:mod:`.resnet`, with MONAI) is imported when the network is built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import require_stride
from .registry import register
from .unet import conv_block


class EncoderUNet(nn.Module):
    """ResNet encoder + U-Net decoder.

    Args:
        in_channels, out_channels: input channels and output logit channels.
        width: features of the last decoder level.
        encoder: ``"resnet34"`` or ``"resnet50"``.

    Shapes:
        ``(B, in_channels, H, W)`` float32, ``H`` and ``W`` divisible by 32 ->
        ``(B, out_channels, H, W)`` logits.

    Raises:
        InputSizeError: in forward, ``H`` or ``W`` not divisible by 32 (:attr:`stride`).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1, width: int = 16, encoder: str = "resnet34"):
        from .resnet import ResNetEncoder

        super().__init__()
        self.encoder = ResNetEncoder(encoder, in_channels)
        skips = [*self.encoder.channels[:-1][::-1], 0]  # deepest first; no skip at full size
        widths = [width * m for m in (16, 8, 4, 2, 1)]
        inputs = [self.encoder.channels[-1], *widths[:-1]]
        self.decoders = nn.ModuleList(conv_block(i + s, o) for i, s, o in zip(inputs, skips, widths))
        self.head = nn.Conv2d(width, out_channels, 1)
        require_stride(self, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        x = features[-1]
        skips = [*reversed(features[:-1]), None]
        for decoder, skip in zip(self.decoders, skips):
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = decoder(x if skip is None else torch.cat([x, skip], dim=1))
        return self.head(x)


@register("encoder_unet", reference_width=16)
def encoder_unet(in_channels: int, out_channels: int, width: int) -> EncoderUNet:
    """U-Net on a ResNet-34 encoder (smp ``Unet("resnet34")`` layout)."""
    return EncoderUNet(in_channels, out_channels, width, "resnet34")


@register("encoder_unet_resnet50", reference_width=16)
def encoder_unet_resnet50(in_channels: int, out_channels: int, width: int) -> EncoderUNet:
    """U-Net on a ResNet-50 encoder (smp ``Unet("resnet50")`` layout)."""
    return EncoderUNet(in_channels, out_channels, width, "resnet50")

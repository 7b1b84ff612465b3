"""The U-shaped encoder-decoder shared by the U-Net, ResUNet and Residual-Inception U-Net.

Ronneberger, Fischer, Brox 2015, "U-Net: convolutional networks for biomedical image
segmentation" (MICCAI); the networks differ only in their block and upsampling.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .base import require_stride

Block = Callable[[int, int], nn.Module]


class UShapedNet(nn.Module):
    """Encoder of ``depth + 1`` blocks with 2x2 max pooling between them (the last is the
    bottleneck), decoder of ``depth`` blocks on the upsampled features concatenated with the
    encoder's, and a 1x1 head.

    Args:
        in_channels, out_channels: input channels and output logit channels.
        width: first-level features, doubled at each level down.
        depth: poolings; height and width must be divisible by ``2**depth`` (:attr:`stride`).
        block: ``block(in_channels, out_channels)``, a module keeping the spatial size.
        transposed: upsample with a 2x2 transposed convolution halving the features (else
            bilinear interpolation, keeping them).

    Shapes:
        ``(B, in_channels, H, W)`` float32 -> ``(B, out_channels, H, W)`` logits.

    Raises:
        InputSizeError: in forward, ``H`` or ``W`` not divisible by ``2**depth``.
    """

    def __init__(self, in_channels: int, out_channels: int, width: int, depth: int, block: Block, transposed: bool):
        super().__init__()
        features = [width * 2**level for level in range(depth + 1)]
        levels = list(reversed(range(depth)))
        self.encoders = nn.ModuleList([block(in_channels, features[0])])
        self.encoders.extend(block(features[i], features[i + 1]) for i in range(depth))
        if transposed:
            self.upsamples = nn.ModuleList(nn.ConvTranspose2d(features[i + 1], features[i], 2, stride=2) for i in levels)
            self.decoders = nn.ModuleList(block(2 * features[i], features[i]) for i in levels)
        else:
            self.upsamples = None
            self.decoders = nn.ModuleList(block(features[i + 1] + features[i], features[i]) for i in levels)
        self.head = nn.Conv2d(features[0], out_channels, 1)
        require_stride(self, 2**depth)

    def _upsample(self, x: torch.Tensor, level: int, size: torch.Size) -> torch.Tensor:
        if self.upsamples is not None:
            return self.upsamples[level](x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, encoder in enumerate(self.encoders):
            x = encoder(F.max_pool2d(x, 2) if level else x)
            skips.append(x)
        for level, (decoder, skip) in enumerate(zip(self.decoders, reversed(skips[:-1]))):
            x = decoder(torch.cat([self._upsample(x, level, skip.shape[-2:]), skip], dim=1))
        return self.head(x)

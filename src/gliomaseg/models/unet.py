"""The classic U-Net (Ronneberger et al. 2015) in the configuration of Buda et al. 2019.

Buda, Saha, Mazurowski, Computers in Biology and Medicine 109 (2019), and their reference code
``brain-segmentation-pytorch``: four levels, two 3x3 convolutions with BatchNorm and ReLU per
block, 2x2 max pooling, 2x2 transposed-convolution upsampling, skip concatenation, a 1x1 output
convolution. With ``width=32`` the features are 32-64-128-256 and a 512 bottleneck (7.76M
parameters). Outputs are logits; apply a sigmoid for probabilities.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 convolutions (no bias, as BatchNorm follows), each with BatchNorm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net with ``depth`` poolings.

    Args:
        in_channels: input channels (3 for LGG: pre-contrast, FLAIR, post-contrast).
        out_channels: output channels (1 for a binary mask).
        width: features of the first level, doubled at each level down.
        depth: number of 2x2 poolings; input height and width must be divisible by ``2**depth``.

    Shapes:
        input ``(B, in_channels, H, W)`` float32; output ``(B, out_channels, H, W)`` logits.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1, width: int = 32, depth: int = 4):
        super().__init__()
        features = [width * 2**level for level in range(depth + 1)]
        self.encoders = nn.ModuleList()
        channels = in_channels
        for feat in features[:-1]:
            self.encoders.append(conv_block(channels, feat))
            channels = feat
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = conv_block(features[-2], features[-1])
        self.upsamples = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for feat in reversed(features[:-1]):
            self.upsamples.append(nn.ConvTranspose2d(feat * 2, feat, 2, stride=2))
            self.decoders.append(conv_block(feat * 2, feat))
        self.head = nn.Conv2d(features[0], out_channels, 1)
        self.stride = 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for upsample, decoder, skip in zip(self.upsamples, self.decoders, reversed(skips)):
            x = decoder(torch.cat([upsample(x), skip], dim=1))
        return self.head(x)


@register("unet", reference_width=32)
def unet(in_channels: int, out_channels: int, width: int) -> UNet:
    """Buda et al. 2019 U-Net; ``width=32`` is their configuration."""
    return UNet(in_channels, out_channels, width)

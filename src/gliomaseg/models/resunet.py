"""ResUNet: a U-Net with residual blocks in encoder and decoder.

Zhang, Liu, Wang, "Road extraction by deep residual U-Net", IEEE GRSL 15(5) 2018, as used in
the LGG Kaggle notebooks: residual blocks (two 3x3 convolutions with BatchNorm and ReLU, plus a
1x1 projection shortcut when the width changes), 2x2 max pooling, bilinear upsampling,
concatenation of the skip features. Four poolings; ``width`` features at the first level,
doubled at each level down.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register
from .ushape import UShapedNet


class ResidualBlock(nn.Module):
    """``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``; shapes ``(B, in, H, W) -> (B, out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = nn.Identity() if in_channels == out_channels else nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ResUNet(UShapedNet):
    """Residual U-Net: :class:`ResidualBlock` everywhere, bilinear upsampling.

    Args:
        in_channels, out_channels: input channels and output logit channels.
        width: first-level features (doubled per level; 16 base features: 2.07M parameters).
        depth: poolings; height and width must be divisible by ``2**depth``.

    Shapes:
        ``(B, in_channels, H, W)`` float32 -> ``(B, out_channels, H, W)`` logits.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1, width: int = 16, depth: int = 4):
        super().__init__(in_channels, out_channels, width, depth, ResidualBlock, transposed=False)


@register("resunet", reference_width=64)
def resunet(in_channels: int, out_channels: int, width: int) -> ResUNet:
    """Residual U-Net (Zhang et al. 2018)."""
    return ResUNet(in_channels, out_channels, width)

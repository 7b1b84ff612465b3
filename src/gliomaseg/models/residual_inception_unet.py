"""Residual-Inception U-Net: U-Net whose blocks are Inception modules with a residual shortcut.

Each block runs parallel 1x1, 3x3 and 5x5 convolutions and a 3x3 max-pool followed by a 1x1
convolution (Szegedy et al. 2015, "Going deeper with convolutions"), each with BatchNorm and
ReLU, concatenates them (1/4, 1/2, 1/8 and 1/8 of the block's output channels) and adds a 1x1
projection of the input (He et al. 2016). With ``width=128`` the encoder has 128-256-512-1024
features and a 2048 bottleneck (the full-size network of the Residual-Inception U-Net papers,
61.3M parameters); smaller ``width`` gives CPU-sized variants (16: 0.96M).
Upsampling: 2x2 transposed convolutions; skip features concatenated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register
from .ushape import UShapedNet


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class InceptionResidualBlock(nn.Module):
    """Parallel 1x1 / 3x3 / 5x5 / pool branches, concatenated, plus a projected shortcut.

    Shapes: ``(B, in, H, W) -> (B, out, H, W)``; ``out`` must be divisible by 8.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        if out_channels % 8:
            raise ValueError(f"InceptionResidualBlock needs out_channels divisible by 8, got {out_channels}")
        eighth = out_channels // 8
        self.branch1 = _conv_bn_relu(in_channels, 2 * eighth, 1)
        self.branch3 = _conv_bn_relu(in_channels, 4 * eighth, 3)
        self.branch5 = _conv_bn_relu(in_channels, eighth, 5)
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), _conv_bn_relu(in_channels, eighth, 1))
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)]
        return F.relu(torch.cat(branches, dim=1) + self.shortcut(x))


class ResidualInceptionUNet(UShapedNet):
    """Residual-Inception U-Net: :class:`InceptionResidualBlock` everywhere, transposed-conv upsampling.

    Args:
        in_channels, out_channels: input channels and output logit channels.
        width: first-level features (128 for the full network), doubled per level; multiple of 8.
        depth: poolings; height and width must be divisible by ``2**depth``.

    Shapes:
        ``(B, in_channels, H, W)`` float32 -> ``(B, out_channels, H, W)`` logits.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1, width: int = 128, depth: int = 4):
        super().__init__(in_channels, out_channels, width, depth, InceptionResidualBlock, transposed=True)


@register("residual_inception_unet", reference_width=128)
def residual_inception_unet(in_channels: int, out_channels: int, width: int) -> ResidualInceptionUNet:
    """Residual-Inception U-Net; ``width=128`` is the full-size network."""
    return ResidualInceptionUNet(in_channels, out_channels, width)

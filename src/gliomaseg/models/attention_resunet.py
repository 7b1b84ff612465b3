"""Attention-gated residual U-Net on a ResNet-50 encoder ("ResUpNet").

Encoder: ResNet-50 (:mod:`.resnet`), skips after conv1, layer1, layer2 and layer3, layer4 as
the bottleneck. Decoder: at each level the features are upsampled 2x, the skip is weighted by
an additive attention gate (Oktay et al. 2018, "Attention U-Net: learning where to look for the
pancreas", MIDL) driven by the upsampled features, both are concatenated and passed through a
residual block (:class:`~.resunet.ResidualBlock`); widths 512-256-128-64-32 (``width=32``), the
last level back at full resolution without a skip. A 1-channel input is replicated to 3, so
3-channel ImageNet encoder weights apply. 32.6M parameters at ``width=32`` (23.5M of them the
encoder); the Keras notebooks that describe this network report about 27.7M, and their decoder
blocks are not specified closely enough to match that figure exactly.

The encoder module (:mod:`.resnet`, with MONAI) is imported when the network is built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import require_stride
from .registry import register
from .resunet import ResidualBlock


class AttentionGate(nn.Module):
    """Additive attention: ``skip * sigmoid(psi(relu(W_g g + W_x skip)))`` (Oktay et al. 2018).

    Shapes: ``skip`` ``(B, C_x, H, W)`` and gating ``g`` ``(B, C_g, H, W)`` -> ``(B, C_x, H, W)``.
    """

    def __init__(self, skip_channels: int, gate_channels: int):
        super().__init__()
        inter = max(gate_channels // 2, 1)
        self.skip_proj = nn.Sequential(nn.Conv2d(skip_channels, inter, 1, bias=False), nn.BatchNorm2d(inter))
        self.gate_proj = nn.Sequential(nn.Conv2d(gate_channels, inter, 1, bias=False), nn.BatchNorm2d(inter))
        self.psi = nn.Sequential(nn.Conv2d(inter, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid())

    def forward(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return skip * self.psi(F.relu(self.skip_proj(skip) + self.gate_proj(gate)))


class DecoderLevel(nn.Module):
    """Upsample 2x and reduce to ``out`` features (1x1 conv), gate the skip with the result,
    concatenate, project to ``out`` (1x1 conv) and refine with a residual block.

    Shapes: ``x`` ``(B, C_in, h, w)``, ``skip`` ``(B, C_skip, H, W)`` -> ``(B, out, H, W)``.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.reduce = _conv1x1_bn_relu(in_channels, out_channels)
        self.gate = AttentionGate(skip_channels, out_channels)
        self.merge = _conv1x1_bn_relu(out_channels + skip_channels, out_channels)
        self.refine = ResidualBlock(out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.reduce(F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False))
        return self.refine(self.merge(torch.cat([x, self.gate(skip, x)], dim=1)))


def _conv1x1_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class AttentionResUNet(nn.Module):
    """ResNet-50 encoder, attention-gated skips, residual decoder.

    Args:
        in_channels: 1 (replicated to 3) or 3; other counts get a new first convolution.
        out_channels: output logit channels.
        width: features of the last decoder level; the others are 16x, 8x, 4x, 2x it.

    Shapes:
        ``(B, in_channels, H, W)`` float32, ``H`` and ``W`` divisible by 32 ->
        ``(B, out_channels, H, W)`` logits.

    Raises:
        InputSizeError: in forward, ``H`` or ``W`` not divisible by 32 (:attr:`stride`).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1, width: int = 32):
        from .resnet import ResNetEncoder

        super().__init__()
        self.replicate = in_channels == 1
        self.encoder = ResNetEncoder("resnet50", 3 if self.replicate else in_channels)
        skips = self.encoder.channels[:-1][::-1]  # 1024, 512, 256, 64
        widths = [width * m for m in (16, 8, 4, 2)]
        inputs = [self.encoder.channels[-1], *widths[:-1]]
        self.decoders = nn.ModuleList(DecoderLevel(i, s, o) for i, s, o in zip(inputs, skips, widths))
        self.final = ResidualBlock(widths[-1], width)
        self.head = nn.Conv2d(width, out_channels, 1)
        require_stride(self, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        features = self.encoder(x.expand(-1, 3, -1, -1) if self.replicate else x)
        x = features[-1]
        for decoder, skip in zip(self.decoders, reversed(features[:-1])):
            x = decoder(x, skip)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return self.head(self.final(x))


@register("attention_resunet", reference_width=32)
def attention_resunet(in_channels: int, out_channels: int, width: int) -> AttentionResUNet:
    """Attention-gated ResUNet on ResNet-50 ("ResUpNet")."""
    return AttentionResUNet(in_channels, out_channels, width)

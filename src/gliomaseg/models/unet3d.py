"""3D U-Net for multi-sequence volumes (BraTS), built on MONAI's ``BasicUNet``.

Çiçek et al. 2016, "3D U-Net: learning dense volumetric segmentation from sparse annotation"
(MICCAI), in MONAI's ``BasicUNet`` form: five levels of two 3x3x3 convolutions with instance
norm and LeakyReLU, 2x2x2 max pooling, transposed-convolution upsampling, skip concatenation.
Features ``w, w, 2w, 4w, 8w`` with a ``w``-feature last decoder level; MONAI's default is
``w = 32`` (5.75M parameters). Input sides must be divisible by 16; outputs are logits, one
channel per region (sigmoid, regions may overlap). MONAI is imported when a network is built,
not with this module (it takes about a second).
"""

from __future__ import annotations

from torch import nn

from .base import require_stride
from .registry import register


@register("unet3d", reference_width=32, spatial_dims=3)
def unet3d(in_channels: int, out_channels: int, width: int) -> nn.Module:
    """3D U-Net: ``(B, in_channels, X, Y, Z)`` float32, sides divisible by 16 (``stride``) ->
    logits ``(B, out_channels, X, Y, Z)``; other sides raise :class:`~.base.InputSizeError`."""
    from monai.networks.nets import BasicUNet

    network = BasicUNet(spatial_dims=3, in_channels=in_channels, out_channels=out_channels,
                        features=(width, width, 2 * width, 4 * width, 8 * width, width))
    return require_stride(network, 16)

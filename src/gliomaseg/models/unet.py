"""The classic U-Net (Ronneberger et al. 2015) in the configuration of Buda et al. 2019.

Buda, Saha, Mazurowski, Computers in Biology and Medicine 109 (2019), and their reference code
``brain-segmentation-pytorch``: four levels, two 3x3 convolutions with BatchNorm and ReLU per
block, 2x2 max pooling, 2x2 transposed-convolution upsampling, skip concatenation, a 1x1 output
convolution. With ``width=32`` the features are 32-64-128-256 and a 512 bottleneck (7.76M
parameters). Outputs are logits; apply a sigmoid for probabilities.
"""

from __future__ import annotations

from torch import nn

from .registry import register
from .ushape import UShapedNet


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


def current_key(key: str, depth: int) -> str:
    """State-dict key of a U-Net saved before it was a :class:`UShapedNet` -> its key now.

    The old U-Net kept its bottleneck apart: ``bottleneck.<rest>`` is now
    ``encoders.<depth>.<rest>``; every other key (``encoders.0-3``, ``upsamples.*``,
    ``decoders.*``, ``head.*``) is unchanged, as are the layers and their order.
    """
    return f"encoders.{depth}.{key.removeprefix('bottleneck.')}" if key.startswith("bottleneck.") else key


class UNet(UShapedNet):
    """U-Net with ``depth`` poolings: :func:`conv_block` everywhere, transposed-conv upsampling.

    Weights saved in the old layout (a separate ``bottleneck``, as in the bundled models) load
    as well: their keys are renamed by :func:`current_key`.

    Args:
        in_channels: input channels (3 for LGG: pre-contrast, FLAIR, post-contrast).
        out_channels: output channels (1 for a binary mask).
        width: features of the first level, doubled at each level down.
        depth: number of 2x2 poolings; input height and width must be divisible by ``2**depth``.

    Shapes:
        input ``(B, in_channels, H, W)`` float32; output ``(B, out_channels, H, W)`` logits.

    Raises:
        InputSizeError: in forward, ``H`` or ``W`` not divisible by ``2**depth``.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1, width: int = 32, depth: int = 4):
        super().__init__(in_channels, out_channels, width, depth, conv_block, transposed=True)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """nn.Module's loading step for this module, after renaming old-layout keys in place
        (``load_state_dict`` works on a copy of the caller's dict)."""
        depth = len(self.encoders) - 1
        for key in [k for k in state_dict if k.startswith(prefix)]:
            renamed = prefix + current_key(key[len(prefix):], depth)
            if renamed != key:
                state_dict[renamed] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


@register("unet", reference_width=32)
def unet(in_channels: int, out_channels: int, width: int) -> UNet:
    """Buda et al. 2019 U-Net; ``width=32`` is their configuration."""
    return UNet(in_channels, out_channels, width)

"""ResNet-34 and ResNet-50 encoders (He et al. 2016, "Deep residual learning for image
recognition") built with MONAI's ``ResNet`` in torchvision's configuration: 7x7 stride-2 stem,
3x3 stride-2 max pooling, projection shortcuts (1x1 convolution without bias, BatchNorm) where
the shape changes, bottleneck stride on the 3x3 convolution ("v1.5"). The module names are
torchvision's (``conv1``, ``bn1``, ``layer1`` .. ``layer4``), so a torchvision or timm state dict
saved to a local file loads into them without torchvision. Nothing is downloaded.

MONAI's own ``ResNetFeatures``/``ResNetEncoder`` are not used: they fix MedicalNet's settings,
which for ResNet-34 are parameter-free zero-padding shortcuts ("type A"), not torchvision's.
This module imports MONAI (about a second): the networks import it when they are built.
"""

from __future__ import annotations

from pathlib import Path

import torch
from monai.networks.nets.resnet import ResNet, ResNetBlock, ResNetBottleneck, ResNetFeatures, get_inplanes

from ..errors import InputError

ARCHITECTURES = {"resnet34": (ResNetBlock, [3, 4, 6, 3]), "resnet50": (ResNetBottleneck, [3, 4, 6, 3])}


class ResNetEncoder(ResNet):
    """A 2D ResNet without its classifier, returning the features after conv1 (relu), layer1,
    layer2, layer3 and layer4 (Keras names for ResNet-50: conv1_relu, conv2_block3,
    conv3_block4, conv4_block6, conv5_block3).

    Args:
        architecture: ``"resnet34"`` or ``"resnet50"``.
        in_channels: input channels (3 for ImageNet weights).

    Shapes:
        ``(B, in_channels, H, W)`` float32 -> five float32 maps at H/2, H/4, H/8, H/16, H/32 with
        :attr:`channels` features: (64, 64, 128, 256, 512) for ResNet-34, (64, 256, 512, 1024,
        2048) for ResNet-50.
    """

    def __init__(self, architecture: str = "resnet50", in_channels: int = 3):
        block, layers = ARCHITECTURES[architecture]
        super().__init__(block, layers, get_inplanes(), spatial_dims=2, n_input_channels=in_channels,
                         conv1_t_size=7, conv1_t_stride=2, shortcut_type="B", feed_forward=False,
                         bias_downsample=False)
        self.channels = (64, *(planes * block.expansion for planes in get_inplanes()))
        self.architecture = architecture

    forward = ResNetFeatures.forward  # MONAI's: the five feature maps instead of class scores

    def load_pretrained(self, path: str | Path) -> None:
        """Load a torchvision/timm ResNet state dict of the same architecture (``.safetensors``,
        or a ``.pth`` read with ``torch.load(weights_only=True)``, which refuses arbitrary
        pickled objects). The classifier (``fc.*``) is ignored.

        Raises:
            InputError: unreadable file, or weights that do not fit :attr:`architecture`.
        """
        path = Path(path)
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise InputError(path, "no such encoder weights file") from None
        except Exception as exc:  # noqa: BLE001  torch.load and safetensors raise many types
            raise InputError(path, f"not a readable state dict ({exc.__class__.__name__}: {exc})") from None
        if not isinstance(state, dict):
            raise InputError(path, f"not a state dict but a {type(state).__name__}")
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        try:
            self.load_state_dict(state)
        except RuntimeError as exc:
            raise InputError(path, f"not {self.architecture} weights: {str(exc).splitlines()[0]}") from None

"""ResNet-50 encoder (He et al. 2016, "Deep residual learning for image recognition") laid out
exactly like torchvision's ``resnet50`` (module names ``conv1``, ``bn1``, ``layer1`` ..
``layer4``; bottleneck stride on the 3x3 convolution, "v1.5"), so a torchvision or timm state
dict saved to a local file loads into it without torchvision. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import InputError

LAYERS = (3, 4, 6, 3)  # bottlenecks per stage of ResNet-50
EXPANSION = 4


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 convolutions with BatchNorm, plus the (projected) input."""

    def __init__(self, in_channels: int, planes: int, stride: int = 1):
        super().__init__()
        out_channels = planes * EXPANSION
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet50Encoder(nn.Module):
    """ResNet-50 without its classifier, returning the features after conv1 (relu), layer1,
    layer2, layer3 and layer4 (Keras: conv1_relu, conv2_block3, conv3_block4, conv4_block6,
    conv5_block3).

    Shapes:
        ``(B, 3, H, W)`` -> ``[(B, 64, H/2, W/2), (B, 256, H/4, W/4), (B, 512, H/8, W/8),
        (B, 1024, H/16, W/16), (B, 2048, H/32, W/32)]``.
    """

    channels = (64, 256, 512, 1024, 2048)

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = 64
        for index, (blocks, planes) in enumerate(zip(LAYERS, (64, 128, 256, 512))):
            stride = 1 if index == 0 else 2
            stage = [Bottleneck(in_channels, planes, stride)]
            stage += [Bottleneck(planes * EXPANSION, planes) for _ in range(blocks - 1)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*stage))
            in_channels = planes * EXPANSION

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        stem = self.relu(self.bn1(self.conv1(x)))
        features = [stem]
        x = self.maxpool(stem)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            features.append(x)
        return features

    def load_pretrained(self, path: str | Path) -> None:
        """Load a torchvision/timm ResNet-50 state dict (``.safetensors``, or a ``.pth`` read with
        ``torch.load(weights_only=True)``, which refuses arbitrary pickled objects). The
        classifier (``fc.*``) is ignored.

        Raises:
            InputError: unreadable file, or weights that do not fit a ResNet-50.
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
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        try:
            self.load_state_dict(state)
        except RuntimeError as exc:
            raise InputError(path, f"not ResNet-50 weights: {str(exc).splitlines()[0]}") from None

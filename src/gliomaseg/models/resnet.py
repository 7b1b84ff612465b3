"""ResNet-34 and ResNet-50 encoders (He et al. 2016, "Deep residual learning for image
recognition") laid out exactly like torchvision's ``resnet34``/``resnet50`` (module names
``conv1``, ``bn1``, ``layer1`` .. ``layer4``; bottleneck stride on the 3x3 convolution, "v1.5"),
so a torchvision or timm state dict saved to a local file loads into them without torchvision.
Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import InputError

class BasicBlock(nn.Module):
    """Two 3x3 convolutions (the first with the stride) with BatchNorm, plus the (projected) input."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(in_channels, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """torchvision's ``downsample``: a strided 1x1 convolution with BatchNorm, when needed."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 convolutions with BatchNorm, plus the (projected) input."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


ARCHITECTURES = {"resnet34": (BasicBlock, (3, 4, 6, 3)), "resnet50": (Bottleneck, (3, 4, 6, 3))}


class ResNetEncoder(nn.Module):
    """A ResNet without its classifier, returning the features after conv1 (relu), layer1,
    layer2, layer3 and layer4 (Keras names for ResNet-50: conv1_relu, conv2_block3,
    conv3_block4, conv4_block6, conv5_block3).

    Args:
        architecture: ``"resnet34"`` or ``"resnet50"``.
        in_channels: input channels (3 for ImageNet weights).

    Shapes:
        ``(B, in_channels, H, W)`` -> five maps at H/2, H/4, H/8, H/16, H/32 with
        :attr:`channels` features: (64, 64, 128, 256, 512) for ResNet-34, (64, 256, 512, 1024,
        2048) for ResNet-50.
    """

    def __init__(self, architecture: str = "resnet50", in_channels: int = 3):
        super().__init__()
        block, layers = ARCHITECTURES[architecture]
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = 64
        for index, (blocks, planes) in enumerate(zip(layers, (64, 128, 256, 512))):
            stage = [block(channels, planes, 1 if index == 0 else 2)]
            channels = planes * block.expansion
            stage += [block(channels, planes) for _ in range(blocks - 1)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*stage))
        self.channels = (64, *(planes * block.expansion for planes in (64, 128, 256, 512)))
        self.architecture = architecture

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        stem = self.relu(self.bn1(self.conv1(x)))
        features = [stem]
        x = self.maxpool(stem)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            features.append(x)
        return features

    def load_pretrained(self, path: str | Path) -> None:
        """Load a torchvision/timm ResNet state dict of the same architecture (``.safetensors``, or a ``.pth`` read with
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
            raise InputError(path, f"not {self.architecture} weights: {str(exc).splitlines()[0]}") from None

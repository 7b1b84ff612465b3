"""Local torchvision-layout weights load into the MONAI-built ResNet encoders and give
torchvision's features; nothing is downloaded."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from gliomaseg.config import Config
from gliomaseg.errors import ConfigError, InputError
from gliomaseg.models import create_model
from gliomaseg.models.registry import load_encoder_weights
from gliomaseg.models.resnet import ResNetEncoder


LAYERS = [3, 4, 6, 3]  # blocks per stage, ResNet-34 and ResNet-50
PLANES = [64, 128, 256, 512]
EXPANSION = {"resnet34": 1, "resnet50": 4}


def _pretrained_state(architecture: str = "resnet50") -> dict[str, torch.Tensor]:
    """A random ResNet state dict with torchvision's keys and shapes (torchvision.models.resnet,
    written out here), classifier included, and non-default BatchNorm parameters and buffers."""
    generator = torch.Generator().manual_seed(1)
    state: dict[str, torch.Tensor] = {}

    def conv(name: str, out_channels: int, in_channels: int, kernel: int) -> None:
        fan_in = in_channels * kernel * kernel
        weight = torch.randn(out_channels, in_channels, kernel, kernel, generator=generator)
        state[f"{name}.weight"] = weight * (2 / fan_in) ** 0.5

    def bn(name: str, channels: int) -> None:
        ranges = {"weight": (0.5, 1.5), "bias": (-0.2, 0.2), "running_mean": (-0.2, 0.2), "running_var": (0.5, 1.5)}
        for key, (low, high) in ranges.items():
            state[f"{name}.{key}"] = torch.empty(channels).uniform_(low, high, generator=generator)
        state[f"{name}.num_batches_tracked"] = torch.tensor(7)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    channels, expansion = 64, EXPANSION[architecture]
    for stage, (blocks, planes) in enumerate(zip(LAYERS, PLANES), start=1):
        for index in range(blocks):
            name = f"layer{stage}.{index}"
            kernels = [3, 3] if expansion == 1 else [1, 3, 1]
            widths = [planes] * (len(kernels) - 1) + [planes * expansion]
            for number, (kernel, width, previous) in enumerate(zip(kernels, widths, [channels, *widths]), start=1):
                conv(f"{name}.conv{number}", width, previous, kernel)
                bn(f"{name}.bn{number}", width)
            if index == 0 and (stage > 1 or channels != planes * expansion):
                conv(f"{name}.downsample.0", planes * expansion, channels, 1)
                bn(f"{name}.downsample.1", planes * expansion)
            channels = planes * expansion
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, channels), torch.randn(1000)
    return state


def _torchvision_features(state: dict[str, torch.Tensor], architecture: str, x: torch.Tensor) -> list[torch.Tensor]:
    """torchvision's ResNet forward (v1.5: a bottleneck's stride on its 3x3 convolution),
    written with torch.nn.functional from ``state``: the maps after conv1 (relu) and each stage."""

    def bn(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.batch_norm(x, state[f"{name}.running_mean"], state[f"{name}.running_var"],
                            state[f"{name}.weight"], state[f"{name}.bias"], training=False, eps=1e-5)

    x = F.relu(bn(F.conv2d(x, state["conv1.weight"], stride=2, padding=3), "bn1"))
    features = [x]
    x = F.max_pool2d(x, 3, stride=2, padding=1)
    kernels = [3, 3] if EXPANSION[architecture] == 1 else [1, 3, 1]
    strided = kernels.index(3) + 1  # the convolution carrying a block's stride: its first 3x3
    for stage, blocks in enumerate(LAYERS, start=1):
        for index in range(blocks):
            name, stride = f"layer{stage}.{index}", 2 if stage > 1 and index == 0 else 1
            out = x
            for number, kernel in enumerate(kernels, start=1):
                out = F.conv2d(out, state[f"{name}.conv{number}.weight"],
                               stride=stride if number == strided else 1, padding=kernel // 2)
                out = bn(out, f"{name}.bn{number}")
                out = F.relu(out) if number < len(kernels) else out
            shortcut = x
            if f"{name}.downsample.0.weight" in state:
                shortcut = bn(F.conv2d(x, state[f"{name}.downsample.0.weight"], stride=stride), f"{name}.downsample.1")
            x = F.relu(out + shortcut)
        features.append(x)
    return features


@pytest.mark.parametrize("architecture", ["resnet34", "resnet50"])
def test_encoder_features_match_torchvision_definition(tmp_path, architecture):
    """MONAI-built encoder with torchvision weights == torchvision's forward written out: all five maps."""
    state = _pretrained_state(architecture)
    path = tmp_path / f"{architecture}.pth"
    torch.save(state, path)
    encoder = ResNetEncoder(architecture)
    encoder.load_pretrained(path)
    x = torch.randn(2, 3, 96, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = encoder.eval()(x)
        reference = _torchvision_features(state, architecture, x)
    assert [f.shape[1] for f in ours] == list(encoder.channels)
    for level, (mine, theirs) in enumerate(zip(ours, reference)):
        assert mine.shape == theirs.shape == (2, encoder.channels[level], 96 // 2 ** (level + 1), 64 // 2 ** (level + 1))
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5 * theirs.abs().max().item())


@pytest.mark.parametrize("network,architecture,suffix", [
    ("attention_resunet", "resnet50", ".pth"),
    ("attention_resunet", "resnet50", ".safetensors"),
    ("encoder_unet", "resnet34", ".pth"),
    ("encoder_unet_resnet50", "resnet50", ".safetensors"),
])
def test_encoder_weights_load_from_local_file(tmp_path, network, architecture, suffix):
    """A state dict saved on the fly (torch.save or safetensors) ends up in the model's encoder."""
    state = _pretrained_state(architecture)
    path = tmp_path / f"resnet50{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    model = create_model(Config.from_dict({"model": {"name": network, "width": 8}}).model)
    load_encoder_weights(model, str(path))
    loaded = model.encoder.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if not k.startswith("fc."))


def test_wrong_weights_and_networks_are_reported(tmp_path):
    """Weights of another shape are an InputError; a network without encoder a ConfigError."""
    path = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(3, 3, 3, 3)}, path)
    model = create_model(Config.from_dict({"model": {"name": "attention_resunet", "width": 8}}).model)
    with pytest.raises(InputError, match="not resnet50 weights"):
        load_encoder_weights(model, str(path))
    torch.save(torch.zeros(3), path)
    with pytest.raises(InputError, match="not a state dict but a Tensor"):
        load_encoder_weights(model, str(path))
    with pytest.raises(InputError, match="no such"):
        load_encoder_weights(model, str(tmp_path / "missing.pth"))
    with pytest.raises(ConfigError, match="no pretrainable encoder"):
        load_encoder_weights(create_model(Config().model), str(path))


def test_one_channel_input_is_replicated():
    """A 1-channel attention_resunet takes 1-channel slices and keeps the 3-channel encoder."""
    model = create_model(Config.from_dict({"model": {"name": "attention_resunet", "in_channels": 1, "width": 8}}).model)
    assert model.encoder.conv1.in_channels == 3
    assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 1, 64, 64)

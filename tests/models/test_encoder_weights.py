"""Local encoder weights load into the ResNet-50 encoder; nothing is downloaded."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from gliomaseg.config import Config
from gliomaseg.errors import ConfigError, InputError
from gliomaseg.models import create_model
from gliomaseg.models.registry import load_encoder_weights
from gliomaseg.models.resnet import ResNetEncoder


def _pretrained_state(architecture: str = "resnet50") -> dict[str, torch.Tensor]:
    """A ResNet state dict as torchvision saves it, classifier included, with non-default values."""
    torch.manual_seed(1)
    encoder = ResNetEncoder(architecture)
    for buffer in encoder.buffers():
        if buffer.dtype.is_floating_point:
            buffer.uniform_(0.5, 1.5)
    state = dict(encoder.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, encoder.channels[-1]), torch.randn(1000)
    return state


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
    with pytest.raises(InputError, match="no such"):
        load_encoder_weights(model, str(tmp_path / "missing.pth"))
    with pytest.raises(ConfigError, match="no pretrainable encoder"):
        load_encoder_weights(create_model(Config().model), str(path))


def test_one_channel_input_is_replicated():
    """A 1-channel attention_resunet takes 1-channel slices and keeps the 3-channel encoder."""
    model = create_model(Config.from_dict({"model": {"name": "attention_resunet", "in_channels": 1, "width": 8}}).model)
    assert model.encoder.conv1.in_channels == 3
    assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 1, 64, 64)

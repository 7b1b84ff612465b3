"""The U-Net is a UShapedNet, and weights saved before that (the bundled models) still load."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from gliomaseg.config import Config
from gliomaseg.models.unet import UNet, current_key
from gliomaseg.models.weights import bundled_weights, load_model, save_model


def _old_layout(state: dict) -> dict:
    """A state dict as gliomaseg 0.1 saved a depth-4 UNet: the deepest block as `bottleneck.*`."""
    return {("bottleneck." + key.removeprefix("encoders.4.") if key.startswith("encoders.4.") else key): value
            for key, value in state.items()}


@pytest.mark.parametrize("dataset", ["t1ce"])  # a single U-Net; lgg (2.3.0) and brats (2.4.0) are ensembles of two
def test_bundled_weights_in_the_old_layout_still_load(dataset, tmp_path):
    """The bundled weights written in 0.1's layout (as they shipped before the U-Net became a
    UShapedNet): every key maps to one key of the new network, and load_model (strict) puts
    each tensor there, giving the same outputs."""
    bundled, config = load_model(bundled_weights(dataset))
    stored = _old_layout(load_file(str(bundled_weights(dataset))))
    assert any(key.startswith("bottleneck.") for key in stored)
    old_file = tmp_path / "old.safetensors"
    save_file(stored, str(old_file), metadata={"gliomaseg.config": json.dumps(config.to_dict())})
    model, _ = load_model(old_file)
    assert isinstance(model, UNet)
    renamed = {current_key(key, depth=4): tensor for key, tensor in stored.items()}
    state = model.state_dict()
    assert len(renamed) == len(stored) and renamed.keys() == state.keys()
    assert all(torch.equal(state[key], tensor) for key, tensor in renamed.items())
    x = torch.randn(1, config.model.in_channels, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), bundled(x))


def test_new_layout_round_trips_and_old_layout_loads_nested(tmp_path):
    """A freshly saved UNet has no old keys and reloads identically; an old-layout state dict
    loads into a UNet that is a submodule (keys with a prefix)."""
    torch.manual_seed(0)
    config = Config.from_dict({"model": {"name": "unet", "width": 4}})
    model = UNet(3, 1, 4).eval()
    save_model(model, config, tmp_path / "unet.safetensors")
    assert not any(key.startswith("bottleneck.") for key in load_file(str(tmp_path / "unet.safetensors")))
    reloaded, _ = load_model(tmp_path / "unet.safetensors")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), reloaded(x))
    old_layout = _old_layout(model.state_dict())
    assert [current_key(key, depth=4) for key in old_layout] == list(model.state_dict())
    container = nn.Sequential(UNet(3, 1, 4)).eval()
    container.load_state_dict({f"0.{key}": value for key, value in old_layout.items()})
    with torch.no_grad():
        assert torch.equal(container(x), model(x))

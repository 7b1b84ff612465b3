"""Every registered network builds, trains on real slices, saves and reloads identically."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TRAIN_PATIENTS
from gliomaseg.config import Config
from gliomaseg.data.kaggle3m import load_patient, scan_patient_folder
from gliomaseg.data.preprocessing import mask_to_network, to_network
from gliomaseg.losses import create_loss
from gliomaseg.models import MODELS, create_model
from gliomaseg.models.registry import complexity
from gliomaseg.models.weights import load_model, save_model

SIZE = 64
SMALL_WIDTH = 8


@pytest.fixture(scope="module")
def real_batch(lgg_root):
    """8 real slices around the tumor of a training patient, brain-cropped to 64x64."""
    patient = load_patient(scan_patient_folder(lgg_root / TRAIN_PATIENTS[0]))
    tumor = patient.masks.reshape(len(patient.masks), -1).any(1).nonzero()[0]
    chosen = slice(max(0, tumor[0] - 2), max(0, tumor[0] - 2) + 8)
    config = Config.from_dict({"data": {"image_size": SIZE, "crop_to_brain": True}})
    network_input = to_network(patient.images[chosen], config.data)
    return network_input.images, mask_to_network(patient.masks[chosen], network_input.box, SIZE)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_network_trains_saves_and_reloads(name, real_batch, tmp_path):
    """Logits have the input's size; a few Adam steps lower the loss; reloaded weights give identical outputs."""
    torch.manual_seed(0)
    config = Config.from_dict({"model": {"name": name, "width": SMALL_WIDTH}, "data": {"image_size": SIZE}})
    model = create_model(config.model)
    images, masks = real_batch
    loss_fn = create_loss("bce_dice")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(6):
        loss = loss_fn(model(images), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert model(images).shape == (8, 1, SIZE, SIZE)
    assert losses[-1] < losses[0], losses
    model.eval()
    path = tmp_path / f"{name}.safetensors"
    save_model(model, config, path)
    reloaded, reloaded_config = load_model(path)
    assert reloaded_config.model.name == name
    with torch.no_grad():
        assert torch.equal(model(images), reloaded(images))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_parameter_count_matches_module(name):
    """complexity() counts the same parameters as the built module, and a positive FLOP count."""
    parameters, gflops = complexity(name, SMALL_WIDTH, size=SIZE)
    built = MODELS[name].builder(3, 1, SMALL_WIDTH)
    assert parameters == sum(p.numel() for p in built.parameters())
    assert gflops > 0


def test_reference_sizes():
    """Published configurations have their documented sizes: Buda U-Net 7.76M, Residual-Inception 61.3M."""
    assert complexity("unet", 32)[0] == pytest.approx(7.76e6, rel=1e-3)
    assert complexity("residual_inception_unet", 128)[0] == pytest.approx(61.3e6, rel=1e-3)


def test_models_command_lists_every_network():
    """`gliomaseg models` prints one row per registered network."""
    done = subprocess.run([str(Path(sys.executable).parent / "gliomaseg"), "models", "--size", "64"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name in MODELS:
        assert name in done.stdout

"""Every registered network builds, trains on real slices, saves and reloads identically."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import BRATS_TRAIN_CASE, TRAIN_PATIENTS
from gliomaseg.config import Config
from gliomaseg.data.brats import load_case, scan_case
from gliomaseg.data.kaggle3m import load_patient, scan_patient_folder
from gliomaseg.data.preprocessing import Preprocessing
from gliomaseg.losses import create_loss
from gliomaseg.models import MODELS, create_model
from gliomaseg.models.registry import complexity
from gliomaseg.models.weights import load_model, save_model

SIZE = 64
SMALL_WIDTH = 8


@pytest.fixture(scope="module")
def real_batch(lgg_root):
    """8 real slices around the tumor of a training patient, brain-cropped to 64x64."""
    case = load_patient(scan_patient_folder(lgg_root / TRAIN_PATIENTS[0]))
    tumor = case.label.reshape(-1, case.label.shape[-1]).any(0).nonzero()[0]
    chosen = slice(max(0, tumor[0] - 2), max(0, tumor[0] - 2) + 8)
    config = Config.from_dict({"data": {"dataset": "kaggle3m", "image_size": SIZE, "crop_to_brain": True}})
    preprocessing = Preprocessing.from_config(config.data, volumetric=False)
    prepared = preprocessing.forward(case.images[..., chosen])
    targets = preprocessing.target(case.labels.to_regions(case.label[..., chosen]), prepared)
    # (C, N, N, S) -> a batch of slices (S, C, N, N)
    return prepared.images.permute(3, 0, 1, 2).contiguous(), targets.permute(3, 0, 1, 2).contiguous()


def _trains_saves_and_reloads(config: Config, images: torch.Tensor, masks: torch.Tensor, tmp_path: Path) -> None:
    """Logits have the masks' shape; a few Adam steps lower the loss; reloaded weights give identical outputs."""
    torch.manual_seed(0)
    model = create_model(config.model)
    loss_fn = create_loss("bce_dice")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(6):
        loss = loss_fn(model(images), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert model(images).shape == masks.shape
    assert losses[-1] < losses[0], losses
    model.eval()
    path = tmp_path / f"{config.model.name}.safetensors"
    save_model(model, config, path)
    reloaded, reloaded_config = load_model(path)
    assert reloaded_config.model.name == config.model.name
    with torch.no_grad():
        assert torch.equal(model(images), reloaded(images))


@pytest.mark.parametrize("name", sorted(name for name, spec in MODELS.items() if spec.spatial_dims == 2))
def test_network_trains_saves_and_reloads(name, real_batch, tmp_path):
    """Every 2D network on 8 real LGG slices."""
    config = Config.from_dict({"model": {"name": name, "width": SMALL_WIDTH}, "data": {"image_size": SIZE}})
    _trains_saves_and_reloads(config, *real_batch, tmp_path)


def test_3d_network_trains_saves_and_reloads(brats_root, tmp_path):
    """The 3D U-Net on two real 32^3 BraTS patches through the tumor (4 sequences in, WT/TC/ET out)."""
    case = load_case(scan_case(brats_root / BRATS_TRAIN_CASE))
    preprocessing = Preprocessing(volumetric=True)  # crop to the brain box, z-score
    prepared = preprocessing.forward(case.images)
    cropped, regions = prepared.images, preprocessing.target(case.labels.to_regions(case.label), prepared)
    x, y, z = (int(axis.median()) - 16 for axis in torch.nonzero(regions[0], as_tuple=True))
    patch = (slice(None), slice(x, x + 32), slice(y, y + 32), slice(z, z + 32))
    images = torch.stack([cropped[patch], cropped[patch].flip(1)])
    masks = torch.stack([regions[patch], regions[patch].flip(1)])
    config = Config.from_dict({"model": {"name": "unet3d", "in_channels": 4, "out_channels": 3, "width": 4},
                               "data": {"dataset": "brats", "patch_size": [32, 32, 32]}})
    _trains_saves_and_reloads(config, images, masks, tmp_path)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_parameter_count_matches_module(name):
    """complexity() counts the same parameters as the built module, and a positive FLOP count."""
    parameters, gflops = complexity(name, SMALL_WIDTH, size=SIZE)
    built = MODELS[name].builder(3, 1, SMALL_WIDTH)  # complexity() builds with 3 input channels too
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

"""BraTS training windows (3D patches and 2.5D slice stacks) on a real case, and a short real 3D
training run whose loss falls."""

from __future__ import annotations

import csv

import pytest
import torch

from conftest import BRATS_TEST_CASES, BRATS_TRAIN_CASE
from gliomaseg.config import AugmentConfig, Config
from gliomaseg.data.brats import scan_case
from gliomaseg.data.volume import stack_slices
from gliomaseg.errors import ConfigError
from gliomaseg.models.weights import load_model
from gliomaseg.training.trainer import train
from gliomaseg.training.volumes import bank_for, training_case

NO_AUGMENT = AugmentConfig(flip=False, rotate_degrees=0, scale=(1.0, 1.0), intensity=0)


@pytest.fixture(scope="module")
def case(brats_root):
    """The training case, cropped and z-scored, with its WT/TC/ET regions."""
    return training_case(scan_case(brats_root / BRATS_TRAIN_CASE))


def brats_config(**sections) -> Config:
    return Config.from_dict({"data": {"dataset": "brats"}, **sections})


def test_stack_slices_orders_neighbours_then_sequences():
    """Channel k * C + c of slice z is sequence c at slice z - context + k, edges repeated."""
    volume = torch.arange(2 * 3 * 3 * 5, dtype=torch.float32).reshape(2, 3, 3, 5)
    stacked = stack_slices(volume, torch.tensor([0, 4]), context=1)
    assert stacked.shape == (2, 6, 3, 3)
    for row, z in enumerate((0, 4)):
        for k, neighbour in enumerate((max(z - 1, 0), z, min(z + 1, 4))):
            for c in range(2):
                assert torch.equal(stacked[row, k * 2 + c], volume[c, :, :, neighbour])


def test_3d_patches_lie_inside_and_follow_the_tumor_fraction(case):
    """Patches have the configured size, match the case's voxels at their corner, and with
    tumor_fraction 1 every patch holds tumor."""
    images, regions = case
    config = brats_config(model={"name": "unet3d", "in_channels": 4, "out_channels": 3},
                          data={"dataset": "brats", "patch_size": [32, 48, 64]})
    bank = bank_for([images], [regions], config)
    generator = torch.Generator().manual_seed(0)
    rows = bank.sample(16, 1.0, generator)
    patches, targets = bank.batch(rows, NO_AUGMENT, generator)
    assert patches.shape == (16, 4, 32, 48, 64) and targets.shape == (16, 3, 32, 48, 64)
    assert all(targets[i, 0].any() for i in range(16))
    _, x, y, z = rows[0].tolist()
    assert torch.equal(patches[0], images[:, x:x + 32, y:y + 48, z:z + 64])


def test_2d5_slices_stack_context_channels(case):
    """2.5D samples are 12-channel 64x64 crops (4 sequences x 3 slices) with 3 region masks."""
    images, regions = case
    config = brats_config(model={"name": "unet", "in_channels": 12, "out_channels": 3},
                          data={"dataset": "brats", "image_size": 64, "context_slices": 1})
    bank = bank_for([images], [regions], config)
    generator = torch.Generator().manual_seed(1)
    rows = bank.sample(8, 0.5, generator)
    stacks, targets = bank.batch(rows, NO_AUGMENT, generator)
    assert stacks.shape == (8, 12, 64, 64) and targets.shape == (8, 3, 64, 64)
    _, x, y, z = rows[0].tolist()
    assert torch.allclose(stacks[0, 4:8], images[:, x:x + 64, y:y + 64, z], atol=1e-5)  # the centre slice (identity resampling)
    assert bank.__len__() == images.shape[-1]


def test_input_channels_must_match_sequences_and_context(case):
    images, regions = case
    config = brats_config(model={"name": "unet", "in_channels": 4, "out_channels": 3},
                          data={"dataset": "brats", "context_slices": 1})
    with pytest.raises(ConfigError, match="in_channels is 4, but the input has 12 channels"):
        bank_for([images], [regions], config)


def test_short_3d_training_run_lowers_the_loss(brats_root, tmp_path):
    """A tiny 3D U-Net trained for a few epochs of real patches: the training loss falls and the
    best checkpoint reloads as a BraTS model."""
    config = Config.from_dict({
        "model": {"name": "unet3d", "in_channels": 4, "out_channels": 3, "width": 4},
        "data": {"patch_size": [48, 48, 48]},  # dataset left to detection ("auto")
        "train": {"batch_size": 2, "lr": 3e-3, "slices_per_epoch": 16, "max_epochs": 5, "tumor_fraction": 0.8},
        "inference": {"overlap": 0.0},
    })
    split = {"train": [BRATS_TRAIN_CASE], "val": BRATS_TEST_CASES[:1], "test": []}
    progress = train(brats_root, split, config, tmp_path)
    with (tmp_path / "metrics.csv").open() as handle:
        losses = [float(row["train_loss"]) for row in csv.DictReader(handle)]
    assert progress.epoch == 5 and len(losses) == 5
    assert losses[-1] < losses[0]
    model, saved = load_model(tmp_path / "best.safetensors")
    assert saved.data.dataset == "brats" and saved.model.name == "unet3d"

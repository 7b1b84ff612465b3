"""BraTS training windows (3D patches and 2.5D slice stacks) on a real case, a short real 3D
training run whose loss falls, and the LGG slice sampler on real patients."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from conftest import BRATS_TEST_CASES, BRATS_TRAIN_CASE, TRAIN_PATIENTS
from gliomaseg.config import AugmentConfig, Config
from gliomaseg.data.base import get_dataset
from gliomaseg.data.brats import load_case, scan_case
from gliomaseg.data.preprocessing import Preprocessing
from gliomaseg.models.weights import load_model
from gliomaseg.training.banks import SliceBank, VolumeBank
from gliomaseg.training.trainer import prepare, train

NO_AUGMENT = AugmentConfig(flip=False, rotate_degrees=0, scale=(1.0, 1.0), intensity=0)


@pytest.fixture(scope="module")
def case(brats_root):
    """The training case, cropped and z-scored, with its WT/TC/ET regions."""
    loaded = load_case(scan_case(brats_root / BRATS_TRAIN_CASE))
    preprocessing = Preprocessing.from_config(Config().data, volumetric=True)
    prepared = preprocessing.forward(loaded.images)
    return prepared.images, preprocessing.target(loaded.labels.to_regions(loaded.label), prepared)


def brats_config(**sections) -> Config:
    return Config.from_dict({"data": {"dataset": "brats"}, **sections})


def bank_for(brats_root, config: Config) -> VolumeBank:
    """The bank ``config``'s network trains on, built as training builds it, from the training case."""
    bank, _ = prepare(get_dataset("brats"), brats_root, {"train": [BRATS_TRAIN_CASE], "val": []}, config)
    assert isinstance(bank, VolumeBank)
    return bank


def test_3d_patches_lie_inside_and_follow_the_tumor_fraction(brats_root, case):
    """Patches have the configured size, match the case's voxels at their corner, and with
    tumor_fraction 1 every patch holds tumor."""
    images, regions = case
    config = brats_config(model={"name": "unet3d", "in_channels": 4, "out_channels": 3},
                          data={"dataset": "brats", "patch_size": [32, 48, 64]})
    bank = bank_for(brats_root, config)
    generator = torch.Generator().manual_seed(0)
    rows = bank.sample(16, 1.0, generator)
    patches, targets = bank.batch(rows, NO_AUGMENT, generator)
    assert patches.shape == (16, 4, 32, 48, 64) and targets.shape == (16, 3, 32, 48, 64)
    assert all(targets[i, 0].any() for i in range(16))
    _, x, y, z = rows[0].tolist()
    assert torch.equal(patches[0], images[:, x:x + 32, y:y + 48, z:z + 64])


def test_2d5_slices_stack_context_channels(brats_root, case):
    """2.5D samples are 12-channel 64x64 crops (4 sequences x 3 slices) with 3 region masks."""
    images, regions = case
    config = brats_config(model={"name": "unet", "in_channels": 12, "out_channels": 3},
                          data={"dataset": "brats", "patch_size": [64, 64, 1], "context_slices": 1})
    bank = bank_for(brats_root, config)
    generator = torch.Generator().manual_seed(1)
    rows = bank.sample(8, 0.5, generator)
    stacks, targets = bank.batch(rows, NO_AUGMENT, generator)
    assert stacks.shape == (8, 12, 64, 64) and targets.shape == (8, 3, 64, 64)
    _, x, y, z = rows[0].tolist()
    assert torch.allclose(stacks[0, 4:8], images[:, x:x + 64, y:y + 64, z], atol=1e-5)  # the centre slice (identity resampling)
    assert bank.__len__() == images.shape[-1]


def test_region_sampling_centres_the_small_regions_as_often_as_the_whole_tumor(brats_root):
    """train.tumor_sampling region: a tumor window is centred on a voxel of WT, TC or ET, each
    alike, so about a third of them or more (TC holds ET) centre on the enhancing tumor; the
    default centres on a whole-tumor voxel, so on ET in proportion to its share of the tumor."""
    shares = {}
    for sampling in ("case", "region"):
        config = brats_config(model={"name": "unet", "in_channels": 12, "out_channels": 3}, train={"tumor_sampling": sampling},
                              data={"dataset": "brats", "patch_size": [64, 64, 1], "context_slices": 1})
        bank = bank_for(brats_root, config)
        target = bank.targets[0]
        rows = bank.sample(3000, 1.0, torch.Generator().manual_seed(0))
        x, y, z = (rows[:, 1] + 32).clamp(max=target.shape[1] - 1), (rows[:, 2] + 32).clamp(max=target.shape[2] - 1), rows[:, 3]
        shares[sampling] = [float(target[k, x, y, z].mean()) for k in range(3)]
    et_of_wt = float(target[2].sum() / target[0].sum())
    assert et_of_wt < 0.3  # the training case's enhancing tumor is a small part of it
    assert shares["case"][0] > 0.9 and abs(shares["case"][2] - et_of_wt) < 0.05
    assert shares["region"][0] > 0.9 and shares["region"][2] > 0.3


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


def test_disk_bank_draws_the_batches_of_the_memory_bank(brats_root, tmp_path):
    """train.bank disk: the case goes to .npy files read through memory maps (not loaded),
    and the same generator draws the same windows, voxel for voxel, as the in-memory bank."""
    config = brats_config(model={"name": "unet3d", "in_channels": 4, "out_channels": 3},
                          data={"dataset": "brats", "patch_size": [32, 48, 64]})
    split = {"train": [BRATS_TRAIN_CASE], "val": []}
    memory = bank_for(brats_root, config)
    disk, _ = prepare(get_dataset("brats"), brats_root, split, config, tmp_path / "bank")
    assert sorted(p.name for p in (tmp_path / "bank").iterdir()) == [f"{BRATS_TRAIN_CASE}_image.npy", f"{BRATS_TRAIN_CASE}_target.npy"]
    stored = np.load(tmp_path / "bank" / f"{BRATS_TRAIN_CASE}_image.npy", mmap_mode="r")
    assert torch.equal(torch.from_numpy(np.array(stored)), memory.images[0])
    drawn = []
    for bank in (memory, disk):
        generator = torch.Generator().manual_seed(3)
        drawn.append(bank.batch(bank.sample(8, 0.5, generator), AugmentConfig(), generator))
    assert torch.equal(drawn[0][0], drawn[1][0]) and torch.equal(drawn[0][1], drawn[1][1])


@pytest.mark.parametrize("sampling", ["slice", "case"])
def test_slice_sampler_weighs_patients_by_tumor_slices_or_alike(lgg_root, sampling):
    """With ``tumor_fraction`` 1 every drawn slice shows tumor; ``slice`` draws each patient in
    proportion to its tumor slices, ``case`` each patient alike (small-lesion sampling).
    Real patients whose tumor spans different numbers of slices."""
    config = Config.from_dict({"data": {"image_size": 64}, "train": {"tumor_sampling": sampling}})
    bank, _ = prepare(get_dataset("kaggle3m"), lgg_root, {"train": TRAIN_PATIENTS, "val": []}, config)
    assert isinstance(bank, SliceBank)
    depths = [len(list((lgg_root / p).glob("*_mask.tif"))) for p in TRAIN_PATIENTS]
    patient = torch.repeat_interleave(torch.arange(len(depths)), torch.tensor(depths))
    assert len(patient) == len(bank)
    tumor_slices = torch.bincount(patient[bank.has_tumor], minlength=len(depths)).double()
    assert (tumor_slices > 0).all() and tumor_slices.max() >= 1.5 * tumor_slices.min()
    draws = 40_000
    index = bank.sample(draws, 1.0, torch.Generator().manual_seed(0))
    assert bank.has_tumor[index].all()
    share = torch.bincount(patient[index], minlength=len(depths)).double() / draws
    expected = tumor_slices / tumor_slices.sum() if sampling == "slice" else torch.full((len(depths),), 1 / len(depths))
    assert torch.allclose(share, expected.double(), atol=0.015), (share, expected)
    half = bank.sample(draws, 0.5, torch.Generator().manual_seed(1))
    assert abs(bank.has_tumor[half].double().mean().item() - 0.5) < 0.015

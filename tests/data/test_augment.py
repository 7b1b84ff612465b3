"""FLAIR-copy augmentation on real 2.5D batches: LGG slice stacks get FLAIR in place of the
pre- and post-contrast sequences in every stacked slice alike, and BraTS stacks (four
sequences) are left alone."""

from __future__ import annotations

import pytest
import torch

from conftest import BRATS_TRAIN_CASE, TRAIN_PATIENTS
from gliomaseg.config import AugmentConfig, Config
from gliomaseg.data.base import get_dataset
from gliomaseg.training.trainer import prepare

COPY_ALWAYS = AugmentConfig(flip=False, rotate_degrees=0, scale=(1.0, 1.0), intensity=0, flair_copy=1.0)
NO_AUGMENT = AugmentConfig(flip=False, rotate_degrees=0, scale=(1.0, 1.0), intensity=0, flair_copy=0.0)


def bank(dataset: str, root, cases: list[str], **data):
    config = Config.from_dict({"model": {"in_channels": 9 if dataset == "kaggle3m" else 12},
                               "data": {"dataset": dataset, "context_slices": 1, **data}})
    return prepare(get_dataset(dataset), root, {"train": cases, "val": []}, config)[0]


@pytest.mark.parametrize("probability", [1.0, 0.5])
def test_flair_copies_fill_every_stacked_lgg_slice(lgg_root, probability):
    """With 3 sequences x 3 slices, a sample chosen for a copy has FLAIR (channels 1, 4, 7) in
    place of the chosen sequence in all three slices; FLAIR itself is never changed, and with
    probability 1/2 some samples keep their own sequences."""
    slices = bank("kaggle3m", lgg_root, TRAIN_PATIENTS[:1], image_size=64, crop_to_brain=True)
    rows = slices.sample(32, 1.0, torch.Generator().manual_seed(0))
    plain, _ = slices.batch(rows, NO_AUGMENT, torch.Generator().manual_seed(1))
    copied, _ = slices.batch(rows, AugmentConfig(**{**vars(COPY_ALWAYS), "flair_copy": probability}),
                             torch.Generator().manual_seed(1))
    assert copied.shape == plain.shape == (32, 9, 64, 64)
    flair = plain[:, 1::3]
    assert torch.equal(copied[:, 1::3], flair)
    for channel in (0, 2):
        replaced = (copied[:, channel::3] == flair).flatten(1).all(1)
        own = (copied[:, channel::3] == plain[:, channel::3]).flatten(1).all(1)
        assert bool((replaced | own).all())  # per sample, all three slices alike
        if probability == 1.0:
            assert bool(replaced.all())
        else:
            differs = ~(plain[:, channel::3] == flair).flatten(1).all(1)
            assert 0 < int((replaced & differs).sum()) < int(differs.sum())


def test_brats_stacks_get_no_flair_copy(brats_root):
    """Four sequences x 3 slices is not an LGG stack: the copy leaves the batch as it was."""
    windows = bank("brats", brats_root, [BRATS_TRAIN_CASE], patch_size=[64, 64, 1])
    rows = windows.sample(8, 1.0, torch.Generator().manual_seed(0))
    plain, _ = windows.batch(rows, NO_AUGMENT, torch.Generator().manual_seed(1))
    copied, _ = windows.batch(rows, COPY_ALWAYS, torch.Generator().manual_seed(1))
    assert plain.shape == (8, 12, 64, 64) and torch.equal(copied, plain)

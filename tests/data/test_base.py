"""Dataset detection from a folder's layout, on the real unpacked LGG and BraTS folders."""

from __future__ import annotations

import pytest

from conftest import BRATS_TRAIN_CASE
from gliomaseg.data.detect import detect_dataset, resolve_dataset
from gliomaseg.errors import ConfigError, InputError


def test_brats_layouts_are_detected(brats_root):
    """A case folder, the folder of cases and its parent are BraTS; a NIfTI file too."""
    case = brats_root / BRATS_TRAIN_CASE
    for path in (case, brats_root, brats_root.parent, case / f"{BRATS_TRAIN_CASE}_t1.nii.gz"):
        assert detect_dataset(path) == "brats", path


def test_lgg_layouts_are_detected(lgg_root, patient_dir):
    for path in (lgg_root, lgg_root.parent, patient_dir, next(patient_dir.glob("*.tif"))):
        assert detect_dataset(path) == "lgg", path


def test_declared_dataset_must_match_the_folder(brats_root, lgg_root, tmp_path):
    assert resolve_dataset(brats_root, "auto") == "brats"
    assert resolve_dataset(lgg_root, "lgg") == "lgg"
    with pytest.raises(InputError, match="holds brats data, but the config's data.dataset is lgg"):
        resolve_dataset(brats_root, "lgg")
    with pytest.raises(ConfigError, match="choose one of auto, lgg, brats"):
        resolve_dataset(brats_root, "kaggle")
    with pytest.raises(InputError, match="no such file or folder"):
        detect_dataset(tmp_path / "absent")

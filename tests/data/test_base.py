"""Dataset type registry and detection from a folder's layout, on the real unpacked LGG and BraTS folders."""

from __future__ import annotations

import pytest

from conftest import BRATS_TRAIN_CASE
from gliomaseg.data import detect_dataset, resolve_dataset
from gliomaseg.errors import ConfigError, InputError


def test_brats_layouts_are_detected(brats_root):
    """A case folder, the folder of cases and its parent are BraTS; a loose NIfTI file is a
    volume study (the nifti type), which segment reads on its own."""
    case = brats_root / BRATS_TRAIN_CASE
    for path in (case, brats_root, brats_root.parent):
        assert detect_dataset(path).name == "brats", path
    assert detect_dataset(case / f"{BRATS_TRAIN_CASE}_t1.nii.gz").name == "nifti"


def test_lgg_layouts_are_detected(lgg_root, patient_dir):
    for path in (lgg_root, lgg_root.parent, patient_dir, next(patient_dir.glob("*.tif"))):
        assert detect_dataset(path).name == "kaggle3m", path


def test_declared_dataset_must_match_the_folder(brats_root, lgg_root, tmp_path):
    assert resolve_dataset(brats_root, "auto").name == "brats"
    assert resolve_dataset(lgg_root, "kaggle3m").name == "kaggle3m"
    with pytest.raises(InputError, match="does not hold kaggle3m data .*but the config's data.dataset says so"):
        resolve_dataset(brats_root, "kaggle3m")
    with pytest.raises(ConfigError, match="unknown dataset type 'kaggle'; registered: ") as raised:
        resolve_dataset(brats_root, "kaggle")
    assert {"kaggle3m", "brats"} <= set(str(raised.value).split("registered: ")[1].split(", "))
    with pytest.raises(InputError, match="no such file or folder"):
        detect_dataset(tmp_path / "absent")

"""Shared fixtures: real LGG patients and BraTS cases unpacked from ../shared into a cache folder.

The cache is ``$GLIOMASEG_TEST_CACHE`` or ``<repo>/cache`` (git-ignored); unpacking is
idempotent, so later runs reuse it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GLIOMASEG_SHARED", REPO.parent / "shared"))
CACHE = Path(os.environ.get("GLIOMASEG_TEST_CACHE", REPO / "cache"))
SPLIT = json.loads((REPO / "splits" / "lgg.json").read_text())
BRATS_SPLIT = json.loads((REPO / "splits" / "brats.json").read_text())

# Few, small patients keep the suite fast: 3 of the test split for the bundled model's floor,
# 3 of the train split for the short training run, 1 of the val split to validate on.
TEST_PATIENTS = SPLIT["test"][:3]
TRAIN_PATIENTS = SPLIT["train"][:3]
VAL_PATIENTS = SPLIT["val"][:1]
# BraTS: one training case for reader and training tests, the test cases of splits/brats.json
# for the bundled model's pipeline floor and `segment` (models 2.x trained on all 10 cases).
BRATS_TRAIN_CASE = "Brats18_2013_3_1"
BRATS_TEST_CASES = BRATS_SPLIT["test"]


def unpack_lgg(patients: list[str]) -> Path:
    """Unpack ``patients`` from ../shared/lgg into the cache; return the ``kaggle_3m`` folder."""
    unpack = SHARED / "lgg" / "unpack"
    if not unpack.exists():
        pytest.fail(f"{unpack} is missing: the tests read real data from ../shared/lgg")
    out = subprocess.run([sys.executable, str(unpack), str(CACHE / "lgg"), *patients],
                         check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def lgg_root() -> Path:
    """``kaggle_3m`` folder holding the test, train and val patients named above."""
    return unpack_lgg(TEST_PATIENTS + TRAIN_PATIENTS + VAL_PATIENTS)


@pytest.fixture(scope="session")
def patient_dir(lgg_root: Path) -> Path:
    """One real patient folder (the first test-split patient)."""
    return lgg_root / TEST_PATIENTS[0]


@pytest.fixture(scope="session")
def brats_root() -> Path:
    """The unpacked ``brats`` folder holding the cases named above (2018-2021 layout)."""
    unpack = SHARED / "brats" / "unpack"
    if not unpack.exists():
        pytest.fail(f"{unpack} is missing: the tests read real data from ../shared/brats")
    out = subprocess.run([sys.executable, str(unpack), str(CACHE / "brats"), BRATS_TRAIN_CASE, *BRATS_TEST_CASES],
                         check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


# Cross-validation fixture: 2 folds of 2 real patients, a tiny network trained briefly
# (tests/test_crossval.py checks the training, tests/test_thresholds.py the threshold choice).
CV_PATIENTS = TRAIN_PATIENTS + VAL_PATIENTS
CV_FOLDS = [CV_PATIENTS[:2], CV_PATIENTS[2:]]
CV_EPOCHS, CV_STEPS = 3, 6  # 48 slices per epoch in batches of 8


def tiny_poly_config():
    """Width-8 U-Net at 96x96, three epochs of six steps, poly schedule, validated every 2nd epoch."""
    from gliomaseg.config import Config

    return Config.from_dict({
        "model": {"width": 8},
        "data": {"image_size": 96, "crop_to_brain": True},
        "train": {"batch_size": 8, "lr": 2e-3, "slices_per_epoch": CV_EPOCHS * 16, "max_epochs": CV_EPOCHS,
                  "tumor_fraction": 0.6, "schedule": "poly", "val_every": 2},
        "inference": {"postprocess": "none"},
    })


@pytest.fixture(scope="session")
def folds_file(tmp_path_factory) -> Path:
    """``{"folds": CV_FOLDS}`` as a folds file."""
    path = tmp_path_factory.mktemp("folds") / "folds.json"
    path.write_text(json.dumps({"folds": CV_FOLDS}))
    return path


@pytest.fixture(scope="session")
def cv(lgg_root, folds_file, tmp_path_factory):
    """Both folds trained and scored; then the same call again (resumes, trains nothing).
    Returns the cv folder and both calls' ``(evaluation, records)``."""
    from gliomaseg.crossval import cross_validate

    out = tmp_path_factory.mktemp("cv")
    first = cross_validate(lgg_root, folds_file, tiny_poly_config(), out)
    again = cross_validate(lgg_root, folds_file, tiny_poly_config(), out)
    return out, first, again

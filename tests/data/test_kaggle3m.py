"""Reader for the kaggle_3m layout, on real LGG patients."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from gliomaseg.data.kaggle3m import find_patients, load_patient, scan_patient_folder
from gliomaseg.errors import InputError


def _slice_numbers(folder: Path) -> list[int]:
    """Slice numbers parsed from the image (not mask) file names of a patient folder."""
    pattern = re.compile(rf"{re.escape(folder.name)}_(\d+)\.tif")
    return [int(m.group(1)) for f in folder.iterdir() if (m := pattern.fullmatch(f.name))]


def _summary(patients) -> list[tuple]:
    """What the reader found, as comparable plain values (file names, not paths)."""
    return [(p.id, [f.name for f in p.images], None if p.labels is None else [f.name for f in p.labels])
            for p in patients]


def _copy_patient(lgg_root: Path, patient_id: str, root: Path) -> Path:
    return Path(shutil.copytree(lgg_root / patient_id, root / patient_id))


def test_slices_sorted_by_number(patient_dir):
    """Image files come in numeric slice order (10 after 9), matching the numbers in the file names."""
    numbers = _slice_numbers(patient_dir)
    assert len(numbers) >= 10, "the test patient needs two-digit slice numbers"
    patient = scan_patient_folder(patient_dir)
    got = [int(f.stem.rsplit("_", 1)[1]) for f in patient.images]
    assert got == sorted(numbers)
    assert got.index(10) == got.index(9) + 1
    # the numeric order is not the plain lexicographic order of the names, so the check has teeth
    assert [f.name for f in patient.images] != sorted(f.name for f in patient.images)


def test_masks_paired_with_their_images(patient_dir):
    """The i-th mask file is the i-th image file's ``_mask`` twin, for every slice."""
    patient = scan_patient_folder(patient_dir)
    assert patient.id == patient_dir.name
    assert patient.labels is not None and len(patient.labels) == len(patient.images)
    for image, mask in zip(patient.images, patient.labels):
        assert mask == image.with_name(f"{image.stem}_mask.tif")
        assert mask.is_file()


def test_masks_ignored_mode_lists_no_masks(patient_dir):
    """With masks='ignored' the same slices are listed and no mask files."""
    required = scan_patient_folder(patient_dir)
    ignored = scan_patient_folder(patient_dir, masks="ignored")
    assert ignored.images == required.images
    assert ignored.labels is None


def test_stray_files_ignored(lgg_root, patient_dir, tmp_path):
    """.DS_Store, hidden folders with tifs, README.md and data.csv change nothing the reader finds."""
    root = tmp_path / "kaggle_3m"
    copy = _copy_patient(lgg_root, patient_dir.name, root)
    before_patients = _summary(find_patients(root))
    before_scan = _summary([scan_patient_folder(copy)])
    a_slice = copy / f"{copy.name}_1.tif"

    for folder in (root, copy):
        (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(100))
        hidden = folder / ".ipynb_checkpoints"
        hidden.mkdir()
        shutil.copyfile(a_slice, hidden / a_slice.name)  # a slice-like tif inside a hidden folder
        shutil.copyfile(a_slice, hidden / f"{copy.name}_99.tif")
        (folder / "README.md").write_text("# notes\n")
        (folder / "data.csv").write_text("Patient,RNASeqCluster\nTCGA_CS_4941,2\n")
    shutil.copyfile(a_slice, copy / f".{copy.name}_98.tif")  # hidden slice-like file

    assert _summary(find_patients(root)) == before_patients
    assert _summary(find_patients(tmp_path)) == before_patients  # the parent of kaggle_3m works too
    assert _summary([scan_patient_folder(copy)]) == before_scan
    assert len(before_patients) == 1 and before_patients[0][0] == patient_dir.name


def test_load_patient_shapes_dtypes_and_pixels(patient_dir):
    """load_patient gives (3,256,256,S) uint8 images and a (256,256,S) uint8 {0,1} label map equal to the files."""
    case = load_patient(scan_patient_folder(patient_dir))
    n = len(_slice_numbers(patient_dir))
    assert case.images.shape == (3, 256, 256, n) and case.images.dtype == np.uint8
    assert case.label.shape == (256, 256, n) and case.label.dtype == np.uint8
    assert set(np.unique(case.label).tolist()) <= {0, 1}
    for index in (0, n // 2, n - 1):
        image_file = patient_dir / f"{patient_dir.name}_{index + 1}.tif"
        mask_file = patient_dir / f"{patient_dir.name}_{index + 1}_mask.tif"
        np.testing.assert_array_equal(case.images[..., index], tifffile.imread(image_file).transpose(2, 0, 1))
        np.testing.assert_array_equal(case.label[..., index], tifffile.imread(mask_file) > 0)
    assert case.label.any(), "a real LGG patient of the test split has tumor somewhere"


def test_find_patients_skips_and_reports_broken_patient(lgg_root, tmp_path):
    """A patient with a slice lacking its mask is skipped and reported; others are still found."""
    good, broken = sorted(p.name for p in lgg_root.iterdir() if p.is_dir() and not p.name.startswith("."))[:2]
    root = tmp_path / "kaggle_3m"
    _copy_patient(lgg_root, good, root)
    broken_dir = _copy_patient(lgg_root, broken, root)
    orphan = broken_dir / f"{broken}_3.tif"
    (broken_dir / f"{broken}_3_mask.tif").unlink()

    with pytest.raises(InputError) as raised:
        find_patients(root)
    assert raised.value.path == orphan

    problems: list[InputError] = []
    patients = find_patients(root, problems=problems)
    assert [p.id for p in patients] == [good]
    assert len(problems) == 1 and isinstance(problems[0], InputError)
    assert problems[0].path == orphan and orphan.name in str(problems[0])
    # without masks the broken patient is fine again
    assert [p.id for p in find_patients(root, masks="ignored")] == sorted([good, broken])

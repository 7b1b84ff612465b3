"""Sequence identification and choice (:mod:`gliomaseg.data.sequences`) and the ``nifti``
dataset type on a real BraTS case: any file names, NRRD and MetaImage through SimpleITK, the
sequence mapping and its errors, orientation round trips."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import BRATS_TRAIN_CASE
from dicom_series import reorient

from gliomaseg.data import detect_dataset, get_dataset
from gliomaseg.data.sequences import from_acquisition, from_name, parse_overrides
from gliomaseg.errors import ConfigError, InputError

NIFTI, BRATS = get_dataset("nifti"), get_dataset("brats")


@pytest.mark.parametrize("name, key", [
    ("AX T2 FLAIR", "flair"), ("t2_tirm_tra_dark-fluid", "flair"), ("BraTS-GLI-00001-000-t2f", "flair"),
    ("T1 MPRAGE +C", "t1ce"), ("t1_mprage_post_gd", "t1ce"), ("case_t1ce", "t1ce"), ("x-t1c", "t1ce"),
    ("Sag T1 MPRAGE", "t1"), ("case_t1", "t1"), ("t1n", "t1"), ("AX T2 FSE", "t2"), ("x-t2w", "t2"),
    ("DWI b1000", None), ("localizer", None),
])
def test_sequence_names(name, key):
    assert from_name(name) == key


def test_sequence_from_acquisition():
    """Where the name says nothing: long TI and TE is FLAIR, long TE T2, short TE T1 (T1ce with an agent)."""
    assert from_acquisition(2500, 120, False) == "flair"
    assert from_acquisition(None, 100, False) == "t2"
    assert from_acquisition(None, 10, False) == "t1"
    assert from_acquisition(None, 10, True) == "t1ce"
    assert from_acquisition(None, 50, False) is None and from_acquisition(None, None, False) is None


def test_overrides_parse_and_reject_bad_names():
    assert parse_overrides(["FLAIR=a.nii", "t1c=1.2.3"]) == {"flair": "a.nii", "t1ce": "1.2.3"}
    for bad in (["flair"], ["dwi=x"], ["flair=a", "t2f=b"]):
        with pytest.raises(ConfigError):
            parse_overrides(bad)


@pytest.fixture(scope="module")
def case_folder(brats_root) -> Path:
    return brats_root / BRATS_TRAIN_CASE


def _write(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    """Save as NIfTI, or through SimpleITK for NRRD and MetaImage (LPS direction and origin)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith((".nii", ".nii.gz")):
        nib.save(nib.Nifti1Image(array, affine), str(path))
        return path
    import SimpleITK as sitk

    lps = np.diag([-1, -1, 1, 1]) @ affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(array.transpose(2, 1, 0))
    image.SetSpacing(spacing.tolist())
    image.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
    image.SetOrigin(lps[:3, 3].tolist())
    sitk.WriteImage(image, str(path))
    return path


def test_any_names_and_formats_give_the_brats_case_images(case_folder, tmp_path):
    """Four sequences named as a scanner export would, in NIfTI, NRRD and MetaImage, one stored
    sagittally: the case the BraTS model gets equals the BraTS reader's, channel for channel."""
    names = {"flair": "3_AX_FLAIR.nrrd", "t1": "1_sag_T1.mha", "t1ce": "2_T1_post_gd.nii.gz", "t2": "4_AX_T2.nii"}
    for key, name in names.items():
        image = nib.load(str(case_folder / f"{BRATS_TRAIN_CASE}_{key}.nii.gz"))
        array, affine = np.asarray(image.dataobj)[:, :, 50:90].astype(np.float32), image.affine.copy()
        affine[:3, 3] = (image.affine @ [0, 0, 50, 1])[:3]
        if key == "t1":
            array, affine = reorient(array, affine, ("A", "S", "R"))
        _write(tmp_path / "study" / name, array, affine)
    assert detect_dataset(tmp_path / "study").name == "nifti"
    (ref,) = NIFTI.inputs(tmp_path / "study", [])
    case = NIFTI.load(ref, 4)
    expected = BRATS.load(BRATS.find(case_folder)[0]).images[..., 50:90]
    assert case.channels == ("T1", "T1ce", "T2", "FLAIR") and case.spacing == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(case.images, expected)
    assert [p.name for p in case.sources] == [names[k] for k in ("t1", "t1ce", "t2", "flair")]


def test_missing_ambiguous_and_overridden_sequences(case_folder, tmp_path):
    """The BraTS model without T2: one error naming what is missing; two FLAIR files: ambiguous;
    --sequence picks among them, also a file outside the folder."""
    flair = nib.load(str(case_folder / f"{BRATS_TRAIN_CASE}_flair.nii.gz"))
    small = nib.Nifti1Image(np.asarray(flair.dataobj)[:, :, 60:70], flair.affine)
    for name in ("flair_a.nii.gz", "flair_b.nii.gz", "t1.nii.gz", "t1ce.nii.gz"):
        (tmp_path / "study").mkdir(exist_ok=True)
        nib.save(small, str(tmp_path / "study" / name))
    (ref,) = NIFTI.inputs(tmp_path / "study", [])
    with pytest.raises(InputError, match="ambiguous FLAIR: flair_a.nii.gz and flair_b.nii.gz"):
        NIFTI.load(ref, 3)
    (ref,) = NIFTI.inputs(tmp_path / "study", [], {"flair": "flair_b.nii.gz"})
    assert [p.name for p in NIFTI.load(ref, 3).sources] == ["t1.nii.gz", "flair_b.nii.gz", "t1ce.nii.gz"]
    with pytest.raises(InputError, match="the model needs T2") as raised:
        NIFTI.load(ref, 4)
    assert "\n" not in str(raised.value)
    outside = tmp_path / "elsewhere" / "scan.nii.gz"
    outside.parent.mkdir()
    nib.save(small, str(outside))
    (ref,) = NIFTI.inputs(tmp_path / "study", [], {"flair": "flair_a.nii.gz", "t2": str(outside)})
    assert NIFTI.load(ref, 4).sources[2] == outside
    with pytest.raises(InputError, match="no volume file or series of this study is nothere"):
        NIFTI.load(NIFTI.inputs(tmp_path / "study", [], {"flair": "nothere"})[0], 3)


def test_lone_file_is_flair_and_brats_folders_stay_brats(case_folder, tmp_path):
    """A lone volume whose name says nothing is FLAIR for the LGG model; a BraTS case folder is
    still the brats type, a loose BraTS file the nifti type."""
    flair = nib.load(str(case_folder / f"{BRATS_TRAIN_CASE}_flair.nii.gz"))
    path = _write(tmp_path / "scan.nii.gz", np.asarray(flair.dataobj)[:, :, 60:70], flair.affine)
    case = NIFTI.load(NIFTI.inputs(path, [])[0], 3)
    assert case.images.shape == (3, 240, 240, 10) and case.id == "scan"
    assert detect_dataset(case_folder).name == "brats"
    assert detect_dataset(case_folder / f"{BRATS_TRAIN_CASE}_flair.nii.gz").name == "nifti"
    with pytest.raises(InputError, match="--sequence applies to"):
        BRATS.inputs(case_folder, [], {"flair": "x"})

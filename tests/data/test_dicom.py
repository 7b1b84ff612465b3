"""The ``dicom`` dataset type on series built at run time from a real BraTS FLAIR volume (cut to
64 slices): geometry against the NIfTI and against SimpleITK, slices ordered by position, every
storage orientation giving the model the same voxels, and one-line errors for broken series."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import BRATS_TRAIN_CASE
from dicom_series import Study, reorient, write_series, write_sr

from gliomaseg.data import detect_dataset, get_dataset
from gliomaseg.data.dicom import scan, series_volume
from gliomaseg.errors import InputError

DICOM = get_dataset("dicom")
LGG_CHANNELS = 3  # the LGG model's input: pre-contrast, FLAIR, post-contrast


@pytest.fixture(scope="module")
def flair(brats_root) -> tuple[np.ndarray, np.ndarray]:
    """A real FLAIR volume cut to 64 slices through the tumor, and its affine (origin moved)."""
    image = nib.load(str(brats_root / BRATS_TRAIN_CASE / f"{BRATS_TRAIN_CASE}_flair.nii.gz"))
    start = 45
    affine = image.affine.copy()
    affine[:3, 3] = (image.affine @ [0, 0, start, 1])[:3]
    return np.asarray(image.dataobj)[:, :, start:start + 64].astype(np.float32), affine


def _study(folder: Path, array: np.ndarray, affine: np.ndarray, **kwargs) -> Path:
    write_series(folder / "flair", array, affine, Study.new(folder.name), "AX T2 FLAIR", 1, **kwargs)
    return folder


def test_series_geometry_matches_the_nifti_and_simpleitk(flair, tmp_path):
    """Voxels (rescale slope and intercept applied) and affine equal the source NIfTI's, and
    SimpleITK's own series reader gives the same array, spacing, origin and direction."""
    import SimpleITK as sitk

    array, affine = flair
    folder = _study(tmp_path / "study", array, affine, slope=1.0, intercept=-1000.0)
    studies, notes = scan(folder, [])
    (series,), = studies.values()
    volume, headers = series_volume(series)
    assert not notes and len(headers) == array.shape[2]
    np.testing.assert_array_equal(volume.array, array)
    np.testing.assert_allclose(volume.affine, affine, atol=1e-4)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder / "flair")))
    image = reader.Execute()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image).transpose(2, 1, 0), volume.array)
    lps = np.diag([-1, -1, 1]) @ volume.affine[:3, :3]
    np.testing.assert_allclose(np.asarray(image.GetDirection()).reshape(3, 3) * image.GetSpacing(), lps, atol=1e-4)
    np.testing.assert_allclose(image.GetOrigin(), [-volume.affine[0, 3], -volume.affine[1, 3], volume.affine[2, 3]], atol=1e-4)


def test_slices_are_ordered_by_position_not_by_name_or_instance_number(flair, tmp_path):
    """File names are random and InstanceNumbers shuffled: the reader still stacks the slices
    in position order (a shuffled stack would not equal the source)."""
    array, affine = flair
    folder = _study(tmp_path / "study", array, affine, seed=7)
    (series,), = scan(folder, [])[0].values()
    numbers = [int(h.InstanceNumber) for h in series_volume(series)[1]]
    assert numbers != sorted(numbers)
    np.testing.assert_array_equal(series_volume(series)[0].array, array)


@pytest.mark.parametrize("axcodes", [("A", "S", "R"), ("R", "A", "S"), ("L", "I", "A")])
def test_every_storage_orientation_gives_the_model_the_same_voxels(flair, tmp_path, axcodes):
    """Sagittally stored, LPS-flipped (RAS-stored) and coronal copies load into the same
    model-layout images as the axial original, and go back onto their own grids exactly."""
    array, affine = flair
    original = DICOM.load(DICOM.inputs(_study(tmp_path / "axial", array, affine), [])[0], LGG_CHANNELS)
    moved, moved_affine = reorient(array, affine, axcodes)
    assert moved.shape != array.shape or not np.allclose(moved_affine, affine)
    case = DICOM.load(DICOM.inputs(_study(tmp_path / "copy", moved, moved_affine), [])[0], LGG_CHANNELS)
    np.testing.assert_array_equal(case.images, original.images)
    assert case.spacing == original.spacing
    # The series' own grid: the copy's, with slices ascending along the DICOM slice normal
    # (a left-handed copy such as L, I, A comes back with its third axis reversed).
    expected, expected_affine = reorient(moved, moved_affine, nib.aff2axcodes(case.grid.affine))
    np.testing.assert_array_equal(case.grid.input_array(case.images[1]), expected)
    np.testing.assert_allclose(case.grid.affine, expected_affine, atol=1e-4)


def test_lgg_layout_is_rows_posterior_columns_left(flair, tmp_path):
    """The LGG model sees axial slices as the kaggle_3m slices show them: FLAIR in every
    channel (no pre- or post-contrast series), first axis towards posterior, second towards
    the patient's left, slices upwards."""
    array, affine = flair
    case = DICOM.load(DICOM.inputs(_study(tmp_path / "study", array, affine), [])[0], LGG_CHANNELS)
    assert case.channels == ("pre-contrast", "FLAIR", "post-contrast")
    np.testing.assert_array_equal(case.images[0], case.images[1])
    np.testing.assert_array_equal(case.images[2], case.images[1])
    assert nib.aff2axcodes(affine) == ("L", "P", "S")  # the BraTS file: X left, Y posterior
    np.testing.assert_array_equal(case.images[1], array.transpose(1, 0, 2))


def _broken(tmp_path: Path, flair, how: str) -> Path:
    array, affine = flair
    folder = _study(tmp_path / how, array, affine)
    files = sorted((folder / "flair").iterdir())
    import pydicom

    if how == "missing_slice":
        by_position = sorted(files, key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]))
        by_position[30].unlink()
    elif how == "duplicate_position":
        shutil.copy(files[3], folder / "flair" / "copy_of_a_slice")
        ds = pydicom.dcmread(folder / "flair" / "copy_of_a_slice")
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(folder / "flair" / "copy_of_a_slice")
    elif how == "truncated":
        files[5].write_bytes(files[5].read_bytes()[:-5000])
    elif how == "mixed_orientation":
        ds = pydicom.dcmread(files[2])
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        ds.save_as(files[2])
    return folder


@pytest.mark.parametrize("how, message", [
    ("missing_slice", "not evenly spaced.*missing slice"),
    ("duplicate_position", "duplicate slice position"),
    ("truncated", "truncated or corrupt pixel data"),
    ("mixed_orientation", "mixed orientations"),
])
def test_broken_series_get_one_line_errors(flair, tmp_path, how, message):
    """Each broken copy raises one InputError, one line, naming the series and a file or folder."""
    folder = _broken(tmp_path, flair, how)
    ref = DICOM.inputs(folder, [])[0]
    with pytest.raises(InputError, match=message) as raised:
        DICOM.load(ref, LGG_CHANNELS)
    text = str(raised.value)
    assert "\n" not in text and "series 1." in text and str(folder) in text


def test_non_image_objects_are_skipped_with_a_note(flair, tmp_path):
    """An SR object and a DICOMDIR-named file beside the series are skipped and noted; the
    series is read; a folder with nothing but them is an error."""
    array, affine = flair
    folder = _study(tmp_path / "study", array, affine)
    study = Study.new("x")
    write_sr(folder / "report" / "sr.dcm", study)
    problems = []
    (ref,) = DICOM.inputs(folder, problems)
    assert not problems and any("modality SR" in note for note in ref.info["notes"])
    assert DICOM.load(ref, LGG_CHANNELS).images.shape[-1] == 64
    only_sr = tmp_path / "only_sr"
    write_sr(only_sr / "sr.dcm", study)
    assert detect_dataset(only_sr).name == "dicom"
    with pytest.raises(InputError, match="no DICOM image series.*1 non-image"):
        DICOM.inputs(only_sr, [])


def test_study_per_subfolder_gets_its_folder_name(flair, tmp_path):
    """Several studies under one folder: a case each, named after the folder holding it."""
    array, affine = flair
    _study(tmp_path / "batch" / "first", array, affine)
    _study(tmp_path / "batch" / "second", array[::-1], affine)
    assert [ref.id for ref in DICOM.inputs(tmp_path / "batch", [])] == ["first", "second"]

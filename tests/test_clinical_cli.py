"""Acceptance of DICOM and NIfTI studies through the real ``gliomaseg segment`` command, on
series built at run time from a real LGG patient and a real BraTS case (real size):

- the DICOM SEG and the NIfTI label map of a DICOM study equal, voxel for voxel, the label map
  from segmenting the same volumes as NIfTI (LGG model) or as the BraTS folder (BraTS model);
- the DICOM SEG read back with highdicom and pydicom: frames on the right source instances,
  segments with coded concepts and the algorithm, and dciodvfy (dicom3tools) finds no error;
- sagittal and LPS-flipped copies give the axial original's mask on their own grids, and
  broken copies in the same batch each get one error line while the others are segmented.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
from cli_helpers import assert_no_traceback, error_lines, run_cli
from conftest import BRATS_TEST_CASES
from dicom_series import Study, reorient, write_series, write_sr

# An axial scanner series as the LGG slices were taken (DICOM LPS): columns towards the patient's
# left, rows towards posterior, 0.94 mm pixels, 3.3 mm slices (typical TCGA-LGG FLAIR geometry).
LPS_AFFINE_LGG = np.array([[0.94, 0, 0, -120.0], [0, 0.94, 0, -120.0], [0, 0, 3.3, -40.0], [0, 0, 0, 1]])


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _label(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj)


def _seg_labels(seg_path: Path, series_folder: Path, label_values: list[int]) -> np.ndarray:
    """A DICOM SEG read back with highdicom, as an ``(X, Y, Z)`` label map on its source series'
    grid (slices by position), checking that every frame references a source instance."""
    import highdicom as hd
    import pydicom

    from gliomaseg.data.dicom import scan, series_volume

    seg = hd.seg.segread(seg_path)
    (series,), = scan(series_folder, [])[0].values()
    headers = series_volume(series)[1]
    uids = [str(h.SOPInstanceUID) for h in headers]
    referenced = {str(item.ReferencedSOPInstanceUID) for frame in seg.PerFrameFunctionalGroupsSequence
                  for item in frame.DerivationImageSequence[0].SourceImageSequence}
    assert referenced == set(uids)  # every frame on a source instance, every instance covered
    stack = seg.get_pixels_by_source_instance(uids, combine_segments=True)  # (slices, rows, columns), segment numbers
    plain = pydicom.dcmread(seg_path)
    assert plain.Modality == "SEG" and plain.StudyInstanceUID == headers[0].StudyInstanceUID
    assert plain.FrameOfReferenceUID == headers[0].FrameOfReferenceUID
    label = np.zeros(stack.shape, np.uint8)
    for number, value in enumerate(label_values, start=1):
        label[stack == number] = value
    return label.transpose(2, 1, 0)


def _dciodvfy(path: Path) -> list[str]:
    """dciodvfy's error lines about ``path`` (it is required: Debian's dicom3tools, installed by .ci/run)."""
    tool = shutil.which("dciodvfy")
    assert tool, "dciodvfy (Debian package dicom3tools) is needed to validate DICOM SEG files"
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


@pytest.fixture(scope="module")
def lgg_flair(patient_dir) -> np.ndarray:
    """The FLAIR channel of a real LGG patient, ``(columns, rows, slices)`` uint8 as a volume."""
    files = sorted((p for p in patient_dir.glob("*.tif") if not p.stem.endswith("_mask")), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    return np.stack([tifffile.imread(f)[..., 1] for f in files], axis=-1).transpose(1, 0, 2)


def test_lgg_dicom_study_equals_nifti_and_the_kaggle_slices(lgg_flair, patient_dir, tmp_path):
    """An LGG patient's FLAIR as a DICOM series (RescaleSlope 0.5) and as NIfTI: the same
    label map, the DICOM SEG equal to it, and equal to the LGG model's mask of the kaggle_3m
    slices with FLAIR in all three channels (so the orientation matches the training slices)."""
    from gliomaseg.data.base import Case
    from gliomaseg.data.labels import BinaryLabels
    from gliomaseg.inference.predictor import Predictor

    affine = np.diag([-1, -1, 1, 1]) @ LPS_AFFINE_LGG
    write_series(tmp_path / "dicom" / "flair", lgg_flair.astype(np.float32), affine, Study.new("lgg"), "AX FLAIR", 3, slope=0.5)
    nifti = tmp_path / "nifti" / "patient_flair.nii.gz"
    nifti.parent.mkdir()
    nib.save(nib.Nifti1Image(lgg_flair.astype(np.int16), affine), str(nifti))
    for name, source in (("dicom", tmp_path / "dicom"), ("nifti", nifti)):
        result = run_cli("segment", source, "--out", tmp_path / f"out_{name}")
        assert result.returncode == 0, result.stderr
    dicom_label = _label(tmp_path / "out_dicom" / "dicom_seg.nii.gz")
    nifti_label = _label(tmp_path / "out_nifti" / "patient_flair_seg.nii.gz")
    assert dicom_label.shape == lgg_flair.shape and dicom_label.any()
    np.testing.assert_array_equal(dicom_label, nifti_label)
    np.testing.assert_array_equal(_seg_labels(tmp_path / "out_dicom" / "dicom_seg.dcm", tmp_path / "dicom", [1]), dicom_label)
    assert not _dciodvfy(tmp_path / "out_dicom" / "dicom_seg.dcm")
    (record,) = _records(tmp_path / "out_dicom")
    voxel_ml = 0.94 * 0.94 * 3.3 / 1000
    assert record["volume_ml"]["tumor"] == pytest.approx(dicom_label.sum() * voxel_ml, abs=1e-3)
    predictor = Predictor.from_path("lgg")
    # (3, rows, columns, slices) as kaggle3m reads them, in float32 as volumes are read
    images = np.repeat(lgg_flair.transpose(1, 0, 2)[None], 3, axis=0).astype(np.float32)
    assert nib.aff2axcodes(affine) == ("L", "P", "S")
    slices = predictor.predict(Case("p", "kaggle3m", images, ("pre-contrast", "FLAIR", "post-contrast"), None, BinaryLabels()))
    np.testing.assert_array_equal(slices.label.transpose(1, 0, 2), dicom_label)


@pytest.fixture(scope="module")
def brats_case(brats_root) -> Path:
    return brats_root / BRATS_TEST_CASES[0]


def test_brats_dicom_study_equals_the_brats_folder(brats_case, tmp_path):
    """A real 240x240x155 BraTS case as four DICOM series (named as a scanner would, shuffled
    files, an SR object beside them) segmented by the BraTS model: the NIfTI label map and the
    DICOM SEG equal the label map of the BraTS folder itself."""
    study = Study.new("brats")
    names = {"flair": "Ax T2 FLAIR", "t1": "Sag T1 MPRAGE", "t1ce": "T1 MPRAGE +C", "t2": "Ax T2 FSE"}
    for number, (key, description) in enumerate(names.items(), start=1):
        image = nib.load(str(brats_case / f"{brats_case.name}_{key}.nii.gz"))
        write_series(tmp_path / "study" / f"s{number}", np.asarray(image.dataobj).astype(np.float32), image.affine, study,
                     description, number, seed=number, intercept=-1000.0)
    write_sr(tmp_path / "study" / "sr" / "report.dcm", study)
    for name, source in (("dicom", tmp_path / "study"), ("brats", brats_case)):
        result = run_cli("segment", source, "--model", "brats", "--out", tmp_path / name, "--save-probabilities")
        assert result.returncode == 0, result.stderr
    expected = _label(tmp_path / "brats" / f"{brats_case.name}_seg.nii.gz")
    got = _label(tmp_path / "dicom" / "study_seg.nii.gz")
    assert set(np.unique(expected)) >= {0, 1, 2, 4}
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(_seg_labels(tmp_path / "dicom" / "study_seg.dcm", tmp_path / "study" / "s1", [1, 2, 4]), expected)
    assert not _dciodvfy(tmp_path / "dicom" / "study_seg.dcm")
    (record,) = _records(tmp_path / "dicom")
    assert any("modality SR" in note for note in record["notes"])
    assert record["volume_ml"]["WT"] == pytest.approx(np.isin(expected, (1, 2, 4)).sum() / 1000, abs=1e-3)
    probabilities = nib.load(str(tmp_path / "dicom" / "study_probabilities.nii.gz"))
    assert probabilities.shape == (*expected.shape, 3)
    whole = np.asarray(probabilities.dataobj)[..., 0]
    assert ((whole >= 0.5) | ~np.isin(expected, (1, 2, 4))).mean() > 0.999  # WT label inside p >= 0.5 (post-processing aside)


def test_storage_orientations_and_broken_copies_in_one_batch(brats_case, tmp_path):
    """Sagittal and LPS-flipped copies of a FLAIR series give the axial original's mask on their
    own grids; a missing slice, a duplicate position and a truncated file each give one error
    line naming the file or series, and the other studies are segmented (exit status 3)."""
    import pydicom

    image = nib.load(str(brats_case / f"{brats_case.name}_flair.nii.gz"))
    array, affine = np.asarray(image.dataobj)[:, :, 40:104].astype(np.float32), image.affine.copy()
    affine[:3, 3] = (image.affine @ [0, 0, 40, 1])[:3]
    batch = tmp_path / "batch"
    copies = {"axial": ("L", "P", "S"), "sagittal": ("A", "S", "R"), "flipped": ("R", "A", "S"),
              "gap": ("L", "P", "S"), "duplicate": ("L", "P", "S"), "truncated": ("L", "P", "S")}
    for name, axcodes in copies.items():
        moved, moved_affine = reorient(array, affine, axcodes)
        write_series(batch / name / "flair", moved, moved_affine, Study.new(name), "FLAIR", 1)
    files = {name: sorted((batch / name / "flair").iterdir()) for name in ("gap", "duplicate", "truncated")}
    position = lambda f: float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2])  # noqa: E731
    sorted(files["gap"], key=position)[20].unlink()
    duplicate = pydicom.dcmread(files["duplicate"][0])
    duplicate.SOPInstanceUID = pydicom.uid.generate_uid()
    duplicate.save_as(batch / "duplicate" / "flair" / "again")
    files["truncated"][3].write_bytes(files["truncated"][3].read_bytes()[:-3000])
    result = run_cli("segment", batch, "--out", tmp_path / "out")
    assert_no_traceback(result)
    assert result.returncode == 3, result.stderr
    lines = error_lines(result)
    assert len(lines) == 3, result.stderr
    assert sum("batch/gap" in line and "missing slice" in line for line in lines) == 1
    assert sum("batch/duplicate" in line and "duplicate slice position" in line for line in lines) == 1
    assert sum(str(files["truncated"][3]) in line and "truncated" in line for line in lines) == 1
    masks = {}
    for name in ("axial", "sagittal", "flipped"):
        seg = nib.load(str(tmp_path / "out" / f"{name}_seg.nii.gz"))
        assert nib.aff2axcodes(seg.affine) == copies[name] or name == "axial"
        canonical = nib.as_closest_canonical(seg)
        masks[name] = np.asarray(canonical.dataobj)
        np.testing.assert_allclose(canonical.affine, nib.as_closest_canonical(image.slicer[:, :, 40:104]).affine, atol=1e-4)
    assert masks["axial"].any()
    np.testing.assert_array_equal(masks["sagittal"], masks["axial"])
    np.testing.assert_array_equal(masks["flipped"], masks["axial"])
    assert {r["case"] for r in _records(tmp_path / "out") if r["type"] == "case"} == {"axial", "sagittal", "flipped"}

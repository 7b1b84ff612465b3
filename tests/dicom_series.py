"""Test helper: write real volumes as DICOM MR series (pydicom), with the volume's geometry,
shuffled file names and scrambled InstanceNumbers (readers must order slices by position), and
re-store volumes in another orientation (sagittal, LPS-flipped). Nothing here is committed data:
the tests build the series at run time from the shared BraTS and LGG cases.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


@dataclass
class Study:
    """Patient and study attributes shared by a study's series."""

    patient_id: str
    study_uid: str
    frame_uid: str

    @classmethod
    def new(cls, patient_id: str) -> "Study":
        from pydicom.uid import generate_uid

        return cls(patient_id, generate_uid(), generate_uid())


def reorient(array: np.ndarray, affine: np.ndarray, axcodes: tuple[str, str, str]) -> tuple[np.ndarray, np.ndarray]:
    """The same voxels stored with axes pointing to ``axcodes`` (nibabel), and their RAS affine."""
    from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

    transform = ornt_transform(io_orientation(affine), axcodes2ornt(axcodes))
    return np.ascontiguousarray(apply_orientation(array, transform)), affine @ inv_ornt_aff(transform, array.shape)


def write_series(folder: Path, array: np.ndarray, affine: np.ndarray, study: Study, description: str, series_number: int,
                 seed: int = 0, slope: float = 1.0, intercept: float = 0.0, echo_ms: float = 100.0) -> list[Path]:
    """Write ``array`` (``(X, Y, Z)``, voxel -> RAS ``affine``) as one MR series, a file per slice
    along Z; pixel (row r, column c) of slice k is ``array[c, r, k]``. Stored values are
    ``(value - intercept) / slope`` (they must come out integral) as uint16 or int16.

    Returns:
        the files written, in slice order (their names are random).
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lps = RAS_TO_LPS @ affine
    column_step, row_step = np.linalg.norm(lps[:3, 0]), np.linalg.norm(lps[:3, 1])
    stored = (array.astype(np.float64) - intercept) / slope
    assert np.allclose(stored, np.round(stored)), "values must be representable"
    signed = stored.min() < 0
    stored = np.round(stored).astype(np.int16 if signed else np.uint16)
    series_uid, today = generate_uid(), datetime.date(2024, 1, 2).strftime("%Y%m%d")
    numbers = rng.permutation(array.shape[2]) + 1
    paths = []
    for k in range(array.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MR_IMAGE_STORAGE, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Patient", study.patient_id, "", "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study.study_uid, series_uid, study.frame_uid
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = today
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "", ""
        ds.Modality, ds.Manufacturer, ds.SeriesNumber, ds.InstanceNumber = "MR", "test", series_number, int(numbers[k])
        ds.SeriesDescription = ds.ProtocolName = description
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "SE", "NONE", "", "3D"
        ds.EchoTime, ds.RepetitionTime, ds.EchoTrainLength = echo_ms, 5000, 1
        ds.PositionReferenceIndicator = ""
        ds.ImagePositionPatient = [float(v) for v in (lps @ [0, 0, k, 1])[:3]]
        ds.ImageOrientationPatient = [float(v) for v in [*(lps[:3, 0] / column_step), *(lps[:3, 1] / row_step)]]
        ds.PixelSpacing = [float(row_step), float(column_step)]
        ds.SliceThickness = float(np.linalg.norm(lps[:3, 2]))
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = array.shape[1], array.shape[0]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, int(signed)
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "US"
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        path = folder / f"IM{rng.integers(1e9):09d}"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_sr(path: Path, study: Study) -> None:
    """A minimal Basic Text SR object of ``study`` (a non-image object readers must skip)."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study.patient_id, study.study_uid, generate_uid(), "SR"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)

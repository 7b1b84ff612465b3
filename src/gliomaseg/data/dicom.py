"""Dataset type ``dicom``: MRI studies as DICOM series (from the scanner or a PACS export).

A ``segment`` argument is a folder searched recursively (any file names, any depth). Its files
are read with pydicom (headers first; pixel data only for the series a model needs) and grouped
by StudyInstanceUID (a case per study) and SeriesInstanceUID. Non-image objects (structured
reports, presentation states, DICOMDIR, segmentations, anything without pixel data and patient
geometry) are skipped with a note in ``results.jsonl``.

A series becomes a :class:`~.volumes.Volume` (:func:`series_volume`): slices ordered by
ImagePositionPatient projected on the slice normal (the cross product of the
ImageOrientationPatient row and column cosines; never by file name or InstanceNumber),
RescaleSlope and RescaleIntercept applied, and the affine from PixelSpacing, the orientation
cosines and the slice positions (DICOM PS3.3 C.7.6.2.1.1; LPS turned into NIfTI's RAS). One-line
errors name the series or the file for: slice positions with a gap or a duplicate, mixed
orientations, sizes or pixel spacings within a series, pixel data that cannot be decoded (the
compressed syntaxes need the pylibjpeg plug-ins, installed with gliomaseg), a truncated file,
and multi-frame (enhanced) objects, which are not read yet.

Sequences: each series is identified as FLAIR, T1, T1ce or T2 (:mod:`.sequences`; from
SeriesDescription, ProtocolName and SequenceName, else from the acquisition), or named with
``--sequence flair=SERIES_UID`` (or the series' folder). The model's sequences are assembled
as for NIfTI volumes (:func:`~.volumes.assemble`): its orientation, FLAIR's grid.

Outputs under ``--out``: ``<study>_seg.nii.gz`` (label map on the FLAIR series' grid),
``<study>_seg.dcm``, a DICOM Segmentation (highdicom; one segment per label with SNOMED CT
coded concepts, frames referencing the FLAIR series' instances, the study's patient and study
attributes, so viewers overlay it on the FLAIR series), optional probabilities, and the
region volumes in mL in ``results.jsonl``.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from .base import Case, CaseRef, WriteOptions, register, visible
from .labels import BinaryLabels, BratsRegions, LabelConvention
from .sequences import Candidate, choose, from_acquisition, from_name
from .volumes import StudyType, Volume, VolumeGrid, assemble, lps_to_ras, model_layout, write_volume_outputs

log = logging.getLogger("gliomaseg")

DETECT_LIMIT = 2000  # files looked at before deciding a folder holds no DICOM
COSINE_TOLERANCE = 1e-4
POSITION_TOLERANCE = 0.01  # fraction of the slice spacing two positions may differ by


def is_dicom(path: Path) -> bool:
    """Whether ``path`` is a DICOM Part 10 file (``DICM`` after the 128-byte preamble)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _files(root: Path):
    """Visible files under ``root``, recursively, in sorted order."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts):
            yield path


@dataclass
class Series:
    """One series' files and headers (pixel data not read).

    Attributes:
        uid: SeriesInstanceUID.
        study: StudyInstanceUID.
        files: its image files, in scan order (not slice order).
        headers: their pydicom datasets, read without pixel data.
    """

    uid: str
    study: str
    files: list[Path] = field(default_factory=list)
    headers: list = field(default_factory=list)

    @property
    def description(self) -> str:
        header = self.headers[0]
        return str(header.get("SeriesDescription", "") or header.get("ProtocolName", "") or "no description")

    @property
    def label(self) -> str:
        return f"series {self.uid} ({self.description})"

    @property
    def folder(self) -> Path:
        return self.files[0].parent

    def sequence(self) -> str | None:
        """The sequence key the series' names, else its acquisition, point to (:mod:`.sequences`)."""
        header = self.headers[0]
        names = " ".join(str(header.get(k, "") or "") for k in ("SeriesDescription", "ProtocolName", "SequenceName"))
        return from_name(names) or from_acquisition(_float(header.get("InversionTime")), _float(header.get("EchoTime")),
                                                    bool(str(header.get("ContrastBolusAgent", "") or "").strip()))


def _float(value) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def scan(root: Path, problems: list[InputError]) -> tuple[dict[str, list[Series]], list[tuple[Path, str]]]:
    """Read the headers of every DICOM file under ``root``.

    Returns:
        StudyInstanceUID -> its image series, and ``(file, note)`` for each file skipped (a
        non-image object). Unreadable files go to ``problems``.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    series: dict[str, Series] = {}
    notes: list[tuple[Path, str]] = []
    for path in _files(root):
        if not is_dicom(path):
            continue
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(InputError(path, f"not a readable DICOM file ({exc.__class__.__name__}: {exc})"))
            continue
        kind = _non_image(header, path)
        if kind:
            notes.append((path, f"{path}: {kind} skipped"))
            continue
        uid = str(header.SeriesInstanceUID)
        entry = series.setdefault(uid, Series(uid, str(header.get("StudyInstanceUID", "unknown study"))))
        entry.files.append(path)
        entry.headers.append(header)
    studies: dict[str, list[Series]] = defaultdict(list)
    for entry in series.values():
        studies[entry.study].append(entry)
    for _, note in notes:
        log.info(note)
    return dict(studies), notes


def _non_image(header, path: Path) -> str | None:
    """Why a file is not a slice of an image series (``None`` if it is one)."""
    if path.name.upper() == "DICOMDIR" or "DirectoryRecordSequence" in header:
        return "DICOMDIR"
    modality = str(header.get("Modality", ""))
    if modality in ("SR", "PR", "SEG", "KO", "RTSTRUCT", "DOC"):
        return f"non-image object (modality {modality})"
    missing = [k for k in ("SeriesInstanceUID", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns")
               if k not in header]
    if missing:
        return f"object without image geometry ({', '.join(missing)} missing)"
    return None


def study_ids(root: Path, studies: dict[str, list[Series]]) -> dict[str, str]:
    """Case ids of the studies under ``root``: ``root``'s name for a single study; else the
    first folder under ``root`` holding all of a study's files, or the whole path to that
    folder (``/`` as ``_``) where several studies share the first, or ``root``'s name and the
    StudyInstanceUID's last component for studies mixed in one folder."""
    if len(studies) == 1:
        return {uid: _safe(root.name) for uid in studies}
    relative = {uid: Path(os.path.commonpath([s.folder for s in series])).relative_to(root) for uid, series in studies.items()}
    firsts = [path.parts[0] for path in relative.values() if path.parts]
    ids = {}
    for uid, path in relative.items():
        if not path.parts:
            ids[uid] = f"{root.name}_{uid.rsplit('.', 1)[-1]}"
        else:
            ids[uid] = path.parts[0] if firsts.count(path.parts[0]) == 1 else "_".join(path.parts)
    return {uid: _safe(name) for uid, name in ids.items()}


def series_volume(series: Series) -> tuple[Volume, list]:
    """Read a series' pixel data into a volume on its physical grid.

    Returns:
        the :class:`~.volumes.Volume` (``(columns, rows, slices)`` float32, slices ascending
        along the normal) and the headers in that slice order.

    Raises:
        InputError: naming the series or file: mixed orientations, sizes or pixel spacings;
            fewer than two slices; duplicate or unevenly spaced slice positions (a missing slice);
            a multi-frame object; pixel data that cannot be decoded or is truncated.
    """
    import pydicom

    first = series.headers[0]
    row, col = (np.asarray(first.ImageOrientationPatient, float)[:3], np.asarray(first.ImageOrientationPatient, float)[3:])
    size, pixel = (int(first.Rows), int(first.Columns)), np.asarray(first.PixelSpacing, float)
    for path, header in zip(series.files, series.headers):
        if int(header.get("NumberOfFrames", 1) or 1) > 1:
            raise InputError(path, f"{series.label}: multi-frame (enhanced) DICOM objects are not read yet")
        if not np.allclose(np.asarray(header.ImageOrientationPatient, float), [*row, *col], atol=COSINE_TOLERANCE):
            raise InputError(path, f"{series.label}: mixed orientations in one series (ImageOrientationPatient differs from {series.files[0].name}'s)")
        if (int(header.Rows), int(header.Columns)) != size or not np.allclose(np.asarray(header.PixelSpacing, float), pixel):
            raise InputError(path, f"{series.label}: mixed image sizes or pixel spacings in one series")
    if len(series.files) < 2:
        raise InputError(series.folder, f"{series.label}: a single slice is not a volume")
    normal = np.cross(row, col)
    positions = np.array([np.asarray(h.ImagePositionPatient, float) @ normal for h in series.headers])
    order = np.argsort(positions, kind="stable")
    steps = np.diff(positions[order])
    spacing = float(np.median(steps))
    for index, step in enumerate(steps):
        a, b = series.files[order[index]], series.files[order[index + 1]]
        if step <= POSITION_TOLERANCE * max(spacing, 1e-3):
            raise InputError(b, f"{series.label}: duplicate slice position {positions[order[index]]:.3f} mm (also {a.name})")
        if abs(step - spacing) > POSITION_TOLERANCE * spacing + 1e-3:
            raise InputError(series.folder, f"{series.label}: slice positions are not evenly spaced: {step:.3f} mm between "
                             f"{a.name} and {b.name} where the series steps {spacing:.3f} mm (a missing slice?)")
    slices = []
    for index in order:
        path = series.files[index]
        try:
            dataset = pydicom.dcmread(path)
            values = dataset.pixel_array.astype(np.float32)
        except Exception as exc:  # noqa: BLE001  pydicom and its decoders fail in many ways on bad data
            raise InputError(path, f"{series.label}: {_pixel_problem(path, exc)}") from None
        if values.shape != size:
            raise InputError(path, f"{series.label}: pixel data of shape {values.shape}, expected {size}")
        slope, intercept = _float(dataset.get("RescaleSlope")), _float(dataset.get("RescaleIntercept"))
        slices.append(values * (1.0 if slope is None else slope) + (0.0 if intercept is None else intercept))
    lps = np.eye(4)
    lps[:3, 0] = row * pixel[1]  # along a row: the column index i, spaced by the column spacing
    lps[:3, 1] = col * pixel[0]  # down a column: the row index j
    lps[:3, 2] = normal * spacing
    lps[:3, 3] = np.asarray(series.headers[order[0]].ImagePositionPatient, float)
    array = np.stack(slices, axis=-1).transpose(1, 0, 2)  # (rows, columns, k) -> (i, j, k)
    return Volume(np.ascontiguousarray(array), lps_to_ras(lps), series.folder, series.label), [series.headers[i] for i in order]


def _pixel_problem(path: Path, exc: Exception) -> str:
    """Why a file's pixel data could not be read, in words: truncated, or a compressed transfer
    syntax without a decoder (or with corrupt data)."""
    import pydicom

    reason = f"{exc.__class__.__name__}: {exc}"
    try:
        syntax = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    except Exception:  # noqa: BLE001  the header itself is cut short
        return f"truncated file ({reason})"
    if syntax.is_compressed:
        return f"cannot decode transfer syntax {syntax.name} ({reason}): no decoder for it, or corrupt data"
    return f"truncated or corrupt pixel data ({syntax.name}; {reason})"


@dataclass(frozen=True)
class DicomGrid(VolumeGrid):
    """A DICOM study's grid: the reference (FLAIR) series' volume grid, its headers in slice
    order (for the DICOM SEG) and the notes about skipped files."""

    headers: tuple = ()
    notes: tuple[str, ...] = ()


def segments(convention: LabelConvention) -> list[tuple[int, str, str]]:
    """``(label value, segment label, property-type name in pydicom's SCT codes)`` of each label."""
    if isinstance(convention, BratsRegions):
        return [(1, "Necrotic and non-enhancing tumor core", "Necrosis"), (2, "Peritumoral edema", "Edema"),
                (convention.enhancing_label, "Enhancing tumor", "Neoplasm")]
    if isinstance(convention, BinaryLabels):
        return [(1, "Tumor (FLAIR abnormality)", "Neoplasm")]
    raise InputError(Path("--model"), f"no DICOM SEG segments defined for labels {convention.regions}")


def write_seg(path: Path, label: np.ndarray, grid: DicomGrid, convention: LabelConvention, model: str) -> None:
    """Write a DICOM Segmentation (binary, one segment per label, highdicom) of ``label`` on the
    reference series, atomically.

    Args:
        label: ``(X, Y, Z)`` uint8 on the model's axes (turned back to the series' grid here).
        grid: the study's grid with the reference series' headers in slice order.
        model: the algorithm's name for the Algorithm Identification Sequence.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from ..atomic import atomic_path

    frames = grid.input_array(label).transpose(2, 1, 0)  # (i, j, k) -> (k, rows, columns), as the headers
    descriptions, masks = [], []
    algorithm = hd.AlgorithmIdentificationSequence(name=model, version=__version__, family=codes.cid7162.ArtificialIntelligence)
    for number, (value, text, code) in enumerate(segments(convention), start=1):
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=text,
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=getattr(codes.SCT, code), algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm, anatomic_regions=[codes.SCT.Brain]))
        masks.append(frames == value)
    first = grid.headers[0]
    seg = hd.seg.Segmentation(
        source_images=list(grid.headers), pixel_array=np.stack(masks, axis=-1), segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=int(first.get("SeriesNumber", 0) or 0) + 1000,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="gliomaseg", manufacturer_model_name=model[:64],
        software_versions=__version__, device_serial_number="none", series_description=f"gliomaseg {model}"[:64],
        omit_empty_frames=False)
    with atomic_path(path) as tmp:
        seg.save_as(tmp)


@register
class Dicom(StudyType):
    """Folders of DICOM series (searched recursively), one case per study."""

    name = "dicom"
    description = "folders of DICOM series (any names, searched recursively), a case per study"

    def detect(self, path: Path) -> bool:
        if not path.is_dir():
            return False
        for count, file in enumerate(_files(path)):
            if count >= DETECT_LIMIT:
                return False
            if is_dicom(file):
                return True
        return False

    def find(self, root: Path, require_labels: bool = True, problems: list[InputError] | None = None) -> list[CaseRef]:
        if require_labels:
            raise InputError(root, "DICOM studies carry no reference label maps gliomaseg reads; evaluate BraTS folders instead")
        return self.inputs(root, problems if problems is not None else [])

    def inputs(self, path: Path, problems: list[InputError], sequences: dict[str, str] | None = None) -> list[CaseRef]:
        if not path.is_dir():
            raise InputError(path, "expected a folder of DICOM files")
        studies, notes = scan(path, problems)
        if not studies:
            raise InputError(path, "no DICOM image series found" + (f" ({len(notes)} non-image object(s) skipped)" if notes else ""))
        refs, ids = [], study_ids(path, studies)
        for uid, series in studies.items():
            case_id = ids[uid]
            folders = {s.folder for s in series}
            own = [text for file, text in notes if len(studies) == 1 or file.parent in folders]
            refs.append(CaseRef(case_id, tuple(f for s in series for f in s.files), None, Path("."),
                                {"series": series, "sequences": dict(sequences or {}), "notes": tuple(own)}))
        return sorted(refs, key=lambda r: r.id)

    def load(self, ref: CaseRef, channels: int | None = None) -> Case:
        """Read the series the model needs (module docstring).

        Raises:
            InputError: a sequence missing or ambiguous, or a series that breaks the rules of
                :func:`series_volume`.
        """
        layout = model_layout(channels if channels is not None else 1)
        series: list[Series] = ref.info["series"]
        candidates = [Candidate(s.sequence(), s.label, frozenset({s.uid, str(s.folder), str(s.folder.resolve())}), s) for s in series]
        chosen = choose(candidates, layout, ref.info.get("sequences", {}), ref.images[0].parent)
        read = {key: series_volume(c.item) for key, c in chosen.items()}
        volumes = {key: volume for key, (volume, _) in read.items()}
        case = assemble(ref.id, self.name, volumes, layout, ref.output)
        grid = case.grid
        return replace(case, grid=DicomGrid(grid.affine, grid.shape, grid.header, grid.to_model,
                                            tuple(read["flair"][1]), ref.info.get("notes", ())))

    def write(self, case: Case, label: np.ndarray, probabilities: np.ndarray, out: Path, overwrite: bool,
              options: WriteOptions = WriteOptions()) -> list[dict]:
        seg_path = out / self.outputs(case)[1]
        record, _ = write_volume_outputs(case, label, probabilities, out, overwrite, options, {"dicom_seg": seg_path})
        write_seg(seg_path, label, case.grid, case.labels, options.model)
        record["series"] = [str(p) for p in case.sources]
        if case.grid.notes:
            record["notes"] = list(case.grid.notes)
        return [record]

    def outputs(self, ref: CaseRef | Case) -> list[Path]:
        """``<study>_seg.nii.gz`` and the DICOM SEG ``<study>_seg.dcm`` (with
        ``--save-probabilities`` also ``<study>_probabilities.nii.gz``)."""
        return [ref.output / f"{ref.id}_seg.nii.gz", ref.output / f"{ref.id}_seg.dcm"]


def _safe(name: str) -> str:
    """``name`` with characters other than letters, digits, ``.``, ``_`` and ``-`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)

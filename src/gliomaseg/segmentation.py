"""``gliomaseg segment``: masks, overlays and tumor sizes for new slices or patient folders.

For every slice ``<stem>`` it writes ``<stem>_mask.png`` (0/255, the input's size) and
``<stem>_overlay.png`` (FLAIR with the mask tinted and outlined), into ``OUT`` for loose files
and into ``OUT/<patient>/`` for a patient folder, and one JSON line per slice in
``OUT/results.jsonl``; a patient folder adds a line with its tumor volume in voxels, and an
input that cannot be used adds a line with its error. Inputs are independent: a bad one is
reported and skipped, the others are still segmented.

BraTS cases (folders of NIfTI sequences, or a folder of such folders) give
``OUT/<case>_seg.nii.gz``, the label map in the case's convention on its original grid and
affine, and ``OUT/<case>_montage.png``, axial slices with the regions in colour; their JSON line
holds the region volumes in cm^3.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import track

from .atomic import write_text_atomic
from .data.brats import REGIONS, SEQUENCES, BratsCase, find_cases, load_case, write_label_map
from .data.io import IMAGE_SUFFIXES, write_png_atomic
from .data.kaggle3m import Patient, load_patient, patient_from_files, scan_patient_folder
from .errors import InputError
from .inference.predictor import Predictor
from .inference.volumetric import VolumePredictor
from .report import brats_montage, overlay

RESULTS = "results.jsonl"


@dataclass
class SegmentationRun:
    """What one ``segment`` call produced: JSON records and the inputs it had to skip."""

    records: list[dict] = field(default_factory=list)
    problems: list[InputError] = field(default_factory=list)


def collect_inputs(inputs: list[Path], problems: list[InputError]) -> list[tuple[Patient, Path]]:
    """Turn INPUT arguments into (patient, output folder) jobs.

    A folder is one patient (its slices in slice-number order, masks ignored); each loose file
    is a volume of one slice. ``*_mask.*`` files given loose are skipped: they are labels.
    """
    jobs = []
    for path in inputs:
        try:
            if path.is_dir():
                jobs.append((scan_patient_folder(path, masks="ignored"), Path(path.name)))
            elif not path.exists():
                raise InputError(path, "no such file or folder")
            elif path.stem.endswith("_mask"):
                continue
            elif path.suffix.lower() not in IMAGE_SUFFIXES:
                raise InputError(path, f"unsupported file type {path.suffix or '(none)'}; expected one of {sorted(IMAGE_SUFFIXES)}")
            else:
                jobs.append((patient_from_files([path], path.stem), Path(".")))
        except InputError as exc:
            problems.append(exc)
    return jobs


def _targets(patient: Patient, folder: Path) -> list[tuple[Path, Path]]:
    return [(folder / f"{f.stem}_mask.png", folder / f"{f.stem}_overlay.png") for f in patient.image_files]


def segment(inputs: list[Path], out: Path, predictor: Predictor, overwrite: bool = False) -> SegmentationRun:
    """Segment every input and write masks, overlays and ``results.jsonl`` under ``out``.

    Raises:
        InputError: ``out`` already holds results and ``overwrite`` is false.
    """
    _check_results(out, overwrite)
    run = SegmentationRun()
    jobs = collect_inputs(inputs, run.problems)
    for patient, folder in track(jobs, description="segmenting", transient=True, disable=len(jobs) < 2):
        try:
            run.records.extend(_segment_one(patient, out / folder, predictor, overwrite, is_folder=folder != Path(".")))
        except InputError as exc:
            run.problems.append(exc)
    return _finish(run, out)


def _check_results(out: Path, overwrite: bool) -> None:
    if (out / RESULTS).exists() and not overwrite:
        raise InputError(out / RESULTS, "already exists; pass --overwrite to replace earlier results")


def _finish(run: SegmentationRun, out: Path) -> SegmentationRun:
    """Add the skipped inputs to the records and write ``results.jsonl``."""
    run.records.extend({"type": "error", "file": str(e.path), "error": e.problem} for e in run.problems)
    write_text_atomic(out / RESULTS, "".join(json.dumps(r) + "\n" for r in run.records))
    return run


def collect_cases(inputs: list[Path], problems: list[InputError]) -> list[BratsCase]:
    """Turn INPUT arguments into BraTS cases: a case folder, or a folder of case folders (label
    maps not needed)."""
    cases = []
    for path in inputs:
        try:
            if not path.is_dir():
                raise InputError(path, "expected a BraTS case folder (its four sequences as NIfTI) or a folder of them")
            cases.extend(find_cases(path, require_label=False, problems=problems))
        except InputError as exc:
            problems.append(exc)
    return cases


def segment_cases(inputs: list[Path], out: Path, predictor: VolumePredictor, overwrite: bool = False) -> SegmentationRun:
    """Segment BraTS cases: ``<case>_seg.nii.gz``, ``<case>_montage.png`` and ``results.jsonl`` in ``out``.

    Raises:
        InputError: ``out`` already holds results and ``overwrite`` is false.
    """
    _check_results(out, overwrite)
    run = SegmentationRun()
    for case in track(collect_cases(inputs, run.problems), description="segmenting", transient=True):
        try:
            run.records.append(_segment_case(case, out, predictor, overwrite))
        except InputError as exc:
            run.problems.append(exc)
    return _finish(run, out)


def _segment_case(case: BratsCase, out: Path, predictor: VolumePredictor, overwrite: bool) -> dict:
    seg_path, montage_path = out / f"{case.id}_seg.nii.gz", out / f"{case.id}_montage.png"
    for path in (seg_path, montage_path):
        if path.exists() and not overwrite:
            raise InputError(path, "already exists; pass --overwrite to replace it")
    started = time.perf_counter()
    volume = load_case(case)
    prediction = predictor.predict(volume.images, case.enhancing_label)
    write_label_map(seg_path, prediction.label, volume)
    write_png_atomic(montage_path, brats_montage(volume.images[SEQUENCES.index("flair")], prediction.label, case.enhancing_label))
    voxel_cm3 = float(volume.spacing[0] * volume.spacing[1] * volume.spacing[2]) / 1000
    return {"type": "case", "case": case.id, "folder": str(case.sequences[0].parent), "convention": case.convention,
            "seg": str(seg_path), "montage": str(montage_path),
            "volume_cm3": {region: round(float(prediction.regions[i].sum()) * voxel_cm3, 3) for i, region in enumerate(REGIONS)},
            "seconds": round(time.perf_counter() - started, 2)}


def _segment_one(patient: Patient, folder: Path, predictor: Predictor, overwrite: bool, is_folder: bool) -> list[dict]:
    targets = _targets(patient, folder)
    if not overwrite:
        for mask_path, overlay_path in targets:
            for path in (mask_path, overlay_path):
                if path.exists():
                    raise InputError(path, "already exists; pass --overwrite to replace it")
    load_patient(patient, predictor.config.model.in_channels)
    prediction = predictor.predict(patient.images)
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for index, (source, (mask_path, overlay_path)) in enumerate(zip(patient.image_files, targets)):
        mask = prediction.mask[index]
        write_png_atomic(mask_path, mask.astype("uint8") * 255)
        write_png_atomic(overlay_path, overlay(patient.images[index], mask))
        records.append({"type": "slice", "file": str(source), "patient": patient.id if is_folder else None,
                        "slice": index + 1, "tumor_area_px": int(mask.sum()),
                        "max_probability": round(float(prediction.probabilities[index].max()), 4),
                        "mask": str(mask_path), "overlay": str(overlay_path)})
    if is_folder:
        records.append({"type": "patient", "patient": patient.id, "folder": str(patient.image_files[0].parent),
                        "n_slices": len(patient.image_files), "tumor_volume_voxels": int(prediction.mask.sum())})
    return records

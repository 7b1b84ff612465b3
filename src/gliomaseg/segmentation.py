"""``gliomaseg segment``: masks, overlays and tumor sizes for new slices or patient folders.

For every slice ``<stem>`` it writes ``<stem>_mask.png`` (0/255, the input's size) and
``<stem>_overlay.png`` (FLAIR with the mask tinted and outlined), into ``OUT`` for loose files
and into ``OUT/<patient>/`` for a patient folder, and one JSON line per slice in
``OUT/results.jsonl``; a patient folder adds a line with its tumor volume in voxels, and an
input that cannot be used adds a line with its error. Inputs are independent: a bad one is
reported and skipped, the others are still segmented.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import track

from .atomic import write_text_atomic
from .data.io import IMAGE_SUFFIXES, write_png_atomic
from .data.kaggle3m import Patient, load_patient, patient_from_files, scan_patient_folder
from .errors import InputError
from .inference.predictor import Predictor
from .report import overlay

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
    if (out / RESULTS).exists() and not overwrite:
        raise InputError(out / RESULTS, "already exists; pass --overwrite to replace earlier results")
    run = SegmentationRun()
    jobs = collect_inputs(inputs, run.problems)
    for patient, folder in track(jobs, description="segmenting", transient=True, disable=len(jobs) < 2):
        try:
            run.records.extend(_segment_one(patient, out / folder, predictor, overwrite, is_folder=folder != Path(".")))
        except InputError as exc:
            run.problems.append(exc)
    run.records.extend({"type": "error", "file": str(e.path), "error": e.problem} for e in run.problems)
    write_text_atomic(out / RESULTS, "".join(json.dumps(r) + "\n" for r in run.records))
    return run


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

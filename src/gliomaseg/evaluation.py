"""``gliomaseg evaluate``: per-slice, per-patient and global metrics of a model on labelled patients.

Per patient (the headline): the patient's predicted and true slices are stacked in slice order
into two 3D volumes and each metric is computed once on them. Per slice: every slice on its
own; a slice where both truth and prediction are empty counts as Dice 1 (see
:mod:`gliomaseg.metrics`), and summaries are also given over the slices whose truth shows
tumor. Global: all voxels of all patients pooled.

BraTS cases: per case and region (WT, TC, ET), Dice, HD95 in mm, sensitivity, specificity and
volumes, as the challenge reports them (see :func:`gliomaseg.metrics.brats_region_metrics`).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.progress import track

from .atomic import write_text_atomic
from .data.brats import REGIONS, BratsCase, find_cases, label_to_regions, load_case
from .data.kaggle3m import Patient, find_patients, load_patient
from .errors import InputError
from .inference.predictor import Predictor
from .inference.volumetric import VolumePredictor
from .metrics import METRICS, brats_region_metrics, confusion_counts, metrics_from_counts, segmentation_metrics, summarize


@dataclass
class Evaluation:
    """Rows of ``per_slice.csv`` and ``per_patient.csv``, the summary, and skipped inputs."""

    per_slice: list[dict] = field(default_factory=list)
    per_patient: list[dict] = field(default_factory=list)
    problems: list[InputError] = field(default_factory=list)
    pooled: np.ndarray = field(default_factory=lambda: np.zeros(4))  # TP, FP, FN, TN

    def summary(self) -> dict:
        """``per_patient``/``per_slice``/``per_slice_tumor`` -> metric -> mean, median, ...; ``global``
        -> metric; ``n_patients``, ``n_slices``, ``skipped``."""
        tumor_slices = [row for row in self.per_slice if row["true_area_px"] > 0]
        return {
            "n_patients": len(self.per_patient),
            "n_slices": len(self.per_slice),
            "per_patient": {m: summarize([row[m] for row in self.per_patient]) for m in METRICS},
            "per_slice": {m: summarize([row[m] for row in self.per_slice]) for m in METRICS},
            "per_slice_tumor": {m: summarize([row[m] for row in tumor_slices]) for m in METRICS},
            "global": metrics_from_counts(*self.pooled),
            "empty_slice_rule": "a slice with empty truth and empty prediction counts as Dice 1, IoU 1, HD95 0",
            "hd95_unit": "pixels",
            "skipped": [str(p) for p in self.problems],
        }


def evaluate_patients(predictor: Predictor, patients: list[Patient], evaluation: Evaluation | None = None) -> Evaluation:
    """Predict and score each patient; a patient that cannot be read is recorded and skipped."""
    evaluation = evaluation or Evaluation()
    for patient in track(patients, description="evaluating", transient=True):
        try:
            load_patient(patient, predictor.config.model.in_channels)
        except InputError as exc:
            evaluation.problems.append(exc)
            continue
        pred = predictor.predict(patient.images).mask
        truth = patient.masks
        evaluation.per_patient.append({"patient": patient.id, "n_slices": len(truth),
                                       "true_volume_voxels": int(truth.sum()), "pred_volume_voxels": int(pred.sum()),
                                       **segmentation_metrics(pred, truth)})
        for index, (p, t, path) in enumerate(zip(pred, truth, patient.image_files)):
            evaluation.per_slice.append({"patient": patient.id, "slice": index + 1, "file": path.name,
                                         "true_area_px": int(t.sum()), "pred_area_px": int(p.sum()),
                                         **segmentation_metrics(p, t)})
        evaluation.pooled += confusion_counts(pred, truth)
        patient.images = patient.masks = None  # keep memory flat over large datasets
    return evaluation


def select_patients(data: Path, split: dict[str, list[str]] | None, subset: str | None, problems: list[InputError]) -> list[Patient]:
    """Patients of ``data``, restricted to ``split[subset]`` when given.

    Raises:
        InputError: a patient of the subset is missing, or the subset is unknown or empty.
    """
    return _restrict(find_patients(data, masks="required", problems=problems), data, split, subset, problems)


def select_cases(data: Path, split: dict[str, list[str]] | None, subset: str | None, problems: list[InputError]) -> list[BratsCase]:
    """Labelled BraTS cases of ``data``, restricted to ``split[subset]`` when given; incomplete
    cases go to ``problems``.

    Raises:
        InputError: a case of the subset is missing, or the subset is unknown or empty.
    """
    return _restrict(find_cases(data, require_label=True, problems=problems), data, split, subset, problems)


def _restrict(items: list, data: Path, split: dict[str, list[str]] | None, subset: str | None, problems: list[InputError]) -> list:
    """``items`` (with an ``id``) whose id is in ``split[subset]``; all of them without a split."""
    if split is None:
        return items
    if subset not in split:
        raise InputError(data, f"unknown subset {subset!r}; the split has {', '.join(split)}")
    wanted = set(split[subset])
    chosen = [item for item in items if item.id in wanted]
    missing = wanted - {item.id for item in chosen} - {e.path.name for e in problems} - {e.path.parent.name for e in problems}
    if missing:
        raise InputError(data, f"{len(missing)} patient(s) of subset {subset} are missing, e.g. {sorted(missing)[0]}")
    if not chosen:
        raise InputError(data, f"no readable patient of subset {subset}")
    return chosen


OUTPUTS = ("per_slice.csv", "per_patient.csv", "per_case.csv", "summary.json")


def check_output_folder(out: Path, overwrite: bool) -> None:
    """Refuse to replace an earlier evaluation (LGG or BraTS) in ``out`` unless ``overwrite``.

    Raises:
        InputError: ``out`` already holds one of the evaluation files.
    """
    if not overwrite and any((out / name).exists() for name in OUTPUTS):
        raise InputError(out, "already holds an evaluation; pass --overwrite to replace it")


def write_evaluation(evaluation: Evaluation, out: Path, overwrite: bool = False) -> dict:
    """Write ``per_slice.csv``, ``per_patient.csv`` and ``summary.json`` into ``out`` atomically.

    Raises:
        InputError: ``out`` already holds an evaluation and ``overwrite`` is false.
    """
    summary = evaluation.summary()
    _write_outputs(out, overwrite, {"per_slice.csv": _csv(evaluation.per_slice),
                                    "per_patient.csv": _csv(evaluation.per_patient),
                                    "summary.json": json.dumps(summary, indent=2) + "\n"})
    return summary


def _write_outputs(out: Path, overwrite: bool, files: dict[str, str]) -> None:
    check_output_folder(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        write_text_atomic(out / name, text)


@dataclass
class CaseEvaluation:
    """Rows of a BraTS evaluation's ``per_case.csv`` (one per case, ``<region>_<metric>`` columns)
    and the cases skipped."""

    per_case: list[dict] = field(default_factory=list)
    problems: list[InputError] = field(default_factory=list)

    def summary(self) -> dict:
        """``per_case`` -> region -> metric -> mean, median, ...; ``n_cases``, units, ``skipped``."""
        metrics = [key.split("_", 1)[1] for key in self.per_case[0] if key.startswith("WT_")] if self.per_case else []
        return {
            "n_cases": len(self.per_case),
            "per_case": {region: {m: summarize([row[f"{region}_{m}"] for row in self.per_case]) for m in metrics}
                         for region in REGIONS},
            "regions": {"WT": "labels 1, 2, 4 (3 in 2023)", "TC": "labels 1, 4", "ET": "label 4"},
            "hd95_unit": "mm",
            "empty_region_rule": "both empty: Dice 1, HD95 0; one empty: Dice 0, HD95 373.13 mm",
            "skipped": [str(p) for p in self.problems],
        }


def evaluate_cases(predictor: VolumePredictor, cases: list[BratsCase], evaluation: CaseEvaluation | None = None) -> CaseEvaluation:
    """Predict and score each BraTS case per region; an unreadable case is recorded and skipped."""
    evaluation = evaluation or CaseEvaluation()
    for case in track(cases, description="evaluating", transient=True):
        try:
            volume = load_case(case)
        except InputError as exc:
            evaluation.problems.append(exc)
            continue
        predicted = predictor.predict(volume.images, case.enhancing_label).regions
        truth = label_to_regions(volume.label, case.enhancing_label)
        row = {"case": case.id}
        for index, region in enumerate(REGIONS):
            metrics = brats_region_metrics(predicted[index], truth[index], volume.spacing)
            row.update({f"{region}_{name}": value for name, value in metrics.items()})
        evaluation.per_case.append(row)
    return evaluation


def write_case_evaluation(evaluation: CaseEvaluation, out: Path, overwrite: bool = False) -> dict:
    """Write ``per_case.csv`` and ``summary.json`` into ``out`` atomically.

    Raises:
        InputError: ``out`` already holds an evaluation and ``overwrite`` is false.
    """
    summary = evaluation.summary()
    _write_outputs(out, overwrite, {"per_case.csv": _csv(evaluation.per_case),
                                    "summary.json": json.dumps(summary, indent=2) + "\n"})
    return summary


def _csv(rows: list[dict]) -> str:
    text = io.StringIO()
    if rows:
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return text.getvalue()

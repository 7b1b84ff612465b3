"""``gliomaseg thresholds``: one probability threshold per region, chosen by cross-validation.

nnU-Net chooses its post-processing on the out-of-fold predictions of its fold models, and
BraTS entrants tune each region's threshold the same way (a lower one for the whole tumor when
edema is under-segmented). Here each fold model of a ``gliomaseg cv`` folder predicts its
held-out cases once; each region's Dice is then computed at every candidate threshold, the other
regions at the model's own threshold (the predictor's as loaded: ``gliomaseg thresholds
--threshold`` sets where the sweep starts), with the model's post-processing. Regions meet in the
label map (a voxel of the tumor core is a voxel of the whole tumor) and in post-processing (the
core and enhancing tumor are kept inside the cleaned whole tumor), so each region is scored on
the label map, as ``gliomaseg evaluate`` scores it. A region's choice is the candidate with the
highest mean out-of-fold Dice (ties: the one nearest the model's own threshold).

A choice scored on the cases it was chosen on flatters itself, so a nested estimate stands next
to it: for each fold ``k``, thresholds chosen on the cases of the other folds are applied, every
region at once, to the cases of fold ``k`` (predicted a second time rather than kept in memory).
Dice follows :mod:`gliomaseg.metrics` (1 when truth and prediction are both empty).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .atomic import write_text_atomic
from .crossval import held_out, trained_dataset
from .data.base import Case, CaseRef, DatasetType, resolve_dataset
from .data.labels import LabelConvention
from .errors import ConfigError, InputError
from .evaluation import check_output_folder, csv_text
from .inference.postprocess import to_label
from .inference.predictor import Predictor
from .metrics import confusion_counts, metrics_from_counts

CANDIDATES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)  # short training leaves models under-confident: low ones too
OUTPUTS = ("thresholds.json", "per_case.csv")


def region_dice(case: Case, probabilities: np.ndarray, thresholds: tuple[float, ...], method: str) -> np.ndarray:
    """Dice of each region of one case at the given thresholds.

    Args:
        case: a labelled case (``case.label``, ``case.labels``).
        probabilities: ``(K, *spatial)`` float in [0, 1], the predictor's output for ``case``.
        thresholds: ``K`` probabilities, one per region.
        method: post-processing method (:func:`gliomaseg.inference.postprocess.to_label`).

    Returns:
        ``(K,)`` float64 Dice in [0, 1].
    """
    return _region_dice(case.labels, case.labels.to_regions(case.label), probabilities, thresholds, method)


def _region_dice(labels: LabelConvention, truth: np.ndarray, probabilities: np.ndarray, thresholds: tuple[float, ...],
                 method: str) -> np.ndarray:
    """:func:`region_dice` with the true ``(K, *spatial)`` regions given, so that a sweep over
    thresholds derives them from the label map once per case."""
    predicted = labels.to_regions(to_label(probabilities, labels, thresholds, method))
    return np.array([metrics_from_counts(*confusion_counts(p, t))["dice"] for p, t in zip(predicted, truth)])


def best(table: np.ndarray, candidates: tuple[float, ...], own: tuple[float, ...]) -> tuple[float, ...]:
    """Per region, the candidate with the highest mean Dice over the rows of ``table``.

    Args:
        table: ``(cases, K, len(candidates))`` Dice.
        candidates: thresholds of the last axis.
        own: the model's threshold per region; a tie goes to the candidate nearest it.
    """
    means = table.mean(axis=0)
    return tuple(candidates[max(range(len(candidates)), key=lambda i: (round(float(means[r, i]), 12), -abs(candidates[i] - own[r])))]
                 for r in range(len(own)))


def choose_thresholds(data: Path, folds_file: Path, folder: Path, candidates: tuple[float, ...] = CANDIDATES,
                      load: Callable[[Path], Predictor] = Predictor.from_path) -> dict:
    """Choose each region's threshold on the out-of-fold predictions of a cross-validation.

    Args:
        data: dataset folder holding every case of the folds.
        folds_file: the folds ``folder`` was trained on (``gliomaseg split --folds K``).
        folder: a ``gliomaseg cv`` folder with every fold's ``last.safetensors``.
        candidates: thresholds to try, each in (0, 1).
        load: weights file -> predictor (its post-processing and TTA are used as they are).

    Returns:
        ``regions``, ``candidates``, ``own`` (the loaded predictors' thresholds), ``chosen``, ``nested``
        (per fold: the thresholds chosen without it), ``mean_dice`` (region -> candidate -> mean
        out-of-fold Dice), ``dice`` (region -> mean Dice at ``own``, at ``chosen`` and nested,
        every region at once), ``rows`` (one dict per case) and ``problems`` (skipped inputs).

    Raises:
        ConfigError: a candidate outside (0, 1), or fewer than two folds.
        InputError: as :func:`gliomaseg.crossval.held_out`, or no held-out case could be predicted
            (unreadable cases are skipped into ``problems``).
    """
    if not candidates or any(not 0 < t < 1 for t in candidates):
        raise ConfigError(f"threshold candidates must lie in (0, 1), got {', '.join(map(str, candidates))}")
    candidates = tuple(sorted(set(candidates)))
    dataset = resolve_dataset(data, trained_dataset(folder))
    problems: list[InputError] = []
    folds = held_out(data, folds_file, folder, dataset, problems)
    if len(folds) < 2:
        raise ConfigError("choosing thresholds by cross-validation needs at least two folds")
    rows, tables, own = [], [], None
    for k, weights, refs in folds:  # first pass: every region at every candidate
        predictor = load(weights)
        own = _per_region(predictor.config.inference.threshold, predictor.config.model.out_channels)
        method = predictor.config.inference.postprocess
        for case, probabilities in _predictions(predictor, dataset, refs, problems):
            truth = case.labels.to_regions(case.label)
            table = np.empty((len(own), len(candidates)))
            for r in range(len(own)):
                for i, t in enumerate(candidates):
                    table[r, i] = _region_dice(case.labels, truth, probabilities, own[:r] + (t,) + own[r + 1:], method)[r]
            rows.append({"case": case.id, "fold": k})
            tables.append(table)
    if not rows:
        raise InputError(data, "no held-out case could be predicted")
    table = np.stack(tables)
    fold_of = np.array([row["fold"] for row in rows])
    chosen = best(table, candidates, own)
    nested = {k: best(table[fold_of != k], candidates, own) for k, _, _ in folds}
    regions = list(dataset.labels.regions)
    position = {(row["fold"], row["case"]): index for index, row in enumerate(rows)}
    for k, weights, refs in folds:  # second pass: the choices, every region at once
        predictor = load(weights)
        for case, probabilities in _predictions(predictor, dataset, refs, []):
            row, truth = rows[position[(k, case.id)]], case.labels.to_regions(case.label)
            for name, thresholds in (("own", own), ("chosen", chosen), ("nested", nested[k])):
                dice = _region_dice(case.labels, truth, probabilities, thresholds, predictor.config.inference.postprocess)
                row.update({f"{region}_dice_{name}": float(d) for region, d in zip(regions, dice)})
    for row, case_table in zip(rows, table):
        row.update({f"{region}_dice_at_{t:g}": float(case_table[r, i]) for r, region in enumerate(regions)
                    for i, t in enumerate(candidates)})
    means = table.mean(axis=0)
    return {
        "regions": regions, "candidates": list(candidates), "own": list(own), "chosen": list(chosen),
        "nested": {str(k): list(v) for k, v in nested.items()},
        "mean_dice": {region: {f"{t:g}": float(means[r, i]) for i, t in enumerate(candidates)} for r, region in enumerate(regions)},
        "dice": {region: {name: float(np.mean([row[f"{region}_dice_{name}"] for row in rows])) for name in ("own", "chosen", "nested")}
                 for region in regions},
        "n_cases": len(rows), "rows": rows, "problems": problems,
    }


def check_output(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that is a file, or one holding an earlier choice unless ``overwrite``.

    Raises:
        InputError: naming ``out``.
    """
    check_output_folder(out, overwrite, OUTPUTS, "a threshold choice")


def write_choice(choice: dict, out: Path, overwrite: bool = False) -> None:
    """Write :func:`choose_thresholds`' result into ``out``: ``thresholds.json`` (all but the
    rows and problems) and ``per_case.csv`` (a case's Dice per region at every candidate, at the
    models' own thresholds, the chosen ones and nested), each file atomically.

    Raises:
        InputError: as :func:`check_output`.
    """
    check_output(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    summary = {key: value for key, value in choice.items() if key not in ("rows", "problems")}
    write_text_atomic(out / "thresholds.json", json.dumps(summary, indent=2) + "\n")
    write_text_atomic(out / "per_case.csv", csv_text(choice["rows"]))


def _per_region(threshold: float | tuple[float, ...], regions: int) -> tuple[float, ...]:
    return tuple(threshold) if isinstance(threshold, tuple) else (float(threshold),) * regions


def _predictions(predictor: Predictor, dataset: DatasetType, refs: list[CaseRef],
                 problems: list[InputError]) -> Iterator[tuple[Case, np.ndarray]]:
    """``(case, probabilities)`` of each readable case of ``refs``; unreadable ones go to ``problems``."""
    for ref in refs:
        try:
            case = dataset.load(ref, predictor.in_channels)
            yield case, predictor.predict(case).probabilities
        except InputError as exc:
            problems.append(exc)

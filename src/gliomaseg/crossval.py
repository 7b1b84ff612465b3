"""``gliomaseg cv``: K-fold cross-validation by patient (case), as nnU-Net selects its models.

Each fold ``k`` of a folds file (``gliomaseg split --folds K``) trains on the other folds into
``<out>/fold<k>`` with the poly schedule (nothing is chosen on the held-out fold: no early
stopping, no best epoch; the last weights are the fold's model), then that model predicts the
patients of fold ``k``, which it never saw. The out-of-fold rows of every fold are pooled into
one evaluation (``per_<patient|case>.csv`` with a ``fold`` column, ``summary.json`` with the
pooled statistics and each fold's mean Dice and the spread across folds).

A fold whose run folder already holds a training state is resumed, so an interrupted
cross-validation goes on where it stopped and a finished fold is only evaluated again.
``gliomaseg evaluate DATA --model CV_FOLDER --split FOLDS`` scores the fold models out of fold
again with other inference settings (:func:`evaluate_folds`), e.g. to choose post-processing.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import numpy as np

from .config import Config
from .data.base import CaseRef, DatasetType, resolve_dataset
from .data.labels import BinaryLabels
from .data.splits import fold_split, load_folds
from .errors import ConfigError, InputError
from .evaluation import Evaluation, evaluate, select
from .inference.predictor import Predictor
from .models.weights import load_state, read_config
from .training.trainer import train


def cross_validate(data: Path, folds_file: Path, config: Config, out: Path, max_minutes: float | None = None,
                   only: list[int] | None = None) -> tuple[Evaluation, list[dict]]:
    """Train every fold (or the folds in ``only``) of ``folds_file``, then score each on its
    held-out patients (:func:`evaluate_folds`).

    Args:
        data: dataset folder holding every patient of the folds.
        folds_file: ``{"folds": [[ids], ...]}`` written by ``gliomaseg split --folds K``.
        config: run config; ``train.schedule`` must be ``poly``.
        out: folder for the fold runs ``fold<k>``.
        max_minutes: training time budget of each fold, minutes.
        only: fold indices to run; default all.

    Returns:
        as :func:`evaluate_folds`, each record with the fold's training ``minutes`` too.

    Raises:
        ConfigError: ``train.schedule`` is not ``poly``.
        InputError: a fold index out of range, or a case of the folds missing from ``data``.
    """
    if config.train.schedule != "poly":
        raise ConfigError("cross-validation needs train.schedule poly: the plateau schedule would choose its "
                          "learning rate, stopping epoch and weights on the held-out fold (--set train.schedule=poly)")
    folds = load_folds(folds_file)
    chosen = _chosen(folds_file, folds, only)
    minutes = {}
    for k in chosen:
        run = out / f"fold{k}"
        done = _finished_minutes(run, config, max_minutes)
        if done is None:  # not started, or stopped early: train (resuming), reading its cases
            done = train(data, fold_split(folds, k), copy.deepcopy(config), run, (run / "state.safetensors").exists(), max_minutes).minutes
        minutes[k] = round(done, 2)
    evaluation, records = evaluate_folds(data, folds_file, out, only=chosen)
    return evaluation, [{**record, "minutes": minutes[record["fold"]]} for record in records]


def evaluate_folds(data: Path, folds_file: Path, folder: Path, only: list[int] | None = None,
                   load: Callable[[Path], Predictor] = Predictor.from_path) -> tuple[Evaluation, list[dict]]:
    """Out-of-fold evaluation: each fold's model (``<folder>/fold<k>/last.safetensors``) scores
    the patients of fold ``k``, which it never saw; the rows are pooled into one evaluation.
    Post-processing and thresholds can so be compared by cross-validation without training again.

    Args:
        data: dataset folder holding every patient of the folds.
        folds_file: the folds the runs of ``folder`` were trained on.
        folder: a ``gliomaseg cv`` folder.
        only: fold indices to score; default all.
        load: weights file -> predictor (e.g. with inference overrides).

    Returns:
        the pooled evaluation (rows tagged with ``fold``) and one record per fold: ``fold``,
        ``n`` cases and the mean Dice per region (``dice`` for binary labels, ``<region>_dice``
        for BraTS).

    Raises:
        InputError: a fold index out of range, a fold without its model, or a case of the folds
            missing from ``data``.
    """
    evaluation = Evaluation(resolve_dataset(data, trained_dataset(folder)))
    records = []
    for k, weights, refs in held_out(data, folds_file, folder, evaluation.dataset, evaluation.problems, only):
        start_case, start_slice = len(evaluation.per_case), len(evaluation.per_slice)
        evaluate(load(weights), evaluation.dataset, refs, evaluation)
        for row in evaluation.per_case[start_case:] + evaluation.per_slice[start_slice:]:
            row["fold"] = k
        rows = evaluation.per_case[start_case:] or evaluation.per_slice[start_slice:]
        records.append({"fold": k, "n": len(rows),
                        **{key: float(np.mean([row[key] for row in rows])) for key in dice_keys(evaluation)}})
    return evaluation, records


def held_out(data: Path, folds_file: Path, folder: Path, dataset: DatasetType, problems: list[InputError],
             only: list[int] | None = None) -> list[tuple[int, Path, list[CaseRef]]]:
    """Each fold's model and the labelled cases it never saw, all checked before any is predicted.

    Args:
        data: dataset folder holding every patient of the folds.
        folds_file: the folds the runs of ``folder`` were trained on.
        folder: a ``gliomaseg cv`` folder (``fold<k>/last.safetensors``).
        dataset: the type of the cases (:func:`trained_dataset`).
        problems: incomplete cases of ``data`` are appended here.
        only: fold indices; default all.

    Returns:
        ``(k, weights file, held-out case refs)`` per fold, in fold order.

    Raises:
        InputError: a fold index out of range, a fold without its model, or a case of the folds
            missing from ``data``.
    """
    folds = load_folds(folds_file)
    chosen = []
    for k in _chosen(folds_file, folds, only):
        weights = Path(folder) / f"fold{k}" / "last.safetensors"
        if not weights.is_file():
            raise InputError(weights, f"fold {k} has no model; train it with gliomaseg cv")
        chosen.append((k, weights, select(dataset, data, fold_split(folds, k), "val", problems)))
    return chosen


def trained_dataset(folder: Path) -> str:
    """The ``data.dataset`` the fold models of a cross-validation folder were trained on
    (``auto`` when it holds none yet)."""
    first = fold_models(folder)
    return read_config(first[0]).data.dataset if first else "auto"


def _finished_minutes(run: Path, config: Config, max_minutes: float | None) -> float | None:
    """Training minutes of a fold run that has reached ``train.max_epochs`` or ``max_minutes``
    (read from its state, no case is loaded), or ``None`` when it has to (go on) training."""
    if not (run / "state.safetensors").is_file():
        return None
    progress = load_state(run / "state.safetensors")[1]["progress"]
    finished = progress["epoch"] >= config.train.max_epochs or (max_minutes is not None and progress["minutes"] >= max_minutes)
    return progress["minutes"] if finished else None


def _chosen(folds_file: Path, folds: list[list[str]], only: list[int] | None) -> list[int]:
    chosen = list(range(len(folds))) if not only else list(only)
    bad = [k for k in chosen if not 0 <= k < len(folds)]
    if bad:
        raise InputError(folds_file, f"--fold must be from 0 to {len(folds) - 1}, got {bad[0]}")
    return chosen


def fold_models(folder: Path) -> list[Path]:
    """The fold models of a cross-validation folder (``<folder>/fold<k>/last.safetensors``,
    ``k`` ascending), or ``[]`` when ``folder`` holds no fold runs."""
    runs = sorted((p for p in Path(folder).glob("fold*") if p.name[4:].isdigit()), key=lambda p: int(p.name[4:]))
    return [run / "last.safetensors" for run in runs if (run / "last.safetensors").is_file()]


def dice_keys(evaluation: Evaluation) -> list[str]:
    """The per-case Dice columns: ``dice`` for binary labels, ``<region>_dice`` per BraTS region."""
    labels = evaluation.dataset.labels
    return ["dice"] if isinstance(labels, BinaryLabels) else [f"{region}_dice" for region in labels.regions]


def fold_summary(records: list[dict], keys: list[str]) -> dict:
    """Per-fold records and, per Dice column, the mean and sample standard deviation of the
    fold means (the spread across folds)."""
    spread = {key: {"mean_of_folds": float(np.mean([r[key] for r in records])),
                    "sd_of_folds": float(np.std([r[key] for r in records], ddof=1)) if len(records) > 1 else 0.0}
              for key in keys}
    return {"folds": records, "across_folds": spread}

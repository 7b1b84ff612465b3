"""``gliomaseg cv``: K-fold cross-validation by patient (case), as nnU-Net selects its models.

Each fold ``k`` of a folds file (``gliomaseg split --folds K``) trains on the other folds into
``<out>/fold<k>`` with the poly schedule (nothing is chosen on the held-out fold: no early
stopping, no best epoch; the last weights are the fold's model), then that model predicts the
patients of fold ``k``, which it never saw. The out-of-fold rows of every fold are pooled into
one evaluation (``per_<patient|case>.csv`` with a ``fold`` column, ``summary.json`` with the
pooled statistics and each fold's mean Dice and the spread across folds).

A fold whose run folder already holds a training state is resumed, so an interrupted
cross-validation goes on where it stopped and a finished fold is only evaluated again.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from .config import Config
from .data.base import resolve_dataset
from .data.labels import BinaryLabels
from .data.splits import fold_split, load_folds
from .errors import ConfigError, InputError
from .evaluation import Evaluation, evaluate, select
from .inference.predictor import Predictor
from .training.trainer import train


def cross_validate(data: Path, folds_file: Path, config: Config, out: Path, max_minutes: float | None = None,
                   only: list[int] | None = None) -> tuple[Evaluation, list[dict]]:
    """Train and score every fold (or the folds in ``only``) of ``folds_file``.

    Args:
        data: dataset folder holding every patient of the folds.
        folds_file: ``{"folds": [[ids], ...]}`` written by ``gliomaseg split --folds K``.
        config: run config; ``train.schedule`` must be ``poly``.
        out: folder for the fold runs ``fold<k>``.
        max_minutes: training time budget of each fold, minutes.
        only: fold indices to run; default all.

    Returns:
        the pooled out-of-fold evaluation (rows tagged with ``fold``) and one record per fold:
        ``fold``, ``n`` cases, ``minutes`` of training and the mean Dice per region
        (``dice`` for binary labels, ``<region>_dice`` for BraTS).

    Raises:
        ConfigError: ``train.schedule`` is not ``poly``.
        InputError: a fold index out of range, or a case of the folds missing from ``data``.
    """
    if config.train.schedule != "poly":
        raise ConfigError("cross-validation needs train.schedule poly: the plateau schedule would choose its "
                          "learning rate, stopping epoch and weights on the held-out fold (--set train.schedule=poly)")
    folds = load_folds(folds_file)
    chosen = list(range(len(folds))) if not only else only
    bad = [k for k in chosen if not 0 <= k < len(folds)]
    if bad:
        raise InputError(folds_file, f"--fold must be from 0 to {len(folds) - 1}, got {bad[0]}")
    dataset = resolve_dataset(data, config.data.dataset)
    evaluation = Evaluation(dataset)
    records = []
    for k in chosen:
        split, run = fold_split(folds, k), out / f"fold{k}"
        progress = train(data, split, copy.deepcopy(config), run, (run / "state.safetensors").exists(), max_minutes)
        predictor = Predictor.from_path(str(run / "last.safetensors"), dataset.name)
        start_case, start_slice = len(evaluation.per_case), len(evaluation.per_slice)
        evaluate(predictor, dataset, select(dataset, data, split, "val", evaluation.problems), evaluation)
        for row in evaluation.per_case[start_case:] + evaluation.per_slice[start_slice:]:
            row["fold"] = k
        rows = evaluation.per_case[start_case:] or evaluation.per_slice[start_slice:]
        records.append({"fold": k, "n": len(rows), "minutes": round(progress.minutes, 2),
                        **{key: float(np.mean([row[key] for row in rows])) for key in dice_keys(evaluation)}})
    return evaluation, records


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

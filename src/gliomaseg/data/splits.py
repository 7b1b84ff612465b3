"""Patient-level train/validation/test splits and cross-validation folds, stratified by source
institution.

No patient is ever in two subsets or two folds. Each institution's patients are shuffled with
the seed and dealt out in proportion, so every subset (fold) draws from every institution that
has enough patients (an institution with one or two patients can only reach some of them).

A split file holds either ``{"train": [...], "val": [...], "test": [...]}`` or, for
cross-validation (nnU-Net's 5 folds), ``{"folds": [[...], ...]}``: fold ``k``'s split trains on
every other fold and validates on fold ``k`` (:func:`fold_split`).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import InputError

SUBSETS = ("train", "val", "test")


def institution(patient_id: str) -> str:
    """``TCGA_<inst>_<id>_<date>`` -> ``<inst>``; other ids form one group ``""``."""
    parts = patient_id.split("_")
    return parts[1] if len(parts) > 2 and parts[0] == "TCGA" else ""


def make_split(patient_ids: list[str], val: float = 0.15, test: float = 0.15, seed: int = 0) -> dict[str, list[str]]:
    """Split patients into train, val and test, stratified by institution.

    Args:
        patient_ids: unique patient ids.
        val, test: fractions of patients in [0, 1), ``val + test < 1``.
        seed: shuffling seed; the same ids and seed give the same split.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, each sorted.

    Raises:
        ValueError: fractions out of range or duplicate ids.
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"fractions must satisfy 0 <= val, test and val + test < 1, got val={val}, test={test}")
    if len(set(patient_ids)) != len(patient_ids):
        raise ValueError("patient ids are not unique")
    ordered = _stratified_order(patient_ids, seed)
    # Systematic sampling along the list grouped by institution: every 1/test-th patient goes
    # to test, then every 1/val-th of the rest to val, so each institution is represented in
    # proportion to its size.
    test_ids = _every(ordered, test)
    rest = [pid for pid in ordered if pid not in test_ids]
    val_ids = _every(rest, val / (1 - test))
    split = {
        "train": [pid for pid in rest if pid not in val_ids],
        "val": val_ids,
        "test": test_ids,
    }
    return {name: sorted(ids) for name, ids in split.items()}


def make_folds(patient_ids: list[str], folds: int = 5, seed: int = 0) -> list[list[str]]:
    """Deal patients into ``folds`` cross-validation folds of near-equal size (sizes differ by
    at most one), stratified by institution like :func:`make_split`.

    Args:
        patient_ids: unique patient (case) ids.
        folds: number of folds, from 2 to the number of patients.
        seed: shuffling seed; the same ids and seed give the same folds.

    Returns:
        ``folds`` sorted lists of ids; every id is in exactly one.

    Raises:
        ValueError: fewer than 2 folds, more folds than patients, or duplicate ids.
    """
    if not 2 <= folds <= len(patient_ids):
        raise ValueError(f"--folds must be from 2 to the number of patients ({len(patient_ids)}), got {folds}")
    if len(set(patient_ids)) != len(patient_ids):
        raise ValueError("patient ids are not unique")
    ordered = _stratified_order(patient_ids, seed)
    return [sorted(ordered[k::folds]) for k in range(folds)]


def fold_split(folds: list[list[str]], fold: int) -> dict[str, list[str]]:
    """The split of cross-validation fold ``fold``: train on the other folds, validate on this
    one, no test subset (the held-out fold is the test of cross-validation).

    Raises:
        ValueError: ``fold`` is not in ``0 .. len(folds) - 1``.
    """
    if not 0 <= fold < len(folds):
        raise ValueError(f"--fold must be from 0 to {len(folds) - 1}, got {fold}")
    train = sorted(pid for k, ids in enumerate(folds) if k != fold for pid in ids)
    return {"train": train, "val": list(folds[fold]), "test": []}


def _stratified_order(patient_ids: list[str], seed: int) -> list[str]:
    """Ids grouped by institution (sorted), each group shuffled with ``seed``."""
    groups: dict[str, list[str]] = defaultdict(list)
    for pid in sorted(patient_ids):
        groups[institution(pid)].append(pid)
    rng = random.Random(seed)
    ordered = []
    for inst in sorted(groups):
        members = groups[inst][:]
        rng.shuffle(members)
        ordered.extend(members)
    return ordered


def _every(items: list[str], fraction: float) -> list[str]:
    """Items at the positions where ``floor(position * fraction)`` steps up."""
    return [item for i, item in enumerate(items) if int((i + 1) * fraction) > int(i * fraction)]


def save_split(split: dict[str, list[str]] | dict[str, list[list[str]]], path: str | Path, overwrite: bool = False) -> None:
    """Write a split (or ``{"folds": ...}``) as JSON, atomically.

    Raises:
        InputError: ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(path, "already exists; pass --overwrite to replace it")
    write_text_atomic(path, json.dumps(split, indent=2) + "\n")


def load_split(path: str | Path, fold: int | None = None) -> dict[str, list[str]]:
    """Read a split written by :func:`save_split`; for a file of cross-validation folds, the
    split of ``fold`` (:func:`fold_split`).

    Raises:
        InputError: missing file, not JSON, missing subsets, a patient in two subsets or folds,
            a fold file read without ``fold`` (or a plain split with one), or ``fold`` out of
            range.
    """
    path = Path(path)
    split = _read(path)
    if isinstance(split, dict) and "folds" in split:
        folds = _checked_folds(path, split["folds"])
        if fold is None:
            raise InputError(path, f"holds {len(folds)} cross-validation folds; choose one with --fold 0..{len(folds) - 1}")
        try:
            return fold_split(folds, fold)
        except ValueError as exc:
            raise InputError(path, str(exc)) from None
    if fold is not None:
        raise InputError(path, "is a train/val/test split, not cross-validation folds (write those with gliomaseg split --folds K)")
    if not isinstance(split, dict) or not all(isinstance(split.get(s), list) for s in SUBSETS):
        raise InputError(path, f"a split needs the lists {', '.join(SUBSETS)}")
    seen: dict[str, str] = {}
    for name in SUBSETS:
        for pid in split[name]:
            if pid in seen:
                raise InputError(path, f"patient {pid} is in both {seen[pid]} and {name}")
            seen[pid] = name
    return {name: split[name] for name in SUBSETS}


def load_folds(path: str | Path) -> list[list[str]]:
    """The folds of a cross-validation split file (``{"folds": [[ids], ...]}``).

    Raises:
        InputError: missing file, not JSON, no ``folds`` list, or a patient in two folds.
    """
    path = Path(path)
    raw = _read(path)
    if not isinstance(raw, dict) or "folds" not in raw:
        raise InputError(path, "holds no cross-validation folds (write them with gliomaseg split --folds K)")
    return _checked_folds(path, raw["folds"])


def _checked_folds(path: Path, folds: object) -> list[list[str]]:
    if not isinstance(folds, list) or len(folds) < 2 or not all(isinstance(f, list) and f for f in folds):
        raise InputError(path, "folds must be a list of at least 2 non-empty lists of ids")
    seen: dict[str, int] = {}
    for k, ids in enumerate(folds):
        for pid in ids:
            if pid in seen:
                raise InputError(path, f"patient {pid} is in both fold {seen[pid]} and fold {k}")
            seen[pid] = k
    return folds


def _read(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "no such split file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not valid JSON ({exc.__class__.__name__})") from None

"""Patient-level train/validation/test splits, stratified by source institution.

No patient is ever in two subsets. Each institution's patients are shuffled with the seed and
dealt out in proportion, so every subset draws from every institution that has enough
patients (an institution with one or two patients can only reach some subsets).
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
    groups: dict[str, list[str]] = defaultdict(list)
    for pid in sorted(patient_ids):
        groups[institution(pid)].append(pid)
    rng = random.Random(seed)
    ordered = []
    for inst in sorted(groups):
        members = groups[inst][:]
        rng.shuffle(members)
        ordered.extend(members)
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


def _every(items: list[str], fraction: float) -> list[str]:
    """Items at the positions where ``floor(position * fraction)`` steps up."""
    return [item for i, item in enumerate(items) if int((i + 1) * fraction) > int(i * fraction)]


def save_split(split: dict[str, list[str]], path: str | Path, overwrite: bool = False) -> None:
    """Write a split as JSON, atomically.

    Raises:
        InputError: ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(path, "already exists; pass --overwrite to replace it")
    write_text_atomic(path, json.dumps(split, indent=2) + "\n")


def load_split(path: str | Path) -> dict[str, list[str]]:
    """Read a split written by :func:`save_split`.

    Raises:
        InputError: missing file, not JSON, missing subsets, or a patient in two subsets.
    """
    path = Path(path)
    try:
        split = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "no such split file") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(split, dict) or not all(isinstance(split.get(s), list) for s in SUBSETS):
        raise InputError(path, f"a split needs the lists {', '.join(SUBSETS)}")
    seen: dict[str, str] = {}
    for name in SUBSETS:
        for pid in split[name]:
            if pid in seen:
                raise InputError(path, f"patient {pid} is in both {seen[pid]} and {name}")
            seen[pid] = name
    return {name: split[name] for name in SUBSETS}

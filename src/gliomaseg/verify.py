"""``gliomaseg verify DATA``: walk a dataset before training or evaluation and report every
problem, one line each naming its file (in the spirit of nnU-Net's ``--verify_dataset_integrity``).

Three layers, so each rule lives in one place:

- layout (every type's ``find``): missing or orphan files, duplicate slice numbers, a case
  without its labels;
- the type's own file checks (:meth:`~gliomaseg.data.base.DatasetType.verify`): extra files,
  missing slice numbers, unreadable, corrupt or truncated files, NaN or infinite values, sizes,
  shapes, spacing and affines that differ between a case's files, label values outside the
  convention, non-binary masks;
- generic checks of a loaded case (:func:`case_problems`): an empty label map.

The *cheap* part (``full=False``: layout and headers, nothing decoded; no hygiene checks such
as extra files) is what ``train`` and ``evaluate`` run first; ``verify`` decodes every file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .data.base import Case, CaseRef, DatasetType, detect_dataset
from .errors import InputError


@dataclass
class Report:
    """What a walk over a dataset found.

    Attributes:
        dataset: the dataset type that read it.
        cases: cases found (complete or not).
        problems: one error per problem, each naming its file.
        seconds: wall time of the walk.
    """

    dataset: DatasetType
    cases: int = 0
    problems: list[InputError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.problems


def case_problems(case: Case) -> Iterator[InputError]:
    """Generic checks of a loaded, labelled case: an empty label map in a case of several
    slices or a volume (a lone slice without tumor is an ordinary negative example)."""
    if case.label is not None and case.label.shape[-1] > 1 and not case.label.any():
        where = case.sources[0].parent if case.sources else case.id
        yield InputError(where, f"{case.id}: the label map is empty (no tumor voxel in any slice)")


def verify_case(dataset: DatasetType, ref: CaseRef, full: bool = True) -> list[InputError]:
    """Every problem of one case (see the module's layers), file by file; with ``full``, a case
    whose files are all sound is then loaded for the generic checks."""
    problems = list(dataset.verify(ref, full))
    if not full or problems:
        return problems
    try:
        return list(case_problems(dataset.load(ref)))
    except InputError as exc:  # a rule of load() that the type's verify() does not repeat
        return [exc]


def verify_dataset(path: str | Path, full: bool = True, require_labels: bool = True) -> Report:
    """Walk the dataset at ``path`` (any registered type, detected from its layout).

    Raises:
        InputError: ``path`` is missing, of no known layout, or holds no case at all.
    """
    started = time.perf_counter()
    path = Path(path)
    dataset = detect_dataset(path)
    report = Report(dataset)
    refs = dataset.find(path, require_labels=require_labels, problems=report.problems)
    report.cases = len(refs) + len(report.problems)
    for ref in refs:
        report.problems.extend(verify_case(dataset, ref, full))
    report.seconds = time.perf_counter() - started
    return report


def usable(dataset: DatasetType, refs: list[CaseRef], problems: list[InputError]) -> list[CaseRef]:
    """The cases of ``refs`` whose cheap checks pass (layout and headers, nothing decoded); the
    problems of the others go to ``problems``. Run by ``train`` and ``evaluate`` first."""
    kept = []
    for ref in refs:
        found = verify_case(dataset, ref, full=False)
        problems.extend(found)
        if not found:
            kept.append(ref)
    return kept

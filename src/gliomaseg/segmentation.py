"""``gliomaseg segment``: one loop over the cases of any dataset type; each type writes its
own outputs (masks and overlays per slice, or a NIfTI label map and a montage per volume), and
one JSON line per output goes to ``OUT/results.jsonl``, with a line per input that could not
be used. Inputs are independent: a bad one is reported and skipped, the others are segmented.

Which reader takes an argument: a loose image file is a slice read the way the model's own
dataset type reads slices; anything else is read by the dataset type that recognises it.

Output names: each input's outputs are named after it (``<slice>_mask.png``, ``<patient>/``,
``<case>_seg.nii.gz``). Inputs whose outputs would have the same name (``a/x_1.tif`` and
``b/x_1.tif``) keep their own folders instead, relative to the folder they share
(``a/x_1_mask.png``, ``b/x_1_mask.png``), with a warning; an input given twice is reported
once as skipped. All of this, and existing outputs without ``--overwrite``, is checked before
any input is read.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .atomic import require_folder, write_text_atomic
from .data.base import Case, CaseRef, DatasetType, WriteOptions, detect_dataset, existing_outputs
from .data.io import warn_once
from .errors import InputError
from .inference.predictor import Prediction, Predictor

RESULTS = "results.jsonl"


@dataclass
class SegmentationRun:
    """What one ``segment`` call produced: JSON records and the inputs it had to skip."""

    records: list[dict] = field(default_factory=list)
    problems: list[InputError] = field(default_factory=list)

    @property
    def segmented(self) -> int:
        """Inputs segmented (cases, patients or loose slices)."""
        return sum(r["type"] in ("case", "patient") or (r["type"] == "slice" and r["patient"] is None) for r in self.records)


def reader_for(path: Path, predictor: Predictor) -> DatasetType:
    """The dataset type that reads ``path``: the model's own for a loose file of a slice
    model, else the detected type.

    Raises:
        InputError: ``path`` does not exist or no dataset type recognises it.
    """
    if path.is_file() and not predictor.dataset.volumetric and predictor.dataset.detect(path):
        return predictor.dataset
    return detect_dataset(path)


def collect(inputs: list[Path], predictor: Predictor, problems: list[InputError],
            sequences: dict[str, str] | None = None) -> list[tuple[DatasetType, CaseRef]]:
    """Turn INPUT arguments into (reader, case) jobs; unusable arguments go to ``problems``.

    Args:
        sequences: ``--sequence`` choices, passed to every reader (:meth:`DatasetType.inputs`).
    """
    jobs = []
    for path in inputs:
        try:
            reader = reader_for(path, predictor)
            jobs.extend((reader, ref) for ref in reader.inputs(path, problems, sequences))
        except InputError as exc:
            problems.append(exc)
    return jobs


def plan_outputs(jobs: list[tuple[DatasetType, CaseRef]], out: Path, overwrite: bool,
                 problems: list[InputError]) -> list[tuple[DatasetType, CaseRef]]:
    """Give every job output names of its own, before any input is read: an input given twice
    is skipped (a problem); inputs whose outputs would collide keep their folders relative to
    the folder they share (with a warning); without ``overwrite``, a job with an existing
    output is skipped (a problem), so a batch never fails halfway on a name.

    Returns:
        the jobs to run, in order, their ``ref.output`` possibly moved into a subfolder.
    """
    unique, seen = [], set()
    for reader, ref in jobs:
        key = tuple(path.resolve() for path in ref.images)
        if key in seen:
            problems.append(InputError(ref.images[0] if len(ref.images) == 1 else ref.images[0].parent,
                                       "given twice; segmented once"))
            continue
        seen.add(key)
        unique.append((reader, ref))
    owners: dict[Path, list[int]] = {}
    for index, (reader, ref) in enumerate(unique):
        for path in set(reader.outputs(ref)):
            owners.setdefault(path, []).append(index)
    clashing = sorted({i for users in owners.values() if len(users) > 1 for i in users})
    if clashing:
        anchors = {i: _anchor(unique[i][1]) for i in clashing}
        common = Path(os.path.commonpath([str(a) for a in anchors.values()]))
        for i in clashing:
            reader, ref = unique[i]
            unique[i] = reader, dataclasses.replace(ref, output=anchors[i].relative_to(common) / ref.output)
        warn_once(f"{len(clashing)} inputs have outputs of the same name; each one's outputs go under --out in its "
                  f"folder relative to {common} (e.g. {unique[clashing[0]][1].output})")
    planned = []
    for reader, ref in unique:
        try:
            if not overwrite:
                existing_outputs([out / path for path in reader.outputs(ref)])
        except InputError as exc:
            problems.append(exc)
            continue
        planned.append((reader, ref))
    return planned


def _anchor(ref: CaseRef) -> Path:
    """The folder that names a case: a loose file's folder, or the folder holding the patient
    or case folder."""
    folder = ref.images[0].resolve().parent
    return folder if ref.output == Path(".") and len(ref.images) == 1 else folder.parent


def segment(inputs: list[Path], out: Path, predictor: Predictor, overwrite: bool = False,
            sequences: dict[str, str] | None = None, options: WriteOptions = WriteOptions(),
            on_case: Callable[[Case, Prediction], None] | None = None) -> SegmentationRun:
    """Segment every input and write its outputs and ``results.jsonl`` under ``out``;
    ``on_case`` (the server's viewer) is called with each segmented case and its prediction.

    Args:
        sequences: ``--sequence`` choices for studies of several sequences (:mod:`gliomaseg.data.sequences`).
        options: what the writers write besides the label maps (:class:`~gliomaseg.data.base.WriteOptions`).

    Raises:
        InputError: ``out`` is a file, or already holds results and ``overwrite`` is false.
    """
    from rich.progress import track

    check_output_folder(out, overwrite)
    run = SegmentationRun()
    jobs = plan_outputs(collect(inputs, predictor, run.problems, sequences), out, overwrite, run.problems)
    for reader, ref in track(jobs, description="segmenting", transient=True, disable=len(jobs) < 2):
        started = time.perf_counter()
        try:
            case = reader.load(ref, predictor.in_channels)
            _prefetch("scipy.ndimage")  # post-processing needs it; its import overlaps the network's forward pass
            prediction = predictor.predict(case)
            records = reader.write(case, prediction.label, prediction.probabilities, out, overwrite, options)
            if on_case is not None:
                on_case(case, prediction)
        except InputError as exc:
            run.problems.append(exc)
            continue
        records[-1]["seconds"] = round(time.perf_counter() - started, 2)
        run.records.extend(records)
    run.records.extend({"type": "error", "file": str(e.path), "error": e.problem} for e in run.problems)
    write_text_atomic(out / RESULTS, "".join(json.dumps(r) + "\n" for r in run.records))
    return run


def _prefetch(module: str) -> None:
    """Import ``module`` in a background thread (once; later calls find it imported): the
    network's forward pass releases the GIL, so the import (0.16 s for scipy.ndimage here)
    costs little wall time. A later import in the main thread waits for this one (Python's
    per-module import lock)."""
    if module in sys.modules:
        return
    threading.Thread(target=importlib.import_module, args=(module,), daemon=True).start()


def check_output_folder(out: Path, overwrite: bool) -> None:
    """Check ``--out`` before any slow work.

    Raises:
        InputError: ``out`` is a file, or holds ``results.jsonl`` and ``overwrite`` is false.
    """
    require_folder(out)
    if (out / RESULTS).exists() and not overwrite:
        raise InputError(out / RESULTS, "already exists; pass --overwrite to replace earlier results")

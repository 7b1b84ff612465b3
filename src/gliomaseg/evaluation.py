"""``gliomaseg evaluate``: one loop over labelled cases of any dataset type, metrics by the
cases' label convention.

Binary masks (``kaggle3m``, ``image_folder``): per case (the headline, per-patient Dice where
slices form patients) the predicted and true slices are stacked in slice order into two 3D
volumes and each metric is computed once on them; per slice, every slice on its own (a slice
where both truth and prediction are empty counts as Dice 1, see :mod:`gliomaseg.metrics`),
summarised also over the slices whose truth shows tumor; global, all voxels pooled. HD95 in
pixels (slice images carry no spacing).

BraTS regions: per case and region (WT, TC, ET), Dice, HD95 in mm, sensitivity, specificity and
volumes, as the challenge reports them (:func:`gliomaseg.metrics.brats_region_metrics`), and
the BraTS 2023 lesion-wise Dice and HD95 (:func:`gliomaseg.metrics.lesion_wise_metrics`).

Files: ``per_slice.csv`` (binary), ``per_<patient|case>.csv`` (one row per case, unless cases
are single slices), ``summary.json``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import require_folder, write_text_atomic
from .data.base import Case, CaseRef, DatasetType
from .data.labels import BinaryLabels
from .distributed import Ranks
from .errors import InputError
from .inference.predictor import Predictor
from .metrics import (METRICS, brats_region_metrics, confusion_counts, lesion_wise_metrics, metrics_from_counts,
                      segmentation_metrics, summarize)

EMPTY_SLICE_RULE = "a slice with empty truth and empty prediction counts as Dice 1, IoU 1, HD95 0"
EMPTY_REGION_RULE = "both empty: Dice 1, HD95 0; one empty: Dice 0, HD95 373.13 mm"
LESION_RULE = ("lesion-wise (BraTS 2023, glioma): 26-connected lesions, ground truth grown 3 voxels to group "
               "fragments, lesions of at most 50 mm^3 left out, missed lesions and false-positive components "
               "Dice 0 and HD95 374 mm")


@dataclass
class Evaluation:
    """Per-case and per-slice rows of one evaluation, the pooled counts, and skipped inputs.

    Args:
        dataset: the type of the evaluated cases (its ``case_noun`` names the rows).
    """

    dataset: DatasetType
    per_case: list[dict] = field(default_factory=list)
    per_slice: list[dict] = field(default_factory=list)
    problems: list[InputError] = field(default_factory=list)
    pooled: np.ndarray = field(default_factory=lambda: np.zeros(4))  # TP, FP, FN, TN of binary masks

    @property
    def noun(self) -> str:
        return self.dataset.case_noun

    @property
    def binary(self) -> bool:
        return isinstance(self.dataset.labels, BinaryLabels)

    def add(self, case: Case, predicted: np.ndarray) -> None:
        """Score one case's predicted ``(*spatial)`` label map against its own."""
        if not self.binary:
            truth, pred = case.labels.to_regions(case.label), case.labels.to_regions(predicted)
            row = {self.noun: case.id}
            for index, region in enumerate(case.labels.regions):
                metrics = {**brats_region_metrics(pred[index], truth[index], case.spacing),
                           **lesion_wise_metrics(pred[index], truth[index], case.spacing)}
                row.update({f"{region}_{name}": value for name, value in metrics.items()})
            self.per_case.append(row)
            return
        truth, pred = np.moveaxis(case.label > 0, -1, 0), np.moveaxis(predicted > 0, -1, 0)  # (S, H, W)
        if self.noun != "slice":
            self.per_case.append({self.noun: case.id, "n_slices": len(truth), "true_volume_voxels": int(truth.sum()),
                                  "pred_volume_voxels": int(pred.sum()), **segmentation_metrics(pred, truth)})
        for index, (p, t, path) in enumerate(zip(pred, truth, case.sources)):
            where = {"slice": case.id} if self.noun == "slice" else {self.noun: case.id, "slice": index + 1}
            self.per_slice.append({**where, "file": path.name, "true_area_px": int(t.sum()), "pred_area_px": int(p.sum()),
                                   **segmentation_metrics(p, t)})
        self.pooled += confusion_counts(pred, truth)

    def shard(self) -> tuple[list[dict], list[dict], list[tuple[str, str]], np.ndarray]:
        """This evaluation's rows, skipped inputs (path, problem) and pooled counts, picklable,
        to be merged with other processes' by :meth:`merge`."""
        return self.per_case, self.per_slice, [(str(p.path), p.problem) for p in self.problems], self.pooled

    def merge(self, shards: list[tuple[list[dict], list[dict], list[tuple[str, str]], np.ndarray]], order: list[str]) -> None:
        """Add the :meth:`shard` of evaluations of disjoint cases (several processes), rows in
        the ``order`` of case ids (as one process would have written them), skipped inputs and
        pooled counts summed."""
        position = {cid: index for index, cid in enumerate(order)}
        for per_case, per_slice, problems, pooled in shards:
            self.per_case += per_case
            self.per_slice += per_slice
            self.problems += [InputError(path, problem) for path, problem in problems]
            self.pooled += pooled
        self.per_case.sort(key=lambda row: position[row[self.noun]])  # stable: slices stay in order
        self.per_slice.sort(key=lambda row: position[row[self.noun]])

    def summary(self) -> dict:
        """``n_<noun>s``; binary: ``per_<noun>``, ``per_slice``, ``per_slice_tumor`` -> metric ->
        mean, median, ..., ``global`` -> metric; regions: ``per_case`` -> region -> metric ->
        statistics; units, the empty-mask rule and ``skipped``."""
        summary: dict = {"dataset": self.dataset.name, f"n_{self.noun}s": len(self.per_case or self.per_slice)}
        if self.binary:
            tumor_slices = [row for row in self.per_slice if row["true_area_px"] > 0]
            summary["n_slices"] = len(self.per_slice)
            if self.noun != "slice":
                summary[f"per_{self.noun}"] = {m: summarize([row[m] for row in self.per_case]) for m in METRICS}
            summary.update({
                "per_slice": {m: summarize([row[m] for row in self.per_slice]) for m in METRICS},
                "per_slice_tumor": {m: summarize([row[m] for row in tumor_slices]) for m in METRICS},
                "global": metrics_from_counts(*self.pooled),
                "empty_slice_rule": EMPTY_SLICE_RULE,
                "hd95_unit": "pixels",
            })
        else:
            regions = self.dataset.labels.regions
            metrics = [key.split("_", 1)[1] for key in self.per_case[0] if key.startswith(f"{regions[0]}_")] if self.per_case else []
            summary.update({
                f"per_{self.noun}": {region: {m: summarize([row[f"{region}_{m}"] for row in self.per_case]) for m in metrics}
                                     for region in regions},
                "regions": self.dataset.labels.definitions,
                "hd95_unit": "mm",
                "empty_region_rule": EMPTY_REGION_RULE,
                "lesion_rule": LESION_RULE,
            })
        summary["skipped"] = [str(p) for p in self.problems]
        return summary

    def headline(self) -> str:
        """One line: mean and median Dice of the headline level."""
        summary = self.summary()
        if self.binary:
            level = f"per_{self.noun}"
            dice = summary[level]["dice"]
            return (f"{level.replace('_', '-')} Dice: mean {dice['mean']:.4f}, median {dice['median']:.4f} "
                    f"over {dice['n']} {self.noun}s")
        regions = ", ".join(f"{r} {stats['dice']['mean']:.4f}" for r, stats in summary[f"per_{self.noun}"].items())
        return f"per-{self.noun} mean Dice: {regions} over {len(self.per_case)} {self.noun}s"

    def table(self) -> tuple[str, list[str], list[list[float | str]]]:
        """The summary as a table for :func:`gliomaseg.report.print_table`: title, column
        names, rows of (metric, values...)."""
        summary = self.summary()
        if self.binary:
            levels = ([f"per_{self.noun}"] if self.noun != "slice" else []) + ["per_slice"]
            columns = [f"{level.split('_', 1)[1]} {stat}" for level in levels for stat in ("mean", "median")] + ["global"]
            rows = [[metric, *(summary[level][metric][stat] for level in levels for stat in ("mean", "median")),
                     summary["global"].get(metric, "-")] for metric in METRICS]
            title = f"{summary['n_slices']} slices" if self.noun == "slice" else f"{summary[f'n_{self.noun}s']} {self.noun}s, {summary['n_slices']} slices"
            return title, columns, rows
        per_region = summary[f"per_{self.noun}"]
        metrics = list(next(iter(per_region.values()), {}))
        rows = [[metric, *(f"{stats[metric]['mean']:.4f} ({stats[metric]['median']:.4f})" for stats in per_region.values())]
                for metric in metrics]
        return f"{len(self.per_case)} {self.noun}s, per-{self.noun} mean (median)", list(per_region), rows


def evaluate(predictor: Predictor, dataset: DatasetType, refs: list[CaseRef], evaluation: Evaluation | None = None,
             ranks: Ranks | None = None) -> Evaluation:
    """Predict and score each labelled case; a case that cannot be read or does not fit the
    model is recorded in ``evaluation.problems`` and skipped.

    Args:
        refs: cases found by ``dataset.find(..., require_labels=True)``.
        ranks: under several processes (``torchrun``, process group joined), rank ``r`` of
            ``N`` scores ``refs[r::N]`` and every rank gets all rows, merged in ``refs`` order:
            the same evaluation as one process.
    """
    from rich.progress import track

    evaluation = evaluation or Evaluation(dataset)
    ranks = ranks or Ranks()
    own = Evaluation(dataset) if ranks.distributed else evaluation
    for ref in track(refs[ranks.rank::ranks.world], description="evaluating", transient=True, disable=not ranks.main):
        try:
            case = dataset.load(ref, predictor.in_channels)
            own.add(case, predictor.predict(case).label)
        except InputError as exc:
            own.problems.append(exc)
    if ranks.distributed:
        evaluation.merge(ranks.gather(own.shard()), [ref.id for ref in refs])
    return evaluation


def select(dataset: DatasetType, data: Path, split: dict[str, list[str]] | None, subset: str | None,
           problems: list[InputError]) -> list[CaseRef]:
    """Labelled cases of ``data``, restricted to ``split[subset]`` when given; incomplete cases
    go to ``problems``.

    Raises:
        InputError: a case of the subset is missing, or the subset is unknown or empty.
    """
    refs = dataset.find(data, require_labels=True, problems=problems)
    if split is None:
        return refs
    if subset not in split:
        raise InputError(data, f"unknown subset {subset!r}; the split has {', '.join(split)}")
    wanted = set(split[subset])
    chosen = [ref for ref in refs if ref.id in wanted]
    missing = wanted - {ref.id for ref in chosen} - {e.path.name for e in problems} - {e.path.parent.name for e in problems}
    if missing:
        raise InputError(data, f"{len(missing)} {dataset.case_noun}(s) of subset {subset} are missing, e.g. {sorted(missing)[0]}")
    if not chosen:
        raise InputError(data, f"no readable {dataset.case_noun} of subset {subset}")
    return chosen


OUTPUTS = ("per_slice.csv", "per_patient.csv", "per_case.csv", "summary.json")


def check_output_folder(out: Path, overwrite: bool, names: tuple[str, ...] = OUTPUTS, what: str = "an evaluation") -> None:
    """Refuse to replace an earlier evaluation (or other outputs ``names``, described as
    ``what``) in ``out`` unless ``overwrite``; refuse an ``out`` that is a file.

    Raises:
        InputError: ``out`` is a file, or already holds one of the files.
    """
    require_folder(out)
    if not overwrite and any((out / name).exists() for name in names):
        raise InputError(out, f"already holds {what}; pass --overwrite to replace it")


def write_evaluation(evaluation: Evaluation, out: Path, overwrite: bool = False, extra: dict | None = None) -> dict:
    """Write the rows as CSV and ``summary.json`` (with the ``extra`` entries, e.g. per-fold
    figures) into ``out``, each file atomically.

    Raises:
        InputError: ``out`` already holds an evaluation and ``overwrite`` is false.
    """
    summary = {**evaluation.summary(), **(extra or {})}
    files = {}
    if evaluation.per_slice:
        files["per_slice.csv"] = csv_text(evaluation.per_slice)
    if evaluation.per_case:
        files[f"per_{evaluation.noun}.csv"] = csv_text(evaluation.per_case)
    files["summary.json"] = json.dumps(summary, indent=2) + "\n"
    check_output_folder(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        write_text_atomic(out / name, text)
    return summary


def csv_text(rows: list[dict]) -> str:
    """Rows of one shape as CSV text, the columns in the first row's key order."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()

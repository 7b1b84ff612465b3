"""Build a model card's per-patient table from an out-of-fold evaluation: one row per patient
(case) with its fold, true tumor volume (voxels) and Dice, a baseline row's Dice beside it, sorted
by true volume (small lesions first), plus the per-epoch training log of every fold in one CSV.

    python benchmarks/cv_table.py runs/cv_lgg_e48/per_patient.csv \\
        --baseline docs/cv/lgg_25d_sampling_per_patient.csv:dice_tumor_sampling_case:dice_row13 \\
        --name dice_e48 --out docs/cv/lgg_e48_per_patient.csv \\
        --runs runs/cv_lgg_e48 --curves docs/cv/training_lgg_25d_e48_folds.csv

The evaluation is the ``per_patient.csv`` of ``gliomaseg cv`` or ``gliomaseg evaluate --model
RUN_DIR`` (out of fold: it has a ``fold`` column); folds trained into separate ``cv`` folders are
pooled by naming each folder's file (a patient in two of them is an error).
``--baseline FILE:COLUMN:NAME`` takes COLUMN of FILE as NAME; a patient missing from the
baseline, or held out in another fold there, is an error, since the two rows would not be
paired. ``--runs`` reads ``fold*/metrics.csv`` of one or more ``cv`` run folders. The
per-patient table, its fold means and its small-lesion mean (true volume under ``--small``
voxels) are printed; ``benchmarks/paired.py`` gives the paired statistics. For a binary
evaluation (a ``recall`` column: LGG, image folders) the error profile is printed as well:
mean recall and precision over patients, the mean ratio of predicted to true volume, and,
from the ``per_slice.csv`` beside each evaluation, the tumor-free slices with a false positive.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file; exits with a one-line error if it is missing or empty."""
    if not path.is_file():
        raise SystemExit(f"error: {path}: no such file")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise SystemExit(f"error: {path}: no rows")
    return rows


def write_rows(path: Path, rows: list[dict[str, object]]) -> None:
    """Write ``rows`` (dicts of one key order) as a CSV file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def id_key(rows: list[dict[str, str]]) -> str:
    """The id column of an evaluation's rows: ``patient`` (slice datasets) or ``case`` (BraTS)."""
    return "patient" if "patient" in rows[0] else "case"


def join(evaluation: list[dict[str, str]], baseline: list[dict[str, str]], column: str, baseline_name: str,
         name: str, source: str) -> list[dict[str, object]]:
    """Rows ``patient, fold, true_volume_voxels, BASELINE_NAME, NAME`` sorted by true volume:
    the baseline's ``column`` as it is written there, the evaluation's ``dice`` to 4 decimals.

    ``evaluation`` rows need ``fold``, ``true_volume_voxels`` and ``dice``; ``baseline`` rows need
    the id column and ``column`` (and ``fold``, when present, must agree). Raises SystemExit naming
    ``source`` (the baseline file) when a patient cannot be paired.
    """
    key = id_key(evaluation)
    if "fold" not in evaluation[0]:
        raise SystemExit("error: the evaluation has no fold column (use the out-of-fold per_patient.csv)")
    if column not in baseline[0]:
        raise SystemExit(f"error: {source}: no column {column!r}")
    base = {row[key]: row for row in baseline}
    table = []
    for row in evaluation:
        other = base.get(row[key])
        if other is None or other.get("fold", row["fold"]) != row["fold"]:
            raise SystemExit(f"error: {source}: {row[key]} is missing or held out in another fold")
        table.append({key: row[key], "fold": int(row["fold"]), "true_volume_voxels": int(row["true_volume_voxels"]),
                      baseline_name: other[column], name: f"{float(row['dice']):.4f}"})
    return sorted(table, key=lambda r: r["true_volume_voxels"])


def pool(paths: list[Path]) -> list[dict[str, str]]:
    """The rows of several evaluations of disjoint folds, in order; exits with a one-line error
    naming the file where a patient (case) appears a second time."""
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    for path in paths:
        part = read_rows(path)
        key = id_key(part)
        for row in part:
            if row[key] in seen:
                raise SystemExit(f"error: {path}: {row[key]} is in an earlier evaluation too")
            seen.add(row[key])
        rows += part
    return rows


def error_profile(paths: list[Path], rows: list[dict[str, str]]) -> str:
    """One line on how an evaluation errs: under- or over-segmentation and false alarms.

    ``rows`` are the pooled ``per_patient.csv`` rows of ``paths`` (columns ``recall``,
    ``precision``, ``pred_volume_voxels``, ``true_volume_voxels``; patients without tumor are
    left out): the means over patients of recall (sensitivity), precision (a ``nan``, nothing
    predicted, is left out and counted) and predicted / true volume (1.0 is unbiased; below 1
    under-segments). Then, from the ``per_slice.csv`` beside each of ``paths`` (``true_area_px``,
    ``pred_area_px``; after post-processing, as scored), the slices without tumor that have a
    predicted pixel, and those pixels; left out when a ``per_slice.csv`` is missing.
    """
    rows = [r for r in rows if int(r["true_volume_voxels"]) > 0]
    if not rows:
        return "no patient with tumor"
    recall = statistics.mean(float(r["recall"]) for r in rows)
    precisions = [float(r["precision"]) for r in rows if r["precision"] != "nan"]
    ratio = statistics.mean(int(r["pred_volume_voxels"]) / int(r["true_volume_voxels"]) for r in rows)
    precision = f"{statistics.mean(precisions):.3f}" if precisions else "undefined"
    line = f"recall {recall:.3f}, precision {precision}"
    if len(precisions) < len(rows):
        line += f" ({len(rows) - len(precisions)} patients with nothing predicted left out)"
    line += f", predicted / true volume {ratio:.3f}"
    slice_files = [path.parent / "per_slice.csv" for path in paths]
    if all(path.is_file() for path in slice_files):
        free = [r for path in slice_files for r in read_rows(path) if int(r["true_area_px"]) == 0]
        alarms = [int(r["pred_area_px"]) for r in free if int(r["pred_area_px"]) > 0]
        line += f"; tumor-free slices with a false positive {len(alarms)} of {len(free)} ({sum(alarms)} pixels)"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("evaluation", type=Path, nargs="+",
                        help="out-of-fold per_patient.csv (with a fold column); several are pooled")
    parser.add_argument("--baseline", required=True, help="FILE:COLUMN:NAME, the baseline Dice column and its name")
    parser.add_argument("--name", required=True, help="column name for this evaluation's Dice")
    parser.add_argument("--out", type=Path, required=True, help="per-patient table to write")
    parser.add_argument("--runs", type=Path, nargs="+", help="cv run folder(s) whose fold*/metrics.csv are joined")
    parser.add_argument("--curves", type=Path, help="training-log CSV to write (with --runs)")
    parser.add_argument("--small", type=int, default=6000, help="small-lesion bound, true volume in voxels")
    args = parser.parse_args()
    if (args.runs is None) != (args.curves is None):
        parser.error("--runs and --curves go together: the fold logs to read and the CSV to write")
    source, column, baseline_name = (args.baseline.rsplit(":", 2) + ["", ""])[:3]
    if not (column and baseline_name):
        raise SystemExit(f"error: --baseline {args.baseline!r}: expected FILE:COLUMN:NAME")
    evaluation = pool(args.evaluation)
    table = join(evaluation, read_rows(Path(source)), column, baseline_name, args.name, source)
    write_rows(args.out, table)
    if args.runs is not None:
        folds = sorted((path for run in args.runs for path in run.glob("fold*/metrics.csv")),
                       key=lambda p: int(p.parent.name[4:]))
        if not folds:
            raise SystemExit(f"error: {' '.join(map(str, args.runs))}: no fold*/metrics.csv")
        write_rows(args.curves, [{"fold": path.parent.name[4:], **row} for path in folds for row in read_rows(path)])

    def summary(rows: list[dict[str, object]], column: str) -> str:
        values = [float(r[column]) for r in rows]
        return f"{statistics.mean(values):.3f} / {statistics.median(values):.3f}"

    print(f"{len(table)} patients -> {args.out}; mean / median: {baseline_name} {summary(table, baseline_name)}, "
          f"{args.name} {summary(table, args.name)}")
    for fold in sorted({r["fold"] for r in table}):
        rows = [r for r in table if r["fold"] == fold]
        print(f"  fold {fold} ({len(rows)}): {baseline_name} {summary(rows, baseline_name)}, {args.name} {summary(rows, args.name)}")
    small = [r for r in table if r["true_volume_voxels"] < args.small]
    if small:
        print(f"  under {args.small} voxels ({len(small)}): {baseline_name} {summary(small, baseline_name)}, "
              f"{args.name} {summary(small, args.name)}")
    if "recall" in evaluation[0]:
        print(f"  {args.name}: {error_profile(args.evaluation, evaluation)}")


if __name__ == "__main__":
    main()

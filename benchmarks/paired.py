"""Paired comparison of two evaluations of the same patients (cases), as the model card's rows
report them: per Dice column, both means, the mean and median of the paired difference (B - A),
how many patients B scores better or worse by more than ``--margin``, the two-sided Wilcoxon
signed-rank p (scipy; zero differences dropped, as Wilcoxon proposed), and a bootstrap 95%
interval of the mean difference (10,000 resamples of patients, seed 0).

    python benchmarks/paired.py docs/cv/brats_per_case.csv runs/cv_brats/per_case.csv
    python benchmarks/paired.py runs/cv_lgg_25d/per_patient.csv runs/cv_lgg_25d_case/per_patient.csv --columns dice
    python benchmarks/paired.py docs/cv/lgg_flip_height_per_patient.csv docs/cv/lgg_flip_height_per_patient.csv --columns dice_row13:dice_flip_height
    python benchmarks/paired.py docs/cv/brats_control_per_case.csv,docs/cv/brats_seed1_per_case.csv,docs/cv/brats_seed2_per_case.csv \
        docs/cv/brats_weak_aug_seed0_per_case.csv,docs/cv/brats_weak_aug_seed1_per_case.csv,docs/cv/brats_weak_aug_seed2_per_case.csv

A and B are ``per_patient.csv`` / ``per_case.csv`` files of ``gliomaseg evaluate`` or ``cv``
(out of fold). Only patients in both files are compared; the count is printed. A column given as
``A_NAME:B_NAME`` compares column A_NAME of A with column B_NAME of B (two columns of one file, as
the model card's per-patient tables keep them). A or B given as comma-separated files (the runs of
one recipe with several seeds) is their mean per patient, over the patients in all of them, so
that recipes are compared averaged over seeds; the bootstrap still resamples patients only.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon


def read(path: Path) -> tuple[str, dict[str, dict[str, str]]]:
    """The id column (``patient`` or ``case``) and the rows of a per-patient CSV by id."""
    try:
        with path.open() as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise SystemExit(f"error: {path}: cannot read ({error.strerror})") from None
    key = next((name for name in ("patient", "case", "slice") if rows and name in rows[0]), None)
    if key is None:
        raise SystemExit(f"error: {path}: no patient, case or slice column")
    return key, {row[key]: row for row in rows}


def read_mean(paths: list[Path]) -> tuple[str, dict[str, dict[str, str]]]:
    """:func:`read` of one file, or of several runs of one recipe averaged per id: a column that
    is a number in every run becomes the mean (as text), others keep the first run's value; ids
    missing from any run are dropped."""
    (key, first), *others = [read(path) for path in paths]
    for path, (other_key, _) in zip(paths[1:], others):
        if other_key != key:
            raise SystemExit(f"error: {path}: keyed by {other_key}, {paths[0]} by {key}")
    runs = [first] + [rows for _, rows in others]
    mean = {}
    for pid in (pid for pid in first if all(pid in rows for rows in runs)):
        values = [[rows[pid].get(name) for rows in runs] for name in first[pid]]
        mean[pid] = {name: repr(sum(map(float, column)) / len(runs)) if all(map(_number, column)) else column[0]
                     for name, column in zip(first[pid], values)}
    return key, mean


def _number(text: str | None) -> bool:
    try:
        float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def compare(a: np.ndarray, b: np.ndarray, margin: float) -> dict[str, float]:
    """Paired statistics of ``b - a`` (1D float arrays of one patient order)."""
    difference = b - a
    rng = np.random.default_rng(0)
    resampled = difference[rng.integers(0, len(difference), (10_000, len(difference)))].mean(axis=1)
    nonzero = difference[difference != 0]
    return {"mean_a": a.mean(), "mean_b": b.mean(), "mean_diff": difference.mean(), "median_diff": float(np.median(difference)),
            "better": int((difference > margin).sum()), "worse": int((difference < -margin).sum()),
            "p": float(wilcoxon(nonzero).pvalue) if len(nonzero) else 1.0,
            "low": float(np.percentile(resampled, 2.5)), "high": float(np.percentile(resampled, 97.5))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="baseline per-patient CSV (or several, comma-separated: averaged per patient)")
    parser.add_argument("b", help="changed per-patient CSV (or several, comma-separated: averaged per patient)")
    parser.add_argument("--columns", default=None, help="comma-separated columns, each NAME or A_NAME:B_NAME "
                                                               "(default: every *dice column but lesion-wise)")
    parser.add_argument("--margin", type=float, default=0.01, help="a patient (case) counts as better or worse beyond this difference")
    args = parser.parse_args()
    paths_a, paths_b = ([Path(name) for name in arm.split(",")] for arm in (args.a, args.b))
    (key, rows_a), (_, rows_b) = read_mean(paths_a), read_mean(paths_b)
    ids = [pid for pid in rows_a if pid in rows_b]
    first = rows_a[ids[0]] if ids else {}
    columns = args.columns.split(",") if args.columns else [c for c in first if c.endswith("dice") and "lesion" not in c]
    print(f"{len(ids)} {key}s in both ({len(rows_a)} in A, {len(rows_b)} in B); B - A, margin {args.margin}")
    for column in columns:
        column_a, _, column_b = column.partition(":")
        column_b = column_b or column_a
        for path, rows, name in ((args.a, rows_a, column_a), (args.b, rows_b, column_b)):
            if ids and name not in rows[ids[0]]:
                raise SystemExit(f"error: {path}: no column {name!r}")
        a = np.array([float(rows_a[pid][column_a]) for pid in ids])
        b = np.array([float(rows_b[pid][column_b]) for pid in ids])
        s = compare(a, b, args.margin)
        print(f"  {column}: A {s['mean_a']:.3f}, B {s['mean_b']:.3f}, mean difference {s['mean_diff']:+.3f} "
              f"(95% bootstrap {s['low']:+.3f} to {s['high']:+.3f}), median {s['median_diff']:+.3f}, "
              f"{s['better']} better / {s['worse']} worse, Wilcoxon p = {s['p']:.2f}")


if __name__ == "__main__":
    main()

"""Choose among inference options by cross-validation without scoring a fold on its own choice:
the nested estimate of nnU-Net's post-processing choice, for any option `gliomaseg thresholds`
does not cover (post-processing, TTA).

Each candidate is an out-of-fold evaluation of the same fold models with one option
(``gliomaseg evaluate --model CV_FOLDER --split FOLDS ...``: its ``per_patient.csv`` has
``patient``, ``fold`` and ``dice``). Every fold is scored with the candidate whose mean
per-patient Dice is highest over the other folds' patients (ties: the first candidate named);
the choice over all folds is the candidate with the highest mean. Prints each candidate's mean
and median, each fold's choice and the nested mean and median; writes one row per patient with
its fold, each candidate's Dice (``dice_<name>``, ``-`` and ``:`` as ``_``) and ``dice_nested``,
for ``benchmarks/paired.py``.

    python benchmarks/nested_choice.py largest-3d=runs/oof_lgg_mix_128m24_192/per_patient.csv \\
        none=runs/oof_lgg_mix_128m24_192_pp_none/per_patient.csv \\
        min-size:1000=runs/oof_lgg_mix_128m24_192_pp_ms1000/per_patient.csv \\
        --out docs/cv/lgg_mix_128m24_192_postprocess_per_patient.csv
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from cv_table import read_rows, write_rows


def read_candidate(spec: str) -> tuple[str, dict[str, tuple[int, float]]]:
    """``NAME=FILE`` -> (NAME, {patient: (fold, Dice)}); exits with a one-line error on a bad spec."""
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise SystemExit(f"error: {spec}: expected NAME=per_patient.csv")
    rows = read_rows(Path(path))
    if not {"patient", "fold", "dice"} <= rows[0].keys():
        raise SystemExit(f"error: {path}: needs patient, fold and dice columns (an out-of-fold evaluation)")
    return name, {row["patient"]: (int(row["fold"]), float(row["dice"])) for row in rows}


def nested_choice(candidates: dict[str, dict[str, tuple[int, float]]]) -> tuple[dict[int, str], dict[str, float]]:
    """Each fold's choice (the candidate best on the other folds) and each patient's nested Dice.

    Raises:
        SystemExit: the candidates differ in their patients or folds.
    """
    first = next(iter(candidates.values()))
    folds = {patient: fold for patient, (fold, _) in first.items()}
    for name, scores in candidates.items():
        if {patient: fold for patient, (fold, _) in scores.items()} != folds:
            raise SystemExit(f"error: {name}: other patients or folds than the first candidate")
    choices, nested = {}, {}
    for fold in sorted(set(folds.values())):
        others = [patient for patient, k in folds.items() if k != fold]
        choices[fold] = max(candidates, key=lambda c: statistics.fmean(candidates[c][p][1] for p in others))
        for patient, k in folds.items():
            if k == fold:
                nested[patient] = candidates[choices[fold]][patient][1]
    return choices, nested


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidates", nargs="+", help="NAME=per_patient.csv of an out-of-fold evaluation")
    parser.add_argument("--out", type=Path, required=True, help="per-patient CSV to write")
    args = parser.parse_args()
    candidates = dict(read_candidate(spec) for spec in args.candidates)
    if len(candidates) < 2:
        parser.error("name at least two candidates")
    means = {}
    for name, scores in candidates.items():
        dice = [d for _, d in scores.values()]
        means[name] = statistics.fmean(dice)
        print(f"{name:>16}: mean {means[name]:.4f}, median {statistics.median(dice):.4f} ({len(dice)} patients)")
    choices, nested = nested_choice(candidates)
    for fold, name in choices.items():
        print(f"fold {fold} scored with {name} (best on the other folds)")
    overall = max(means, key=means.get)
    print(f"chosen on all folds: {overall}; nested mean {statistics.fmean(nested.values()):.4f}, "
          f"median {statistics.median(nested.values()):.4f}")
    columns = {name: "dice_" + name.replace("-", "_").replace(":", "_") for name in candidates}
    first = next(iter(candidates.values()))
    write_rows(args.out, [{"patient": patient, "fold": fold,
                           **{columns[c]: f"{candidates[c][patient][1]:.4f}" for c in candidates},
                           "dice_nested": f"{nested[patient]:.4f}"} for patient, (fold, _) in sorted(first.items())])


if __name__ == "__main__":
    main()

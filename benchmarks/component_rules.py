"""Which 3D component to keep, scored out of fold: the largest (``largest-3d``) against the one
with the highest mean probability (model card, LGG row 47).

For each recipe, every fold network (``PREFIX<k>/fold<k>/last.safetensors``, the layout of
``gliomaseg cv --fold k --out PREFIX<k>``, a binary model such as LGG's) predicts the patients
of its held-out fold of ``--split``; the probabilities thresholded at the model's threshold are split into 3D
components (26-connectivity, as ``largest-3d``); the component each rule keeps is holes-filled
per slice, as ``largest-3d`` does, and scored against the truth (Dice over the patient's
volume, 1 when both are empty). The ``largest`` column reproduces ``gliomaseg evaluate``'s
per-patient Dice with ``largest-3d``. Prints, per recipe, both means and medians and the paired
difference; writes one row per patient and recipe for ``benchmarks/paired.py``.

    python benchmarks/component_rules.py cache/lgg/kaggle_3m --split splits/lgg_folds.json \\
        psdice=runs/cv_lgg_psdice_128e_f lr2=runs/cv_lgg_lr2_128e_f --out docs/cv/lgg_component_rules_per_patient.csv
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from gliomaseg.data.base import resolve_dataset
from gliomaseg.inference.postprocess import best_component, components, fill_holes_per_slice
from gliomaseg.inference.predictor import Predictor
from gliomaseg.metrics import overlap_metrics
from gliomaseg.models.weights import load_model
from cv_table import write_rows

RULES = ("largest", "confident")


def kept(probabilities: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Each rule's kept component of ``(H, W, S)`` probabilities, holes filled per slice."""
    from scipy import ndimage

    mask = probabilities >= threshold
    labels, sizes = components(mask)  # labelled once, as largest_component does
    means = ndimage.mean(probabilities, labels, np.arange(1, len(sizes) + 1))
    choice = {"largest": best_component(mask, labels, sizes), "confident": best_component(mask, labels, means)}
    return {rule: np.moveaxis(fill_holes_per_slice(np.moveaxis(m, -1, 0)), 0, -1) for rule, m in choice.items()}


def score_recipe(data: Path, folds: list[list[str]], prefix: str) -> list[dict]:
    """One row per held-out patient of every fold: its fold and each rule's Dice."""
    dataset = resolve_dataset(data, "auto")
    refs = {ref.id: ref for ref in dataset.find(data)}
    rows = []
    for fold, patients in enumerate(folds):
        model, config = load_model(f"{prefix}{fold}/fold{fold}/last.safetensors")
        predictor = Predictor(model, config)
        channels = config.model.in_channels // (2 * config.data.context_slices + 1)
        for patient in patients:
            case = dataset.load(refs[patient], channels)
            truth = case.label > 0
            masks = kept(predictor.probabilities(case.images)[0], float(config.inference.threshold))
            rows.append({"patient": patient, "fold": fold,
                         **{f"dice_{rule}": overlap_metrics(m, truth)["dice"] for rule, m in masks.items()}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("recipes", nargs="+", help="NAME=PREFIX: fold k's network is PREFIX<k>/fold<k>/last.safetensors")
    parser.add_argument("--split", type=Path, required=True, help="split file of folds")
    parser.add_argument("--out", type=Path, required=True, help="per-patient CSV")
    args = parser.parse_args()
    folds = json.loads(args.split.read_text())["folds"]
    table: dict[str, dict] = {}
    for spec in args.recipes:
        name, _, prefix = spec.partition("=")
        rows = score_recipe(args.data, folds, prefix)
        for row in rows:
            entry = table.setdefault(row["patient"], {"patient": row["patient"], "fold": row["fold"]})
            entry.update({f"{key}_{name}": value for key, value in row.items() if key.startswith("dice_")})
        largest, confident = ([row[f"dice_{rule}"] for row in rows] for rule in RULES)
        differences = [c - a for a, c in zip(largest, confident)]
        print(f"{name}: {len(rows)} patients; largest {statistics.mean(largest):.4f} / {statistics.median(largest):.4f}, "
              f"confident {statistics.mean(confident):.4f} / {statistics.median(confident):.4f}; difference "
              f"{statistics.mean(differences):+.4f}, {sum(d > 0.01 for d in differences)} better / "
              f"{sum(d < -0.01 for d in differences)} worse by more than 0.01", flush=True)
    write_rows(args.out, list(table.values()))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()

"""Test-time augmentation and post-processing of the bundled model, measured per patient.

For each subset of the split and each combination of ``--tta`` and ``--postprocess``, prints
mean and median per-patient Dice, mean per-patient HD95 (pixels) and the network time
(preprocessing + forward passes, all patients). The shipped defaults are the best mean
per-patient Dice on the validation subset; the test subset is reported, not used to choose.

    python benchmarks/inference_options.py --data cache/lgg/kaggle_3m [--subsets val test]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from gliomaseg.data.kaggle3m import find_patients, load_patient
from gliomaseg.inference.postprocess import postprocess
from gliomaseg.inference.predictor import TTA_TRANSFORMS, Predictor
from gliomaseg.metrics import hd95, overlap_metrics
from gliomaseg.runtime import describe_machine

REPO = Path(__file__).resolve().parents[1]
POSTPROCESSING = ("none", "largest-3d", "min-size:500")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=None, help="run folder or weights; default: bundled")
    parser.add_argument("--subsets", nargs="+", default=["val", "test"])
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    split = json.loads((REPO / "splits" / "lgg.json").read_text())
    by_id = {p.id: p for p in find_patients(args.data)}
    predictor = Predictor.from_path(args.model)
    print(f"{'subset':6s} {'tta':10s} {'postprocess':13s} {'Dice mean':>9s} {'median':>7s} {'HD95 mean':>9s} {'seconds':>8s}")
    for subset in args.subsets:
        patients = [load_patient(by_id[pid]) for pid in split[subset]]
        for tta in TTA_TRANSFORMS:
            predictor.config.inference.tta = tta
            started = time.perf_counter()
            probabilities = [predictor.probabilities(p.images) for p in patients]
            seconds = time.perf_counter() - started
            for method in POSTPROCESSING:
                masks = [postprocess(pb >= predictor.config.inference.threshold, method) for pb in probabilities]
                dice = [overlap_metrics(m, p.masks)["dice"] for m, p in zip(masks, patients)]
                distance = [hd95(m, p.masks) for m, p in zip(masks, patients)]
                print(f"{subset:6s} {tta:10s} {method:13s} {np.mean(dice):9.4f} {np.median(dice):7.4f} "
                      f"{np.nanmean(distance):9.2f} {seconds:8.1f}", flush=True)


if __name__ == "__main__":
    main()

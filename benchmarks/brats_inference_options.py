"""Test-time augmentation, post-processing and threshold of a BraTS model, per case and region.

For each subset of the BraTS split and each ``--tta`` x ``--postprocess`` x threshold combination,
prints the mean Dice and HD95 (mm) of WT, TC and ET and the prediction time. The shipped defaults are chosen
on the validation subset; the test subset is reported, not used to choose.

    python benchmarks/brats_inference_options.py --data cache/brats/brats [--model runs/X] [--subsets val test]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from gliomaseg.data.brats import REGIONS, find_cases, label_to_regions, load_case
from gliomaseg.inference.volumetric import VOLUME_TTA, VolumePredictor, threshold_regions
from gliomaseg.metrics import brats_region_metrics
from gliomaseg.runtime import describe_machine

REPO = Path(__file__).resolve().parents[1]
POSTPROCESSING = ("none", "largest-3d", "min-size:1000")
THRESHOLDS = (0.5, 0.4, 0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=None, help="run folder or weights; default: bundled BraTS model")
    parser.add_argument("--subsets", nargs="+", default=["val", "test"])
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    split = json.loads((REPO / "splits" / "brats.json").read_text())
    by_id = {case.id: case for case in find_cases(args.data)}
    predictor = VolumePredictor.from_path(args.model)
    header = " ".join(f"{r + ' Dice':>8s} {r + ' HD95':>8s}" for r in REGIONS)
    print(f"{'subset':6s} {'tta':5s} {'postprocess':13s} {'thr':>4s} {header} {'seconds':>8s}")
    for subset in args.subsets:
        cases = [(case, load_case(case)) for case in (by_id[cid] for cid in split[subset])]
        for tta in VOLUME_TTA:
            predictor.config.inference.tta = tta
            started = time.perf_counter()
            probabilities = [predictor.probabilities(volume.images) for _, volume in cases]
            seconds = time.perf_counter() - started
            for method, threshold in ((m, t) for m in POSTPROCESSING for t in THRESHOLDS):
                scores = {region: {"dice": [], "hd95": []} for region in REGIONS}
                for (case, volume), probs in zip(cases, probabilities):
                    predicted, _ = threshold_regions(probs, threshold, method, case.enhancing_label)
                    truth = label_to_regions(volume.label, case.enhancing_label)
                    for index, region in enumerate(REGIONS):
                        metrics = brats_region_metrics(predicted[index], truth[index], volume.spacing)
                        scores[region]["dice"].append(metrics["dice"])
                        scores[region]["hd95"].append(metrics["hd95"])
                row = " ".join(f"{np.mean(s['dice']):8.4f} {np.mean(s['hd95']):8.2f}" for s in scores.values())
                print(f"{subset:6s} {tta:5s} {method:13s} {threshold:4.1f} {row} {seconds:8.1f}", flush=True)


if __name__ == "__main__":
    main()

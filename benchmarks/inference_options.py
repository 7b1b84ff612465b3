"""Test-time augmentation, post-processing and threshold of a model, per case and region, for any
dataset type (LGG ``kaggle3m`` patients, BraTS cases, ...).

The dataset type is detected from ``--data``. For each subset of the split and each ``--tta`` x
``--postprocess`` x threshold combination, prints for every region of the dataset's label
convention (``tumor`` for binary masks; WT, TC, ET for BraTS) the mean and median per-case Dice
and the mean per-case HD95 (pixels for slice images, mm for volumes), and the prediction time
(preprocessing + forward passes, all cases of the subset). Metrics are the ones ``gliomaseg
evaluate`` reports per case. The shipped defaults are chosen on the validation subset; the test
subset is reported, not used to choose.

    python benchmarks/inference_options.py --data cache/lgg/kaggle_3m [--split splits/lgg.json] [--subsets val test]
    python benchmarks/inference_options.py --data cache/brats/brats --split splits/brats.json [--model runs/X]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from gliomaseg.config import TTA_CHOICES
from gliomaseg.data import detect_dataset
from gliomaseg.data.base import Case
from gliomaseg.data.labels import BinaryLabels
from gliomaseg.errors import ConfigError
from gliomaseg.inference.postprocess import to_label
from gliomaseg.inference.predictor import Predictor
from gliomaseg.inference.tta import tta_transforms
from gliomaseg.metrics import brats_region_metrics, segmentation_metrics
from gliomaseg.runtime import describe_machine

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SPLITS = {"kaggle3m": REPO / "splits" / "lgg.json", "brats": REPO / "splits" / "brats.json"}
# min-size:N, N in voxels: the values the two datasets were tuned with (1000 voxels is 1 cm^3 of a 1 mm BraTS grid)
POSTPROCESSING = {"kaggle3m": ("none", "largest-3d", "min-size:500"), "brats": ("none", "largest-3d", "min-size:1000")}
THRESHOLDS = (0.5, 0.4, 0.3)


def region_scores(case: Case, label: np.ndarray) -> dict[str, tuple[float, float]]:
    """Region -> (Dice, HD95) of a predicted label map against the case's own, as ``evaluate``
    scores a case: binary masks on the whole stacked volume (HD95 in pixels, NaN when a mask is
    empty), BraTS regions with the challenge's rules (HD95 in mm)."""
    truth, predicted = case.labels.to_regions(case.label), case.labels.to_regions(label)
    scores = {}
    for region, pred, true in zip(case.labels.regions, predicted, truth):
        if isinstance(case.labels, BinaryLabels):
            metrics = segmentation_metrics(pred, true)
        else:
            metrics = brats_region_metrics(pred, true, case.spacing)
        scores[region] = (metrics["dice"], metrics["hd95"])
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="labelled dataset folder (its type is detected)")
    parser.add_argument("--split", type=Path, default=None,
                        help="split file; default: splits/lgg.json for kaggle3m, splits/brats.json for brats")
    parser.add_argument("--model", default=None, help="bundled model name, run folder or weights; default: the bundled model of the dataset type")
    parser.add_argument("--subsets", nargs="+", default=["val", "test"])
    parser.add_argument("--postprocess", nargs="+", default=None, help="methods to try; default: none, largest-3d, min-size:N")
    parser.add_argument("--thresholds", nargs="+", type=float, default=list(THRESHOLDS))
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    dataset = detect_dataset(args.data)
    split_path = args.split or DEFAULT_SPLITS.get(dataset.name)
    if split_path is None:
        parser.error(f"--split is needed for {dataset.name} data")
    split = json.loads(Path(split_path).read_text())
    methods = args.postprocess or POSTPROCESSING.get(dataset.name, ("none", "largest-3d"))
    by_id = {ref.id: ref for ref in dataset.find(args.data)}
    predictor = Predictor.from_path(args.model, dataset.name)
    inference = predictor.config.inference
    modes = []
    for mode in TTA_CHOICES:  # the modes this network takes (flip+rot90 is for slice networks)
        try:
            tta_transforms(mode, inference.mirror_axes, predictor.dims)
            modes.append(mode)
        except ConfigError:
            pass
    regions = dataset.labels.regions
    unit = "mm" if dataset.volumetric else "px"
    print(f"{dataset.name} data, {len(by_id)} {dataset.case_noun}s; model {args.model or 'bundled'}, "
          f"mirror axes {list(inference.mirror_axes)}; HD95 in {unit}")
    header = " ".join(f"{r + ' Dice':>9s} {'median':>7s} {r + ' HD95':>9s}" for r in regions)
    print(f"{'subset':6s} {'tta':10s} {'postprocess':13s} {'thr':>4s} {header} {'seconds':>8s}")
    for subset in args.subsets:
        cases = [dataset.load(by_id[cid], predictor.in_channels) for cid in split[subset]]
        for mode in modes:
            inference.tta = mode
            started = time.perf_counter()
            probabilities = [predictor.probabilities(case.images) for case in cases]
            seconds = time.perf_counter() - started
            for method in methods:
                for threshold in args.thresholds:
                    scores = {region: {"dice": [], "hd95": []} for region in regions}
                    for case, probs in zip(cases, probabilities):
                        for region, (dice, distance) in region_scores(case, to_label(probs, case.labels, threshold, method)).items():
                            scores[region]["dice"].append(dice)
                            scores[region]["hd95"].append(distance)
                    row = " ".join(f"{np.mean(s['dice']):9.4f} {np.median(s['dice']):7.4f} {np.nanmean(s['hd95']):9.2f}"
                                   for s in scores.values())
                    print(f"{subset:6s} {mode:10s} {method:13s} {threshold:4.2f} {row} {seconds:8.1f}", flush=True)


if __name__ == "__main__":
    main()

"""What the LGG model loses when a study has FLAIR only (DICOM and NIfTI studies without pre- or
post-contrast series get FLAIR copies in those channels): per-patient Dice of the bundled LGG
model on the test split of splits/lgg.json with the kaggle_3m slices' three channels, and with
FLAIR copied into all three, in one run.

    python benchmarks/flair_only.py cache/lgg/kaggle_3m
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from gliomaseg.data import get_dataset
from gliomaseg.inference.predictor import Predictor
from gliomaseg.metrics import overlap_metrics


def main() -> None:
    root = Path(sys.argv[1])
    test = set(json.loads((Path(__file__).resolve().parents[1] / "splits" / "lgg.json").read_text())["test"])
    dataset, predictor = get_dataset("kaggle3m"), Predictor.from_path("lgg")
    refs = [ref for ref in dataset.find(root) if ref.id in test]
    three, flair = [], []
    for ref in refs:
        case = dataset.load(ref, 3)
        truth = case.label > 0
        three.append(overlap_metrics(predictor.predict(case).label > 0, truth)["dice"])
        copies = np.repeat(case.images[case.channels.index("FLAIR")][None], 3, axis=0)
        flair.append(overlap_metrics(predictor.predict(replace(case, images=copies)).label > 0, truth)["dice"])
    print(f"{len(refs)} test patients, per-patient Dice: three channels mean {np.mean(three):.4f} (median {np.median(three):.4f}); "
          f"FLAIR copies mean {np.mean(flair):.4f} (median {np.median(flair):.4f}); mean difference {np.mean(np.subtract(flair, three)):+.4f}")


if __name__ == "__main__":
    main()

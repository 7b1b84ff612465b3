"""What a slice model loses when slices come one at a time (the web page, the REST API, a single
TIFF or PNG to ``gliomaseg segment``) instead of as a patient's volume.

For each model and each patient of a split's subset, prints the per-patient Dice of the volume
prediction (``Predictor.predict``, 2.5D models see each slice's neighbours) and of the same
slices predicted one by one (a volume of one slice each: a 2.5D model sees the slice repeated in
place of its neighbours), stacked and then thresholded and post-processed like a volume. Then the
mean and median per model. A 2D model loses nothing but what post-processing per volume adds;
a 2.5D model loses its neighbours. Last, what a user of the web page or REST API would see on
the tumor-free slices: each slice thresholded and post-processed alone, the number of those
slices with any tumor predicted and their false-positive pixels (per patient and in all).

    git show 5fc1f38:src/gliomaseg/weights/lgg_unet.safetensors > /tmp/lgg_1.1.0.safetensors   # the 2D model 1.1.0
    python benchmarks/single_slices.py --data cache/lgg/kaggle_3m --model lgg --model /tmp/lgg_1.1.0.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from gliomaseg.data import detect_dataset
from gliomaseg.data.splits import load_split
from gliomaseg.inference.postprocess import to_label
from gliomaseg.inference.predictor import Predictor
from gliomaseg.metrics import overlap_metrics
from gliomaseg.runtime import describe_machine

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="kaggle_3m folder (or any slice dataset)")
    parser.add_argument("--split", type=Path, default=REPO / "splits" / "lgg.json")
    parser.add_argument("--subset", default="test")
    parser.add_argument("--model", action="append", required=True, help="bundled name, weights file or run folder (repeatable)")
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    dataset = detect_dataset(args.data)
    wanted = set(load_split(args.split)[args.subset])
    refs = [ref for ref in dataset.find(args.data) if ref.id in wanted]
    print(f"{len(refs)} patients of the {args.subset} subset of {args.split.name}; per-patient Dice: volume / slices one by one")
    summary = []
    for model in args.model:
        predictor = Predictor.from_path(model)
        inference = predictor.config.inference
        volume, single, false_slices, false_pixels = [], [], 0, 0
        for ref in refs:
            case = dataset.load(ref, predictor.in_channels)
            truth = case.label > 0
            volume.append(overlap_metrics(predictor.predict(case).label > 0, truth)["dice"])
            probabilities = np.concatenate([predictor.probabilities(case.images[..., z:z + 1])
                                            for z in range(case.images.shape[-1])], axis=-1)
            label = to_label(probabilities, case.labels, inference.threshold, inference.postprocess)
            single.append(overlap_metrics(label > 0, truth)["dice"])
            alone = [int(to_label(probabilities[..., z:z + 1], case.labels, inference.threshold, inference.postprocess).sum())
                     for z in range(truth.shape[-1]) if not truth[..., z].any()]  # the web page's view of each
            hit, pixels = sum(n > 0 for n in alone), sum(alone)
            false_slices += hit
            false_pixels += pixels
            print(f"  {model} {ref.id}: {volume[-1]:.3f} / {single[-1]:.3f}; tumor-free slices alone: "
                  f"{hit} of {len(alone)} with a false positive, {pixels} pixels", flush=True)
        summary.append(f"{model}: volume mean {np.mean(volume):.3f} median {np.median(volume):.3f}; "
                       f"slices one by one mean {np.mean(single):.3f} median {np.median(single):.3f}; "
                       f"tumor-free slices alone: {false_slices} with a false positive, {false_pixels} pixels")
    print("\n".join(summary))


if __name__ == "__main__":
    main()

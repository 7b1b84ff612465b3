"""BraTS on this CPU: training throughput of the 3D and the 2.5D recipe and whole-case inference
time, side by side in one run.

Training figures are full steps (window sampling, augmentation, forward, loss, backward, Adam)
on real preprocessed training cases, in samples/s and in labelled voxels/s (so a 96^3 patch and a
160x160 slice compare). Inference is one whole held-out case (four 240x240x155 volumes):
preprocessing, network (sliding window for 3D, slice by slice for 2.5D) and mapping back.
Weights do not change speed, so untrained networks of each recipe are timed; the last line times
``gliomaseg segment`` with the bundled BraTS model in a new process.

    python benchmarks/brats.py --data cache/brats/brats [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmark import REPO, training_bank, training_throughput, untrained_predictor
from gliomaseg.config import load_config
from gliomaseg.data.brats import find_cases, load_case
from gliomaseg.runtime import describe_machine, set_threads

RECIPES = ("brats_unet3d.yaml", "brats_unet2d.yaml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder of the shared BraTS cases")
    parser.add_argument("--split", type=Path, default=REPO / "splits" / "brats.json")
    parser.add_argument("--steps", type=int, default=6, help="timed training steps per recipe")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated config files in configs/")
    args = parser.parse_args()
    set_threads(0)
    print(f"machine: {describe_machine()}")
    split = json.loads(args.split.read_text())
    by_id = {case.id: case for case in find_cases(args.data)}
    held_out = by_id[split["test"][0]]
    volume = load_case(held_out)
    recipes = [name for name in args.recipes.split(",") if name]

    print("\ntraining throughput (full steps)")
    for name in recipes:
        config = load_config(REPO / "configs" / name)
        rate = training_throughput(config, training_bank(args.data, split["train"][:2], config), args.steps)
        voxels = int(np.prod(config.data.patch_size))  # a 3D patch, or a (S, S, 1) slice window
        print(f"  {name:22s} batch {config.train.batch_size:2d}: {rate:7.2f} samples/s  {rate * voxels / 1e6:6.2f} Mvoxels/s")

    print(f"\nwhole-case inference, case {held_out.id} {volume.images.shape[1:]}")
    for name in recipes:
        predictor = untrained_predictor(load_config(REPO / "configs" / name))
        started = time.perf_counter()
        predictor.predict(volume)
        print(f"  {name:22s} {time.perf_counter() - started:6.1f} s")

    with tempfile.TemporaryDirectory() as out:
        command = [str(Path(sys.executable).parent / "gliomaseg"), "segment", str(held_out.images[0].parent), "--out", out]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        print(f"  `gliomaseg segment` with the bundled BraTS model, new process, NIfTI + montage written: "
              f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()

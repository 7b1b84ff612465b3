"""Training throughput of the default recipe under each CPU speed setting, side by side in one run.

The baseline is fp32 with the default (contiguous) memory format; then channels_last, bf16
autocast, and both (the shipped setting), with all cores and with one thread; last, the shipped
setting with each next batch augmented in a background thread during the step (what the Trainer
does on accelerators; on the CPU it prepares batches in line). Each figure is full training
steps (augmentation, forward, loss, backward, Adam) on real preprocessed slices.

    python benchmarks/training.py --data cache/lgg/kaggle_3m [--steps 8]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmark import REPO, training_bank, training_throughput
from gliomaseg.config import load_config
from gliomaseg.runtime import describe_machine, set_threads

SETTINGS = [  # (label, bf16, channels_last)
    ("fp32 (baseline)", False, False),
    ("fp32 + channels_last", False, True),
    ("bf16", True, False),
    ("bf16 + channels_last (shipped)", True, True),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "lgg_unet16.yaml")
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    split = json.loads((REPO / "splits" / "lgg.json").read_text())
    bank = training_bank(args.data, split["train"][:4], load_config(args.config))  # the settings below do not change the slices
    for threads in (0, 1):
        set_threads(threads)
        print(f"machine: {describe_machine()}")
        baseline = None
        for label, bf16, channels_last in SETTINGS:
            config = load_config(args.config)
            config.runtime.bf16, config.runtime.channels_last = bf16, channels_last
            rate = training_throughput(config, bank, args.steps)
            baseline = baseline or rate
            print(f"  {label:32s} {rate:7.1f} slices/s  {rate / baseline:5.2f}x")
        rate = training_throughput(config, bank, args.steps, prefetch=True)
        print(f"  {'shipped, next batch in a thread':32s} {rate:7.1f} slices/s  {rate / baseline:5.2f}x")


if __name__ == "__main__":
    main()

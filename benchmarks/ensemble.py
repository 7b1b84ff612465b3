"""Inference cost of fold ensembles: ``gliomaseg segment`` end to end (new process: imports, model
load, reading, preprocessing, every member's forward pass, post-processing, writing) with each
model on the same patients (cases), runs alternating between models, median of ``--repeats``;
prints seconds and the ratio to the first model. The issue's bound: an ensemble may cost at
most 2x the single bundled model.

    python benchmarks/ensemble.py cache/lgg/kaggle_3m/TCGA_CS_4941_19960909 --model lgg --model runs/lgg_ensemble.safetensors
    python benchmarks/ensemble.py cache/brats/brats/Brats18_CBICA_ALU_1 --model brats --model runs/brats_ensemble.safetensors
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from benchmark import time_segment_command
from gliomaseg.runtime import describe_machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", type=Path, nargs="+", help="patient (case) folders to segment")
    parser.add_argument("--model", action="append", required=True, help="bundled name or weights file (repeatable; the first is the baseline)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per model and case")
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    times: dict[str, list[float]] = {model: [] for model in args.model}
    for case in args.cases:
        for _ in range(args.repeats):
            for model in args.model:  # alternating, so a change in machine load hits every model alike
                times[model].append(time_segment_command(case, model))
    base = statistics.median(times[args.model[0]])
    for model, values in times.items():
        median = statistics.median(values)
        print(f"  {model}: median {median:.2f} s over {len(values)} runs ({min(values):.2f} to {max(values):.2f}), "
              f"{median / base:.2f}x {args.model[0]}")


if __name__ == "__main__":
    main()

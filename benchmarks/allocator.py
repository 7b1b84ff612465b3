"""Training throughput and peak memory with glibc's default heap against the heap kept by
:func:`gliomaseg.runtime.keep_freed_memory` (what the Trainer sets), side by side in one run.

Each figure is one fresh process (the heap setting is process-wide and not undone) timing full
training steps of a recipe on real preprocessed BraTS cases, as ``benchmarks/brats.py`` does,
then whole-case inference of the same (untrained) network on the first test-split case (mean of
2 runs after a warm-up); the processes alternate default, kept, default, kept, ... over
``--repeats`` rounds. Printed: samples/s, system CPU seconds, minor page faults and peak
resident memory of the training steps, and seconds per case, per process; and the kept/default
ratios of the medians per recipe. (The Trainer keeps the heap for every network, the Predictor
for 3D networks.)

    python benchmarks/allocator.py --data cache/brats/brats [--steps 6] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmark import REPO, training_bank, training_throughput, untrained_predictor
from gliomaseg.config import load_config
from gliomaseg.data.brats import find_cases, load_case
from gliomaseg.inference import predictor as predictor_module
from gliomaseg.runtime import describe_machine, keep_freed_memory, set_threads

RECIPES = ("brats_unet3d.yaml", "brats_unet2d_strongaug.yaml")


def child(data: Path, split: Path, recipe: str, keep: bool, steps: int) -> None:
    """Time one recipe in this process and print one JSON line."""
    set_threads(0)
    if keep and not keep_freed_memory():
        raise SystemExit("keep_freed_memory: no glibc here, nothing to compare")
    if not keep:
        predictor_module.keep_freed_memory = lambda: False  # the Predictor would keep it for 3D networks
    config = load_config(REPO / "configs" / recipe)
    ids = json.loads(split.read_text())
    bank = training_bank(data, ids["train"][:2], config)
    before = resource.getrusage(resource.RUSAGE_SELF)
    rate = training_throughput(config, bank, steps)
    after = resource.getrusage(resource.RUSAGE_SELF)
    predictor = untrained_predictor(config)
    volume = load_case({case.id: case for case in find_cases(data)}[ids["test"][0]])
    predictor.predict(volume)
    started = time.perf_counter()
    for _ in range(2):
        predictor.predict(volume)
    print(json.dumps({"rate": rate, "sys_s": after.ru_stime - before.ru_stime, "faults": after.ru_minflt - before.ru_minflt,
                      "peak_mib": after.ru_maxrss / 1024, "case_s": (time.perf_counter() - started) / 2}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder of the shared BraTS cases")
    parser.add_argument("--split", type=Path, default=REPO / "splits" / "brats.json")
    parser.add_argument("--steps", type=int, default=6, help="timed training steps per process")
    parser.add_argument("--repeats", type=int, default=2, help="processes per recipe and heap setting")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated config files in configs/")
    parser.add_argument("--child", choices=("default", "kept"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    recipes = [name for name in args.recipes.split(",") if name]
    if args.child:
        child(args.data, args.split, recipes[0], args.child == "kept", args.steps)
        return
    print(f"machine: {describe_machine()}")
    print(f"{args.steps} timed training steps per process, {args.repeats} processes per setting, alternating\n")
    for recipe in recipes:
        runs: dict[str, list[dict]] = {"default": [], "kept": []}
        for _ in range(args.repeats):
            for heap in runs:
                command = [sys.executable, __file__, "--data", str(args.data), "--split", str(args.split),
                           "--steps", str(args.steps), "--recipes", recipe, "--child", heap]
                result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
                runs[heap].append(result)
                print(f"  {recipe:28s} {heap:7s} heap: {result['rate']:6.2f} samples/s  system {result['sys_s']:5.1f} s  "
                      f"{result['faults']:9d} page faults  peak {result['peak_mib']:6.0f} MiB  inference {result['case_s']:5.2f} s/case")
        rate = {heap: statistics.median(r["rate"] for r in rows) for heap, rows in runs.items()}
        peak = {heap: statistics.median(r["peak_mib"] for r in rows) for heap, rows in runs.items()}
        case_s = {heap: statistics.median(r["case_s"] for r in rows) for heap, rows in runs.items()}
        print(f"  {recipe}: kept/default {rate['kept'] / rate['default']:.2f}x samples/s, "
              f"{peak['kept'] / peak['default']:.2f}x peak training memory, "
              f"{case_s['default'] / case_s['kept']:.2f}x inference speed\n")


if __name__ == "__main__":
    main()

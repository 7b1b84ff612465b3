"""Start-up cost of ``gliomaseg segment`` as a new process, against importing torch alone,
timed side by side in one run (median of --repeats alternating runs each).

The difference is what gliomaseg adds on top of torch: its own and its libraries' imports,
reading the bundled model, reading, preprocessing, inferring, post-processing and writing
the patient's masks and overlays.

    python benchmarks/startup.py --patient cache/lgg/kaggle_3m/TCGA_FG_6690_20020226 [--repeats 5]

With ``--baseline-src DIR`` (the ``src`` folder of another checkout, for example of an earlier
commit through ``git worktree add``), the same command of that version is timed in the same
alternation (as ``python -m gliomaseg``), put first on ``PYTHONPATH``, so both versions are
compared in one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def seconds(command: list[str], env: dict[str, str] | None = None) -> float:
    """Wall-clock seconds of one run of ``command`` in a new process (it must succeed)."""
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patient", type=Path, required=True, help="a kaggle_3m patient folder (about 60 slices)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-src", type=Path, help="src folder of another gliomaseg version to time beside")
    args = parser.parse_args()
    slices = sum(1 for p in args.patient.iterdir() if p.suffix == ".tif" and not p.stem.endswith("_mask"))
    gliomaseg = str(Path(sys.executable).parent / "gliomaseg")
    command = [gliomaseg, "segment", str(args.patient), "--overwrite", "--out"]
    baseline_env = None
    if args.baseline_src:
        baseline_env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(args.baseline_src.resolve())] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    torch_times, segment_times, baseline_times = [], [], []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(args.repeats):
            torch_times.append(seconds([sys.executable, "-c", "import torch"]))
            segment_times.append(seconds(command + [str(Path(out) / "this")]))
            if baseline_env:  # `python -m gliomaseg`: the console script's entry point differs between versions
                baseline = [sys.executable, "-m", "gliomaseg", *command[1:]]
                baseline_times.append(seconds(baseline + [str(Path(out) / "baseline")], baseline_env))
    base, segment = statistics.median(torch_times), statistics.median(segment_times)
    print(f"patient {args.patient.name}, {slices} slices; median of {args.repeats} alternating runs each")
    print(f"  python -c 'import torch'            {base:6.2f} s")
    print(f"  gliomaseg segment PATIENT (default) {segment:6.2f} s")
    print(f"  difference                          {segment - base:6.2f} s  (ratio {segment / base:.2f}x)")
    if baseline_times:
        before = statistics.median(baseline_times)
        print(f"  the same command, {args.baseline_src}: {before:6.2f} s, {before - base:6.2f} s above torch "
              f"(this version takes {segment / before:.2f}x its time)")


if __name__ == "__main__":
    main()

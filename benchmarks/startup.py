"""Start-up cost of ``gliomaseg segment`` as a new process, against importing torch alone,
timed side by side in one run (median of --repeats alternating runs each).

The difference is what gliomaseg adds on top of torch: its own and its libraries' imports,
reading the bundled model, reading, preprocessing, inferring, post-processing and writing
the patient's masks and overlays.

    python benchmarks/startup.py --patient cache/lgg/kaggle_3m/TCGA_DU_6407_19860514 [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def seconds(command: list[str]) -> float:
    """Wall-clock seconds of one run of ``command`` in a new process (it must succeed)."""
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patient", type=Path, required=True, help="a kaggle_3m patient folder (about 60 slices)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    slices = sum(1 for p in args.patient.iterdir() if p.suffix == ".tif" and not p.stem.endswith("_mask"))
    gliomaseg = str(Path(sys.executable).parent / "gliomaseg")
    torch_times, segment_times = [], []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(args.repeats):
            torch_times.append(seconds([sys.executable, "-c", "import torch"]))
            segment_times.append(seconds([gliomaseg, "segment", str(args.patient), "--out", out, "--overwrite"]))
    base, segment = statistics.median(torch_times), statistics.median(segment_times)
    print(f"patient {args.patient.name}, {slices} slices; median of {args.repeats} runs each")
    print(f"  python -c 'import torch'            {base:6.2f} s")
    print(f"  gliomaseg segment PATIENT (default) {segment:6.2f} s")
    print(f"  difference                          {segment - base:6.2f} s  (ratio {segment / base:.2f}x)")


if __name__ == "__main__":
    main()

"""Peak memory of a BraTS training run over 10 and over 40 cases, with the in-memory bank and
with the disk bank (``train.bank: disk``), side by side in one run.

The 40 cases are the given cases repeated under new ids (symbolic links, ``<case>_copy<k>``),
so the only thing that grows is the number of training cases. Each run is a fresh process
(2.5D U-Net width 8, 64x64 windows, one epoch of 64 windows, no validation) whose peak resident
memory (``ru_maxrss``, pages read through the disk bank's memory maps included) is printed.

    python benchmarks/streaming.py --data cache/brats/brats [--counts 10 40]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from gliomaseg.data.brats import find_cases
from gliomaseg.runtime import describe_machine

CONFIG = {
    "model": {"name": "unet", "in_channels": 12, "out_channels": 3, "width": 8},
    "data": {"dataset": "brats", "patch_size": [64, 64, 1], "context_slices": 1},
    "train": {"batch_size": 8, "slices_per_epoch": 64, "max_epochs": 1},
}


def repeated_cases(data: Path, count: int, folder: Path) -> list[str]:
    """``count`` case folders in ``folder``: the cases of ``data``, then copies under new ids
    (links to the same files)."""
    sources = [ref.images[0].parent for ref in find_cases(data)]
    ids = []
    for index in range(count):
        source = sources[index % len(sources)]
        case = source.name if index < len(sources) else f"{source.name}_copy{index // len(sources)}"
        target = folder / case
        target.mkdir(parents=True, exist_ok=True)
        for file in source.iterdir():
            link = target / file.name.replace(source.name, case, 1)
            if not link.exists():
                link.symlink_to(file.resolve())
        ids.append(case)
    return ids


def child(data: str, ids: str, bank: str, out: str) -> None:
    """One training run in this process; prints its peak resident memory in MiB."""
    from gliomaseg.config import Config
    from gliomaseg.training.trainer import train

    config = Config.from_dict({**CONFIG, "train": {**CONFIG["train"], "bank": bank}})
    train(Path(data), {"train": json.loads(ids), "val": [], "test": []}, config, Path(out))
    print(f"PEAK_MIB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="BraTS folder (e.g. cache/brats/brats)")
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 40])
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        ids = repeated_cases(args.data, max(args.counts), work / "brats")
        peaks = {}
        for bank in ("memory", "disk"):
            for count in args.counts:
                out = work / f"run_{bank}_{count}"
                result = subprocess.run([sys.executable, __file__, "--child", str(work / "brats"), json.dumps(ids[:count]),
                                         bank, str(out)], capture_output=True, text=True, check=True)
                peaks[bank, count] = float(result.stdout.split("PEAK_MIB")[-1])
                print(f"bank {bank:6s}  {count:3d} cases: peak memory {peaks[bank, count]:7.0f} MiB", flush=True)
        low, high = min(args.counts), max(args.counts)
        for bank in ("memory", "disk"):
            print(f"bank {bank}: {high} cases / {low} cases = {peaks[bank, high] / peaks[bank, low]:.2f}x")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:6])
    else:
        main()

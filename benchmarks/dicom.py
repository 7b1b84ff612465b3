"""``gliomaseg segment`` on one four-sequence BraTS study (240x240x155) given as DICOM series
against the same study given as NIfTI files, timed side by side in one run (median of
--repeats alternating runs of the command each, new processes), and the ratio printed.

The DICOM series are written at run time from the case's NIfTI files (one file per slice,
shuffled names, tests/dicom_series.py); the NIfTI study is the same four files under scanner-like
names, so both runs use the BraTS model on the same voxels and write the same label map (DICOM
also writes the DICOM SEG).

    python benchmarks/dicom.py --case cache/brats/brats/Brats18_2013_3_1 [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from dicom_series import Study, write_series  # noqa: E402
from startup import seconds  # noqa: E402

NAMES = {"flair": "Ax T2 FLAIR", "t1": "Sag T1 MPRAGE", "t1ce": "T1 MPRAGE +C", "t2": "Ax T2 FSE"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", type=Path, required=True, help="a BraTS case folder (2018-2021 names)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    gliomaseg = str(Path(sys.executable).parent / "gliomaseg")
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        study = Study.new("benchmark")
        for number, (key, description) in enumerate(NAMES.items(), start=1):
            source = args.case / f"{args.case.name}_{key}.nii.gz"
            image = nib.load(str(source))
            write_series(work / "dicom" / f"s{number}", np.asarray(image.dataobj).astype(np.float32), image.affine, study,
                         description, number, seed=number)
            (work / "nifti").mkdir(exist_ok=True)
            shutil.copy(source, work / "nifti" / f"{description.replace(' ', '_')}.nii.gz")
        times: dict[str, list[float]] = {"dicom": [], "nifti": []}
        for repeat in range(args.repeats):
            for kind in times:
                out = work / f"out_{kind}_{repeat}"
                times[kind].append(seconds([gliomaseg, "segment", str(work / kind), "--model", "brats", "--out", str(out)]))
        first = nib.load(str(work / "out_dicom_0" / "dicom_seg.nii.gz")).get_fdata()
        same = np.array_equal(first, nib.load(str(work / "out_nifti_0" / "nifti_seg.nii.gz")).get_fdata())
    dicom, nifti = statistics.median(times["dicom"]), statistics.median(times["nifti"])
    print(f"study {args.case.name}: 4 sequences 240x240x155, {args.repeats} alternating runs each, same label map: {same}")
    print(f"segment DICOM series : median {dicom:.2f} s  ({', '.join(f'{t:.2f}' for t in times['dicom'])})")
    print(f"segment NIfTI files  : median {nifti:.2f} s  ({', '.join(f'{t:.2f}' for t in times['nifti'])})")
    print(f"ratio DICOM / NIfTI  : {dicom / nifti:.2f} (acceptance: at most 1.5)")


if __name__ == "__main__":
    main()

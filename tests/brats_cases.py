"""Copies of a real BraTS case, renamed or deliberately broken, for reader and CLI tests."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np

SEQUENCES_2023 = {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f"}


def copy_case(source: Path, parent: Path, name: str | None = None) -> Path:
    """A copy of the case folder ``source`` under ``parent``, renamed to case ``name`` if given."""
    name = name or source.name
    folder = parent / name
    folder.mkdir(parents=True)
    for path in source.iterdir():
        shutil.copy(path, folder / path.name.replace(source.name, name))
    return folder


def copy_as_2023(source: Path, parent: Path, case: str = "BraTS-GLI-00001-000") -> Path:
    """A 2023-style copy: sequences renamed (t1n, t1c, t2w, t2f), enhancing label 4 -> 3."""
    folder = parent / case
    folder.mkdir(parents=True)
    for old, new in SEQUENCES_2023.items():
        shutil.copy(source / f"{source.name}_{old}.nii.gz", folder / f"{case}-{new}.nii.gz")
    seg = nib.load(str(source / f"{source.name}_seg.nii.gz"))
    label = np.asarray(seg.dataobj).copy()
    label[label == 4] = 3
    nib.save(nib.Nifti1Image(label, seg.affine), str(folder / f"{case}-seg.nii.gz"))
    return folder


def drop_sequence(folder: Path, sequence: str = "flair") -> Path:
    """Delete one sequence; returns the missing file's path."""
    path = folder / f"{folder.name}_{sequence}.nii.gz"
    path.unlink()
    return path


def shrink_sequence(folder: Path, sequence: str = "t2") -> Path:
    """Cut one sequence to 100 axial slices (a shape mismatch); returns its path."""
    path = folder / f"{folder.name}_{sequence}.nii.gz"
    image = nib.load(str(path))
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[:, :, :100], image.affine), str(path))
    return path


def add_foreign_label(folder: Path, value: int = 7) -> Path:
    """Write a label value outside the convention into one voxel of the label map."""
    path = folder / f"{folder.name}_seg.nii.gz"
    seg = nib.load(str(path))
    label = np.asarray(seg.dataobj).copy()
    label[0, 0, 0] = value
    nib.save(nib.Nifti1Image(label, seg.affine), str(path))
    return path


def replace_with_text(folder: Path, sequence: str = "t1") -> Path:
    """Overwrite one sequence with gzipped text (not a NIfTI volume); returns its path."""
    path = folder / f"{folder.name}_{sequence}.nii.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("not a volume\n")
    return path

"""Reader for BraTS cases: four co-registered MRI sequences and a label map per case (NIfTI).

Layouts (one folder per case)::

    <case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz      BraTS 2018-2021
    <case>/<case>-{t1n,t1c,t2w,t2f,seg}.nii.gz       BraTS 2023

Labels: 0 background, 1 necrotic and non-enhancing tumor core, 2 peritumoral edema, 4 enhancing
tumor (3 in BraTS 2023). Challenge regions (Menze et al. 2015; Bakas et al. 2018):
whole tumor WT = {1, 2, 4}, tumor core TC = {1, 4}, enhancing tumor ET = {4}.
Volumes are read with nibabel; every sequence must share the label map's shape and affine.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from ..atomic import atomic_path
from ..errors import InputError, read_each
from .detect import holds_nifti

SEQUENCES = ("t1", "t1ce", "t2", "flair")  # channel order of the networks
REGIONS = ("WT", "TC", "ET")
# convention -> (separator, file key of each of SEQUENCES, enhancing-tumor label)
CONVENTIONS = {
    "2018-2021": ("_", ("t1", "t1ce", "t2", "flair"), 4),
    "2023": ("-", ("t1n", "t1c", "t2w", "t2f"), 3),
}
AFFINE_TOLERANCE = 1e-3  # mm


@dataclass
class BratsCase:
    """One case's files.

    Attributes:
        id: folder name, e.g. ``Brats18_2013_3_1``.
        sequences: NIfTI file of each of :data:`SEQUENCES`, in that order.
        label: the ``seg`` file, or ``None`` (inference only).
        convention: ``"2018-2021"`` or ``"2023"`` (names and enhancing label).
    """

    id: str
    sequences: list[Path]
    label: Path | None
    convention: str

    @property
    def enhancing_label(self) -> int:
        return CONVENTIONS[self.convention][2]


def scan_case(folder: str | Path, require_label: bool = True) -> BratsCase:
    """Find a case's files and its naming convention.

    Raises:
        InputError: no BraTS file, a missing sequence (naming the case and the file expected),
            or a missing label map when required.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    for convention, (sep, keys, _) in CONVENTIONS.items():
        paths = [folder / f"{folder.name}{sep}{key}.nii.gz" for key in keys]
        label = folder / f"{folder.name}{sep}seg.nii.gz"
        if not any(p.exists() for p in [*paths, label]):
            continue
        for path in paths:
            if not path.is_file():
                raise InputError(path, f"case {folder.name} lacks this sequence")
        if require_label and not label.is_file():
            raise InputError(label, f"case {folder.name} lacks its label map")
        return BratsCase(folder.name, paths, label if label.is_file() else None, convention)
    raise InputError(folder, f"no BraTS files named {folder.name}_<t1|t1ce|t2|flair|seg>.nii.gz or {folder.name}-<t1n|t1c|t2w|t2f|seg>.nii.gz")


def find_cases(root: str | Path, require_label: bool = True, problems: list[InputError] | None = None) -> list[BratsCase]:
    """Every case folder under ``root`` (the ``brats`` folder or its parent; or ``root`` itself
    if it is a case folder), sorted by id.

    Args:
        problems: if given, an incomplete case is appended here and skipped instead of raised.

    Raises:
        InputError: no case found, or an incomplete case (see :func:`scan_case`).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "no such folder")
    if holds_nifti(root):  # a single case folder
        return read_each([root], lambda folder: scan_case(folder, require_label), problems)
    if (root / "brats").is_dir():
        root = root / "brats"
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    folders = [folder for folder in folders if holds_nifti(folder)]
    cases = read_each(folders, lambda folder: scan_case(folder, require_label), problems)
    if not cases and not problems:
        raise InputError(root, "no BraTS case folders found")
    return cases


def _read(path: Path) -> nib.Nifti1Image:
    if not path.name.endswith((".nii", ".nii.gz")):
        raise InputError(path, "not a NIfTI file (.nii or .nii.gz)")
    try:
        image = nib.load(str(path))
        image.dataobj.shape  # noqa: B018  header parsed
        return image
    except Exception as exc:  # noqa: BLE001  nibabel raises many types on bad files
        raise InputError(path, f"not a readable NIfTI volume ({exc.__class__.__name__}: {exc})") from None


@dataclass
class BratsVolume:
    """A loaded case.

    Attributes:
        images: ``(4, X, Y, Z)`` float32 scanner intensities, channels as :data:`SEQUENCES`.
        label: ``(X, Y, Z)`` uint8 label map, or ``None``.
        affine: ``(4, 4)`` voxel-to-world (mm) matrix shared by all files.
        spacing: voxel size in mm along X, Y, Z.
        header: the first sequence's NIfTI header, the template of written label maps.
    """

    images: np.ndarray
    label: np.ndarray | None
    affine: np.ndarray
    spacing: tuple[float, float, float]
    header: nib.Nifti1Header | None = None


def load_case(case: BratsCase) -> BratsVolume:
    """Read and check a case.

    Raises:
        InputError: unreadable file, a sequence whose shape or affine differs from the first
            one's, or label values outside the case's convention.
    """
    reference = _read(case.sequences[0])
    shape, affine = reference.shape, reference.affine
    images = []
    for path in case.sequences:
        image = reference if path == case.sequences[0] else _read(path)
        _check_grid(path, image, shape, affine, case.sequences[0])
        images.append(np.asarray(image.dataobj, dtype=np.float32))
    label = None
    if case.label is not None:
        image = _read(case.label)
        _check_grid(case.label, image, shape, affine, case.sequences[0])
        label = np.asarray(image.dataobj)
        allowed = {0, 1, 2, case.enhancing_label}
        found = set(np.unique(label).astype(int).tolist())
        if not found <= allowed:
            raise InputError(case.label, f"label values {sorted(found - allowed)} outside the BraTS {case.convention} convention {sorted(allowed)}")
        label = label.astype(np.uint8)
    spacing = tuple(float(z) for z in reference.header.get_zooms()[:3])
    return BratsVolume(np.stack(images), label, affine, spacing, reference.header)


def write_label_map(path: str | Path, label: np.ndarray, volume: BratsVolume) -> None:
    """Write ``label`` (``(X, Y, Z)`` uint8) as a gzipped NIfTI on ``volume``'s grid: its affine
    and header (qform/sform codes, units), data type uint8, atomically."""
    header = volume.header.copy() if volume.header is not None else None
    image = nib.Nifti1Image(label.astype(np.uint8), volume.affine, header)
    image.set_data_dtype(np.uint8)
    image.header.set_slope_inter(1, 0)
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(image.to_bytes(), compresslevel=1))


def _check_grid(path: Path, image: nib.Nifti1Image, shape: tuple, affine: np.ndarray, reference: Path) -> None:
    if image.shape != shape:
        raise InputError(path, f"shape {image.shape} differs from {reference.name}'s {shape}")
    if not np.allclose(image.affine, affine, atol=AFFINE_TOLERANCE):
        raise InputError(path, f"affine differs from {reference.name}'s: the sequences are not co-registered")


def label_to_regions(label: np.ndarray, enhancing_label: int = 4) -> np.ndarray:
    """``(X, Y, Z)`` label map -> ``(3, X, Y, Z)`` bool: WT, TC, ET (overlapping)."""
    return np.stack([
        np.isin(label, (1, 2, enhancing_label)),
        np.isin(label, (1, enhancing_label)),
        label == enhancing_label,
    ])


def regions_to_label(regions: np.ndarray, enhancing_label: int = 4) -> np.ndarray:
    """Inverse of :func:`label_to_regions`: ET -> enhancing label, TC without ET -> 1, WT
    without TC -> 2. Regions need not be nested: ET outside TC still gets the enhancing label,
    TC outside WT still gets 1.

    Args:
        regions: ``(3, X, Y, Z)`` bool, channels WT, TC, ET.

    Returns:
        ``(X, Y, Z)`` uint8.
    """
    whole, core, enhancing = regions.astype(bool)
    label = np.zeros(whole.shape, np.uint8)
    label[whole] = 2
    label[core] = 1
    label[enhancing] = enhancing_label
    return label

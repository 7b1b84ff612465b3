"""Dataset type ``brats``: BraTS cases, four co-registered MRI sequences and a label map per case (NIfTI).

Layouts (one folder per case; ``.nii.gz`` or uncompressed ``.nii``)::

    <case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz      BraTS 2018-2021
    <case>/<case>-{t1n,t1c,t2w,t2f,seg}.nii.gz       BraTS 2023

Labels: 0 background, 1 necrotic and non-enhancing tumor core, 2 peritumoral edema, 4 enhancing
tumor (3 in BraTS 2023); scored as the regions WT, TC, ET (:class:`~.labels.BratsRegions`).
Volumes are read with nibabel; every sequence must share the label map's shape and affine.
Loose NIfTI files and folders of other names are the ``nifti`` type's.
A case is ``(4, X, Y, Z)`` float32 images (T1, T1ce, T2, FLAIR) on the files' voxel grid with
its spacing in mm. Outputs: ``<case>_seg.nii.gz``, the label map in the case's convention on
its grid and affine, ``<case>_montage.png`` and, with ``--save-probabilities``,
``<case>_probabilities.nii.gz`` (:func:`~.volumes.write_volume_outputs`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError, read_each
from .base import Case, CaseRef, DatasetType, WriteOptions, register, visible
from .io import write_png_atomic
from .labels import BratsRegions
from .overlays import brats_montage
from .volumes import AFFINE_TOLERANCE, NIFTI_SUFFIXES, VolumeGrid, nifti_array, read_nifti, write_volume_outputs

SEQUENCES = ("t1", "t1ce", "t2", "flair")  # channel order of the networks
CHANNEL_NAMES = ("T1", "T1ce", "T2", "FLAIR")
# convention -> (separator, file key of each of SEQUENCES, enhancing-tumor label)
CONVENTIONS = {
    "2018-2021": ("_", ("t1", "t1ce", "t2", "flair"), 4),
    "2023": ("-", ("t1n", "t1c", "t2w", "t2f"), 3),
}


def holds_nifti(folder: Path) -> bool:
    """Whether ``folder`` directly holds a NIfTI file named the BraTS way (``<folder>_t1.nii.gz``,
    ``<folder>-t2f.nii``, ...): a BraTS case folder."""
    if not folder.is_dir():
        return False
    names = {f"{folder.name}{sep}{key}{suffix}" for sep, keys, _ in CONVENTIONS.values() for key in (*keys, "seg")
             for suffix in NIFTI_SUFFIXES}
    return any(p.name in names for p in folder.iterdir())


def _file(folder: Path, sep: str, key: str) -> Path:
    """``<case><sep><key>.nii.gz``, or the uncompressed ``.nii`` where only that exists."""
    gz = folder / f"{folder.name}{sep}{key}.nii.gz"
    plain = folder / f"{folder.name}{sep}{key}.nii"
    return plain if plain.is_file() and not gz.is_file() else gz


def scan_case(folder: str | Path, require_label: bool = True) -> CaseRef:
    """Find a case's files and its naming convention (``info["convention"]``).

    Raises:
        InputError: no BraTS file, a missing sequence (naming the case and the file expected),
            or a missing label map when required.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    for convention, (sep, keys, _) in CONVENTIONS.items():
        paths = [_file(folder, sep, key) for key in keys]
        label = _file(folder, sep, "seg")
        if not any(p.exists() for p in [*paths, label]):
            continue
        for path in paths:
            if not path.is_file():
                raise InputError(path, f"case {folder.name} lacks this sequence")
        if require_label and not label.is_file():
            raise InputError(label, f"case {folder.name} lacks its label map")
        return CaseRef(folder.name, tuple(paths), (label,) if label.is_file() else None, Path("."),
                       {"convention": convention})
    raise InputError(folder, f"no BraTS files named {folder.name}_<t1|t1ce|t2|flair|seg>.nii.gz or {folder.name}-<t1n|t1c|t2w|t2f|seg>.nii.gz")


def find_cases(root: str | Path, require_label: bool = True, problems: list[InputError] | None = None) -> list[CaseRef]:
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
    folders = sorted(p for p in root.iterdir() if p.is_dir() and visible(p) and holds_nifti(p))
    cases = read_each(folders, lambda folder: scan_case(folder, require_label), problems)
    if not cases and not problems:
        raise InputError(root, "no BraTS case folders found")
    return cases


def load_case(ref: CaseRef, channels: int | None = None) -> Case:
    """Read and check a case.

    Returns:
        a case with ``(4, X, Y, Z)`` float32 scanner intensities, the ``(X, Y, Z)`` uint8 label
        map in the case's convention (if present), spacing in mm, and the first sequence's
        affine and header as its grid.

    Raises:
        InputError: unreadable, corrupt or truncated file (:func:`~.io.read_nifti`), NaN or
            infinite voxels, a sequence whose shape or affine differs from the first one's, label values outside the case's convention, or a model asking for another
            number of channels than the four sequences.
    """
    if channels not in (None, len(SEQUENCES)):
        raise InputError(ref.images[0].parent, f"the model needs {channels} input channels; a BraTS case has {len(SEQUENCES)} sequences")
    convention = BratsRegions(enhancing_label=CONVENTIONS[ref.info["convention"]][2])
    reference = read_nifti(ref.images[0])
    shape, affine = reference.shape, reference.affine
    images = []
    for path in ref.images:
        image = reference if path == ref.images[0] else read_nifti(path)
        _check_grid(path, image, shape, affine, ref.images[0])
        images.append(nifti_array(path, image, np.float32))
    label = None
    if ref.labels is not None:
        path = ref.labels[0]
        image = read_nifti(path)
        _check_grid(path, image, shape, affine, ref.images[0])
        label = _check_labels(path, nifti_array(path, image, None), ref.info["convention"])
    spacing = tuple(float(z) for z in reference.header.get_zooms()[:3])
    return Case(ref.id, Brats.name, np.stack(images), CHANNEL_NAMES, label, convention, spacing, ref.images,
                ref.output, VolumeGrid(affine, shape, reference.header))


def _check_labels(path: Path, label: np.ndarray, convention: str) -> np.ndarray:
    """``label`` as uint8, checked to hold only the values of the BraTS ``convention``.

    Raises:
        InputError: other values (naming them), or values that are not whole numbers.
    """
    allowed = set(BratsRegions(enhancing_label=CONVENTIONS[convention][2]).allowed)
    values = np.unique(label)
    found = set(values.astype(int).tolist())
    if not found <= allowed or not np.array_equal(values, values.astype(int)):
        odd = sorted(found - allowed) or [v for v in values.tolist() if v != int(v)][:5]
        raise InputError(path, f"label values {odd} outside the BraTS {convention} convention {sorted(allowed)}")
    return label.astype(np.uint8)


def _outputs(case_id: str, output: Path) -> list[Path]:
    """``<case>_seg.nii.gz`` and ``<case>_montage.png`` under ``output`` (with
    ``--save-probabilities`` also ``<case>_probabilities.nii.gz``)."""
    return [output / f"{case_id}_seg.nii.gz", output / f"{case_id}_montage.png"]


def _check_grid(path: Path, image, shape: tuple, affine: np.ndarray, reference: Path) -> None:
    if image.shape != shape:
        raise InputError(path, f"shape {image.shape} differs from {reference.name}'s {shape}")
    if not np.allclose(image.affine, affine, atol=AFFINE_TOLERANCE):
        raise InputError(path, f"affine differs from {reference.name}'s: the sequences are not co-registered")


@register
class Brats(DatasetType):
    """BraTS case folders of four NIfTI sequences and a label map."""

    name = "brats"
    description = "BraTS case folders of <case>_{t1,t1ce,t2,flair}.nii.gz (or 2023's t1n, t1c, t2w, t2f)"
    labels = BratsRegions()
    channels = CHANNEL_NAMES
    case_noun = "case"
    volumetric = True
    orientation = ("L", "P", "S")  # the challenge's files (affine diag(-1, -1, 1)): the bundled model's training layout

    def detect(self, path: Path) -> bool:
        if not path.is_dir():
            return False
        candidates = [path, *(p for p in path.iterdir() if p.is_dir())]
        if (path / "brats").is_dir():
            candidates += list((path / "brats").iterdir())
        return any(holds_nifti(c) for c in candidates)

    def find(self, root: Path, require_labels: bool = True, problems: list[InputError] | None = None) -> list[CaseRef]:
        return find_cases(root, require_labels, problems)

    def inputs(self, path: Path, problems: list[InputError], sequences: dict[str, str] | None = None) -> list[CaseRef]:
        self.reject_sequences(path, sequences)
        if not path.is_dir():
            raise InputError(path, "expected a BraTS case folder (its four sequences as NIfTI) or a folder of them")
        return find_cases(path, require_label=False, problems=problems)

    def load(self, ref: CaseRef, channels: int | None = None) -> Case:
        return load_case(ref, channels)

    def write(self, case: Case, label: np.ndarray, probabilities: np.ndarray, out: Path, overwrite: bool,
              options: WriteOptions = WriteOptions()) -> list[dict]:
        montage_path = out / _outputs(case.id, case.output)[1]
        record, _ = write_volume_outputs(case, label, probabilities, out, overwrite, options, {"montage": montage_path})
        flair = case.images[case.channels.index("FLAIR")]
        write_png_atomic(montage_path, brats_montage(flair, label, case.labels.enhancing_label))
        convention = next(name for name, (_, _, et) in CONVENTIONS.items() if et == case.labels.enhancing_label)
        return [{**record, "folder": str(case.sources[0].parent), "convention": convention}]

    def outputs(self, ref: CaseRef) -> list[Path]:
        return _outputs(ref.id, ref.output)

    def verify(self, ref: CaseRef, full: bool = True) -> Iterator[InputError]:
        """Each volume on its own: readable (headers; with ``full`` the whole gzip stream, NaN
        and infinite voxels, label values of the case's convention), the first sequence's shape
        and affine; with ``full``, extra files in the case folder."""
        expected = {*ref.images, *(ref.labels or ())}
        folder = ref.images[0].parent
        for path in sorted(p for p in folder.iterdir() if full and visible(p) and p not in expected):
            yield InputError(path, f"extra file in case {ref.id}: not one of its four sequences or its label map")
        reference = None
        for path in sorted(expected, key=[*ref.images, *(ref.labels or ())].index):
            try:
                image = read_nifti(path, header_only=not full)
                if reference is None:
                    reference = path, image.shape, image.affine
                _check_grid(path, image, reference[1], reference[2], reference[0])
                if full:
                    array = nifti_array(path, image, None)
                    if ref.labels and path == ref.labels[0]:
                        _check_labels(path, array, ref.info["convention"])
            except InputError as exc:
                yield exc

"""What the volume dataset types share (NIfTI, BraTS, DICOM series): reading NIfTI, NRRD and
MHA files into a :class:`Volume` on its physical grid, assembling the sequences a model needs
into a :class:`~.base.Case` in the orientation the model was trained in, and writing
predictions back onto the input's own grid (:class:`VolumeGrid`).

Conventions: a volume's array is ``(X, Y, Z)`` with voxel ``(i, j, k)`` at ``affine @ (i, j, k, 1)``
in RAS+ world millimetres (NIfTI and nibabel; DICOM and ITK use LPS, whose first two world axes
point the other way, see :func:`lps_to_ras`).

Orientation (the issue of volumes stored sagittally, coronally, LPS or RAS): the spatial axes
are permuted and flipped, never resampled, to the model's training layout
(:attr:`~.base.DatasetType.orientation`: ``("P", "L", "S")`` for the LGG slices, rows towards
posterior, columns towards the patient's left, slices upwards; ``("L", "P", "S")`` for the
BraTS files), with nibabel's ``io_orientation`` (the closest axes of an oblique grid), and the
predictions go back by the inverse permutation, so they lie voxel for voxel on the input's grid.

Sequences on different grids (separate scanner series) are resampled (trilinear, scipy through
nibabel's ``resample_from_to``) onto the reference sequence's grid, FLAIR, by their world
coordinates: the scanner's frame of reference, with no registration for patient motion.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import InputError
from .base import DATASETS, Case, DatasetType, WriteOptions, existing_outputs
from .io import NIFTI_SUFFIXES, check_finite, nifti_array, read_nifti
from .labels import BinaryLabels
from .sequences import REFERENCE, channel_sequences

log = logging.getLogger("gliomaseg")

ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")  # read with SimpleITK
VOLUME_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES
AFFINE_TOLERANCE = 1e-3  # mm: grids closer than this are the same grid
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
PROBABILITY_STEP = 1 / 255  # probabilities are stored as uint8 times this


def is_volume_file(path: Path) -> bool:
    """Whether ``path``'s name ends in a NIfTI, NRRD or MetaImage suffix (case-insensitive)."""
    return path.name.lower().endswith(VOLUME_SUFFIXES)


def volume_stem(path: Path) -> str:
    """The file name without its volume suffix (``flair.nii.gz`` -> ``flair``)."""
    name = path.name
    suffix = next((s for s in VOLUME_SUFFIXES if name.lower().endswith(s)), "")
    return name[: len(name) - len(suffix)] if suffix else path.stem


def lps_to_ras(affine: np.ndarray) -> np.ndarray:
    """A voxel-to-LPS affine (DICOM, ITK) as voxel-to-RAS (NIfTI): the first two world axes negated."""
    return LPS_TO_RAS @ affine


@dataclass(frozen=True)
class Volume:
    """One 3D image on its physical grid.

    Attributes:
        array: ``(X, Y, Z)`` float32 scanner units (rescale slope and intercept applied).
        affine: ``(4, 4)`` float64 voxel index -> RAS+ world position in mm.
        source: the file, or the folder of a DICOM series' first file.
        description: what it is, for messages (file name, or a series' UID and description).
        header: the nibabel header of a NIfTI file (kept on outputs: qform and sform codes),
            else ``None``.
    """

    array: np.ndarray
    affine: np.ndarray
    source: Path
    description: str
    header: object = None

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along X, Y, Z (the lengths of the affine's columns)."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))


def read_volume(path: Path) -> Volume:
    """Read a NIfTI (nibabel), NRRD or MetaImage (SimpleITK) file as a :class:`Volume`.

    Raises:
        InputError: unknown suffix, unreadable or truncated file, or not a 3D scalar image.
    """
    if path.name.lower().endswith(NIFTI_SUFFIXES):
        image = read_nifti(path)
        return Volume(nifti_array(path, image, np.float32), image.affine.astype(np.float64), path, path.name, image.header)
    if not path.name.lower().endswith(ITK_SUFFIXES):
        raise InputError(path, f"not a volume file (expected one of {', '.join(VOLUME_SUFFIXES)})")
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise InputError(path, f"not a readable NRRD/MetaImage volume ({reason})") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(path, f"expected a 3D single-component volume, got {image.GetDimension()}D with "
                         f"{image.GetNumberOfComponentsPerPixel()} component(s)")
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0).astype(np.float32)  # ITK arrays are (Z, Y, X)
    check_finite(path, array)
    return Volume(array, lps_to_ras(lps), path, path.name)


@dataclass(frozen=True)
class VolumeGrid:
    """The input's grid, for putting outputs back onto it (:attr:`~.base.Case.grid` of volumes).

    Attributes:
        affine: ``(4, 4)`` voxel -> RAS+ mm of the input.
        shape: the input's ``(X, Y, Z)``.
        header: nibabel header to copy into outputs (qform and sform codes, units), or ``None``.
        to_model: nibabel orientation transform (``(3, 2)``: axis, flip) from the input's axes to
            the model's, or ``None`` (the case is in the input's own axes).
    """

    affine: np.ndarray
    shape: tuple[int, int, int]
    header: object = None
    to_model: np.ndarray | None = None

    def model_array(self, array: np.ndarray) -> np.ndarray:
        """``(..., *shape)`` on the input's axes -> the model's axes (a view, permuted and flipped)."""
        return _reorient(array, self.to_model)

    def input_array(self, array: np.ndarray) -> np.ndarray:
        """``(..., X', Y', Z')`` on the model's axes -> ``(..., *shape)`` on the input's axes."""
        if self.to_model is None:
            return array
        back = np.empty_like(self.to_model)  # input axis i went to model axis to_model[i, 0]: undo it
        for axis, (moved_to, flip) in enumerate(self.to_model):
            back[int(moved_to)] = (axis, flip)
        return _reorient(array, back)

    def save(self, path: Path, array: np.ndarray, slope: float = 1.0) -> None:
        """Write ``array`` (``(X', Y', Z')`` or ``(K, X', Y', Z')`` on the model's axes) as a
        gzipped uint8 NIfTI on the input's grid and affine (a 4D ``(X, Y, Z, K)`` image for
        ``K`` channels), atomically. ``slope``: the stored values are ``round(array / slope)``
        and the header's ``scl_slope`` is ``slope``, so readers get ``array`` back to within
        ``slope / 2`` (probabilities: ``1/255``).
        """
        import nibabel as nib

        data = self.input_array(np.asarray(array))
        if data.ndim == 4:
            data = np.moveaxis(data, 0, -1)
        stored = np.ascontiguousarray(data if slope == 1.0 else np.round(data / slope), dtype=np.uint8)
        header = self.header.copy() if self.header is not None else None
        image = nib.Nifti1Image(stored, self.affine, header)
        image.set_data_dtype(np.uint8)
        image.header.set_slope_inter(slope, 0)
        image.header.set_xyzt_units("mm")
        if header is None:
            image.set_qform(self.affine, code=1)  # scanner coordinates
            image.set_sform(self.affine, code=1)
        with atomic_path(path) as tmp:
            tmp.write_bytes(gzip.compress(image.to_bytes(), compresslevel=1))


def _reorient(array: np.ndarray, transform: np.ndarray | None) -> np.ndarray:
    """Apply a nibabel orientation transform to the last three axes of ``array``."""
    if transform is None:
        return array
    from nibabel.orientations import apply_orientation

    spatial_last = np.moveaxis(array, range(array.ndim - 3), range(3, array.ndim))  # (X, Y, Z, ...)
    moved = apply_orientation(spatial_last, transform)
    return np.moveaxis(moved, range(3, array.ndim), range(array.ndim - 3))


class StudyType(DatasetType):
    """Base of the types that read studies of MRI sequences (NIfTI files, DICOM series) and
    assemble them in the layout of whichever model segments them (:func:`assemble`): its
    channels, labels and orientation. Not registered itself."""

    channels = ("FLAIR",)
    labels = BinaryLabels()
    case_noun = "study"
    volumetric = True

    def accepts_channels(self, count: int) -> bool:
        return any(t.orientation is not None and len(t.channels) == count for t in DATASETS.values())


def model_layout(channels: int) -> DatasetType:
    """The training layout a model with ``channels`` input channels expects: the registered
    type that declares an orientation and has that many channels (LGG ``kaggle3m``: 3, BraTS: 4).

    Raises:
        InputError: no such type (the model was trained on a layout volumes cannot be brought to).
    """
    found = [t for t in DATASETS.values() if t.orientation is not None and len(t.channels) == channels]
    if len(found) != 1:
        layouts = ", ".join(f"{t.name} ({len(t.channels)})" for t in DATASETS.values() if t.orientation is not None)
        raise InputError(Path("--model"), f"volumes can feed models of {layouts} channels, not a model of {channels}")
    return found[0]


def assemble(case_id: str, dataset: str, volumes: dict[str, Volume], layout: DatasetType, output: Path = Path(".")) -> Case:
    """A case in ``layout``'s channels and orientation from sequence volumes.

    Args:
        volumes: by sequence key (:mod:`.sequences`): ``flair`` is the reference grid; the
            others are resampled onto it where their grid differs. A channel whose sequence is
            missing and that the layout may fill with a FLAIR copy (LGG) gets one.
        layout: the model's training type (:func:`model_layout`).

    Returns:
        a case ``(C, *spatial)`` float32 in ``layout.orientation``, spacing in mm in that axis
        order, no label, the volumes' sources in channel order, its :class:`VolumeGrid` the reference's.
    """
    from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

    reference = volumes[REFERENCE]
    grid_transform = ornt_transform(io_orientation(reference.affine), axcodes2ornt(layout.orientation))
    grid = VolumeGrid(reference.affine, reference.array.shape, reference.header, grid_transform)
    channels, sources = [], {}
    for key in channel_sequences(layout):
        volume = volumes.get(key, reference)
        channels.append(grid.model_array(on_grid(volume, reference)))
        sources[volume.source] = None
    spacing = tuple(reference.spacing[int(axis)] for axis in np.argsort(grid_transform[:, 0]))
    return Case(case_id, dataset, np.ascontiguousarray(np.stack(channels), dtype=np.float32), tuple(layout.channels), None,
                layout.labels, spacing, tuple(sources), output, grid)


def on_grid(volume: Volume, reference: Volume) -> np.ndarray:
    """``volume``'s array on ``reference``'s grid: itself if the grids match, else resampled
    trilinearly by world position (0 outside ``volume``)."""
    if volume.array.shape == reference.array.shape and np.allclose(volume.affine, reference.affine, atol=AFFINE_TOLERANCE):
        return volume.array
    from nibabel.processing import resample_from_to  # scipy: only for sequences on other grids

    import nibabel as nib

    log.info("%s resampled onto the grid of %s", volume.description, reference.description)
    moved = resample_from_to(nib.Nifti1Image(volume.array, volume.affine), (reference.array.shape, reference.affine), order=1)
    return np.asarray(moved.dataobj, dtype=np.float32)


def write_volume_outputs(case: Case, label: np.ndarray, probabilities: np.ndarray, out: Path, overwrite: bool,
                         options: WriteOptions, extra: dict[str, Path] | None = None) -> tuple[dict, list[Path]]:
    """Write the label map (``<id>_seg.nii.gz``, uint8) and, with ``options.save_probabilities``,
    the probabilities (``<id>_probabilities.nii.gz``, ``(X, Y, Z, K)`` in [0, 1], stored as
    uint8 with ``scl_slope`` 1/255: NIfTI-1 has no float16 type, and steps of 0.004 are finer
    than any threshold anyone sets) on the input's grid under ``out / case.output``; check
    first that none of them nor ``extra`` (the type's other outputs) exists unless ``overwrite``.

    Returns:
        the case's ``results.jsonl`` record (output paths; ``volume_ml``: each region's volume
        in mL from the voxel spacing, 1 mL = 1000 mm^3) and the paths written.

    Raises:
        InputError: an output exists and ``overwrite`` is false.
    """
    folder = out / case.output
    paths = {"seg": folder / f"{case.id}_seg.nii.gz", **(extra or {})}
    if options.save_probabilities:
        paths["probabilities"] = folder / f"{case.id}_probabilities.nii.gz"
    if not overwrite:
        existing_outputs(list(paths.values()))
    case.grid.save(paths["seg"], label)
    if options.save_probabilities:
        case.grid.save(paths["probabilities"], probabilities, PROBABILITY_STEP)
    regions = case.labels.to_regions(label)
    record = {"type": "case", "case": case.id, "dataset": case.dataset, "spacing_mm": [round(s, 4) for s in case.spacing],
              **{name: str(path) for name, path in paths.items()},
              "volume_ml": {name: round(float(r.sum()) * case.voxel_ml, 3) for name, r in zip(case.labels.regions, regions)}}
    return record, list(paths.values())

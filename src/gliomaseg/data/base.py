"""The dataset protocol: every dataset type reads its layout into one immutable :class:`Case`
record and writes predictions back in its own formats; a registry finds types by name or by
detecting a folder's layout (after nnU-Net v2, which converts every dataset to one case format).

Array layout, for every type: images ``(C, *spatial)`` and label maps ``(*spatial)``, with
spatial ``(H, W, S)`` for slices (rows, columns, slice index; a lone slice has ``S = 1``) and
``(X, Y, Z)`` voxel axes for NIfTI volumes, so the slice axis is always the last one (MONAI's
``(C, H, W, D)``).

Adding a dataset type is one module that defines a :class:`DatasetType` subclass and calls
:func:`register`, plus one import line in :mod:`gliomaseg.data`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

from ..errors import ConfigError, InputError
from .labels import LabelConvention


@dataclass(frozen=True)
class Case:
    """One loaded case, whatever its dataset type. Arrays are read-only.

    Attributes:
        id: patient, case or slice id (unique within a dataset).
        dataset: name of the dataset type that read it.
        images: ``(C, *spatial)`` intensities: uint8 for slice images, float32 scanner units
            for volumes.
        channels: the name of each channel (e.g. ``("pre-contrast", "FLAIR", "post-contrast")``).
        label: ``(*spatial)`` uint8 label map in ``labels``'s convention, or ``None``.
        labels: the label or region convention of the case.
        spacing: voxel size in mm per spatial axis, or ``None`` where unknown (slice images).
        sources: the image files read, in order: slices in slice order, or one file per channel.
        output: relative folder under ``--out`` for this case's outputs (``.`` for loose files).
        grid: what the writer needs to put outputs back on the input's own grid (the NIfTI
            affine and header for volumes); ``None`` for slice images.
    """

    id: str
    dataset: str
    images: np.ndarray
    channels: tuple[str, ...]
    label: np.ndarray | None
    labels: LabelConvention
    spacing: tuple[float, ...] | None = None
    sources: tuple[Path, ...] = ()
    output: Path = Path(".")
    grid: Any = None

    def __post_init__(self):
        self.images.setflags(write=False)
        if self.label is not None:
            self.label.setflags(write=False)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    @property
    def voxel_ml(self) -> float | None:
        """Volume of one voxel in mL (1 mL = 1000 mm^3) from ``spacing``; ``None`` without it."""
        return float(np.prod(self.spacing)) / 1000.0 if self.spacing else None


@dataclass(frozen=True)
class WriteOptions:
    """Output options of ``segment`` that reach every dataset type's writer.

    Attributes:
        save_probabilities: volumetric types also write the ``(X, Y, Z, K)`` probabilities as a
            NIfTI on the input's grid (``--save-probabilities``); slice types write none.
        model: the model's name and version, for outputs that identify the algorithm (DICOM SEG).
    """

    save_probabilities: bool = False
    model: str = "gliomaseg"


@dataclass(frozen=True)
class CaseRef:
    """A case found in a folder and not yet read: its id and files.

    Attributes:
        id: patient, case or slice id.
        images: the image files: slices in slice order, or one file per channel.
        labels: the matching mask or label-map files (same order), or ``None``.
        output: relative folder under ``--out`` for its outputs.
        info: whatever else the type needs to read it (naming convention, ...).
    """

    id: str
    images: tuple[Path, ...]
    labels: tuple[Path, ...] | None = None
    output: Path = Path(".")
    info: dict = field(default_factory=dict, compare=False)


class DatasetType:
    """Base class of the dataset types; subclasses fill the class attributes and methods.

    Class attributes:
        name: registry key and ``data.dataset`` value.
        description: one line for ``--help`` and errors.
        channels: channel names the type's images have (a model's input channels).
        labels: the type's label convention (a case may refine it, e.g. BraTS 2023's enhancing label).
        case_noun: what a case is, in words and file names: ``patient``, ``case`` or ``slice``.
        volumetric: ``True`` for volumes on a physical grid (no resize; spacing in mm).
        orientation: for the types models are trained on, the patient directions the spatial
            axes of its arrays point to, as nibabel axis codes (``("L", "P", "S")``: first axis
            towards the patient's left, ...); volumes of other types are brought to it before
            such a model sees them (:mod:`.volumes`). ``None``: not a training layout.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    channels: ClassVar[tuple[str, ...]]
    labels: ClassVar[LabelConvention]
    case_noun: ClassVar[str] = "case"
    volumetric: ClassVar[bool] = False
    orientation: ClassVar[tuple[str, str, str] | None] = None

    def detect(self, path: Path) -> bool:
        """Whether ``path`` (a file or folder) holds data of this type."""
        raise NotImplementedError

    def accepts_channels(self, count: int) -> bool:
        """Whether the type's images can be read with ``count`` channels (a model's input)."""
        return count == len(self.channels)

    def find(self, root: Path, require_labels: bool = True, problems: list[InputError] | None = None) -> list[CaseRef]:
        """Every case under ``root``, sorted by id, without reading pixels.

        Args:
            require_labels: every case must have its masks or label map (training, evaluation).
            problems: if given, an incomplete case is appended here and skipped (batch runs
                go on); otherwise its error is raised.

        Raises:
            InputError: ``root`` is missing or holds no case, or (without ``problems``) a case
                is incomplete.
        """
        raise NotImplementedError

    def inputs(self, path: Path, problems: list[InputError], sequences: dict[str, str] | None = None) -> list[CaseRef]:
        """The cases of one ``segment`` argument (a file or folder; labels not needed).

        Args:
            sequences: explicit sequence choices (``--sequence flair=PATH_OR_SERIES_UID``),
                for the types that pick sequences among files or series.

        Raises:
            InputError: ``sequences`` given to a type that has no sequences to choose.
        """
        self.reject_sequences(path, sequences)
        return self.find(path, require_labels=False, problems=problems)

    def reject_sequences(self, path: Path, sequences: dict[str, str] | None) -> None:
        """Raise :class:`InputError` if ``sequences`` are given to a type without sequences to choose."""
        if sequences:
            raise InputError(path, f"--sequence applies to NIfTI/NRRD/MHA volumes and DICOM series, not to {self.name} data")

    def load(self, ref: CaseRef, channels: int | None = None) -> Case:
        """Read a case. ``channels``: the channel count the model needs, where the type can
        convert (grey to RGB and back); ``None`` keeps the type's own.

        Raises:
            InputError: an unreadable file, or content that breaks the type's rules, naming the file.
        """
        raise NotImplementedError

    def write(self, case: Case, label: np.ndarray, probabilities: np.ndarray, out: Path, overwrite: bool,
              options: WriteOptions = WriteOptions()) -> list[dict]:
        """Write a predicted label map (``case.spatial_shape`` uint8) under ``out`` in the type's
        formats, at the paths :meth:`outputs` names; return the JSON records for ``results.jsonl``.

        Args:
            probabilities: ``(K, *spatial)`` float32 in [0, 1], one channel per region.
            options: what else to write (probability maps of volumes) and the model's name.

        Raises:
            InputError: an output exists and ``overwrite`` is false (checked before writing any).
        """
        raise NotImplementedError

    def outputs(self, ref: CaseRef) -> list[Path]:
        """The files :meth:`write` makes for ``ref``, relative to ``--out`` (under ``ref.output``),
        known before anything is read, so ``segment`` checks collisions and existing files first."""
        raise NotImplementedError

    def verify(self, ref: CaseRef, full: bool = True) -> Iterator[InputError]:
        """The problems of one case, one error per problem, each naming its file (``gliomaseg
        verify``). The type's own rules only; :mod:`gliomaseg.verify` adds the generic checks
        (label values, empty labels) on the loaded case.

        Args:
            full: decode every file (NaN, mask values, gzip checksums); ``False``: only what
                headers tell (readable, shapes, affines), the cheap part ``train`` and
                ``evaluate`` run first.

        The default reads the case (``full`` only) and yields its first problem; types
        override it to check file by file.
        """
        if not full:
            return
        try:
            self.load(ref)
        except InputError as exc:
            yield exc


DATASETS: dict[str, DatasetType] = {}


def register(dataset_type: type[DatasetType]) -> type[DatasetType]:
    """Class decorator adding one instance of ``dataset_type`` to :data:`DATASETS`."""
    if dataset_type.name in DATASETS:
        raise ValueError(f"dataset type {dataset_type.name!r} is registered twice")
    DATASETS[dataset_type.name] = dataset_type()
    return dataset_type


def get_dataset(name: str) -> DatasetType:
    """The registered dataset type called ``name``.

    Raises:
        ConfigError: unknown name.
    """
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset type {name!r}; registered: {', '.join(DATASETS)}")
    return DATASETS[name]


def detect_dataset(path: str | Path) -> DatasetType:
    """The first registered type (in registration order) that recognises ``path``.

    Raises:
        InputError: ``path`` does not exist or no type recognises it.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    for dataset_type in DATASETS.values():
        if dataset_type.detect(path):
            return dataset_type
    kinds = "; ".join(f"{t.name}: {t.description}" for t in DATASETS.values())
    raise InputError(path, f"not a layout gliomaseg knows ({kinds})")


def resolve_dataset(path: str | Path, declared: str = "auto") -> DatasetType:
    """The dataset type of ``path``: ``declared`` if not ``auto`` (checked against the layout),
    else detected.

    Raises:
        ConfigError: unknown ``declared`` type.
        InputError: the folder's layout contradicts ``declared``.
    """
    if declared != "auto":
        declared_type = get_dataset(declared)
        if not declared_type.detect(Path(path)):
            raise InputError(path, f"does not hold {declared} data ({declared_type.description}), "
                             "but the config's data.dataset says so")
        return declared_type
    return detect_dataset(path)


def existing_outputs(paths: list[Path]) -> None:
    """Refuse to replace files ``--overwrite`` was not given for.

    Raises:
        InputError: the first of ``paths`` that exists.
    """
    for path in paths:
        if path.exists():
            raise InputError(path, "already exists; pass --overwrite to replace it")


def visible(path: Path) -> bool:
    """Whether a file or folder is not hidden (no leading dot)."""
    return not path.name.startswith(".")

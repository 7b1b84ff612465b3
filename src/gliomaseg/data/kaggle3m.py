"""Reader for the LGG ``kaggle_3m`` layout (Buda et al. 2019).

Layout::

    kaggle_3m/
        TCGA_CS_4941_19960909/
            TCGA_CS_4941_19960909_1.tif        256x256x3 uint8: pre-contrast, FLAIR, post-contrast
            TCGA_CS_4941_19960909_1_mask.tif   256x256 uint8, 0 or 255
            ...
        README.md, data.csv                    ignored

Slices are ordered by their number as a number (``_10`` after ``_9``). Hidden files and
folders, and anything that is not a ``<patient>_<n>.tif`` slice or its mask, are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, read_each
from .io import IMAGE_SUFFIXES, read_image, read_mask

_SLICE = re.compile(r"^(?P<stem>.+?)_(?P<num>\d+)(?P<mask>_mask)?$")


@dataclass
class Patient:
    """One patient's slices, in slice order.

    Attributes:
        id: folder name, e.g. ``TCGA_CS_4941_19960909``.
        image_files: slice files, sorted by slice number.
        mask_files: the matching mask files, or ``None`` when the patient has no masks.
        images: ``(S, H, W, C)`` uint8 once loaded.
        masks: ``(S, H, W)`` bool once loaded, or ``None``.
    """

    id: str
    image_files: list[Path]
    mask_files: list[Path] | None
    images: np.ndarray | None = None
    masks: np.ndarray | None = None

    @property
    def institution(self) -> str:
        """Source institution: the ``<inst>`` of ``TCGA_<inst>_...``, or ``""``."""
        parts = self.id.split("_")
        return parts[1] if len(parts) > 2 and parts[0] == "TCGA" else ""


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def scan_patient_folder(folder: str | Path, masks: str = "required") -> Patient:
    """List a patient folder's slices and masks without decoding them.

    Args:
        folder: one patient's folder.
        masks: ``"required"`` (training, evaluation: every slice must have its ``_mask``
            file), ``"optional"`` (paired when present) or ``"ignored"`` (``segment``).

    Raises:
        InputError: no slices, a slice without its mask (when required), or a mask without
            its slice (unless ignored).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    images, mask_paths = {}, {}
    for path in filter(_visible, folder.iterdir()):
        match = _SLICE.match(path.stem)
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES or not match:
            continue
        (mask_paths if match.group("mask") else images)[int(match.group("num"))] = path
    if not images:
        raise InputError(folder, "no image slices (<name>_<n>.tif) in this folder")
    order = sorted(images)
    if masks == "ignored" or (masks == "optional" and not mask_paths):
        return Patient(folder.name, [images[n] for n in order], None)
    for num in sorted(set(mask_paths) - set(images)):
        raise InputError(mask_paths[num], "mask without its image slice")
    for num in order:
        if num not in mask_paths:
            raise InputError(images[num], "image slice without its mask (expected "
                             f"{images[num].stem}_mask{images[num].suffix})")
    return Patient(folder.name, [images[n] for n in order], [mask_paths[n] for n in order])


def patient_from_files(files: list[Path], patient_id: str) -> Patient:
    """A pseudo-patient made of loose slice files, in the order given (no masks)."""
    return Patient(patient_id, [Path(f) for f in files], None)


def find_patients(root: str | Path, masks: str = "required", problems: list[InputError] | None = None) -> list[Patient]:
    """All patient folders under ``root`` (the ``kaggle_3m`` folder or its parent), sorted by id.

    Args:
        root: dataset folder.
        masks: see :func:`scan_patient_folder`.
        problems: if given, an incomplete patient folder is appended here and skipped (batch
            runs go on); otherwise its error is raised.

    Raises:
        InputError: ``root`` is missing or holds no usable patient folder, or (without
            ``problems``) a patient folder is incomplete.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "no such folder")
    if (root / "kaggle_3m").is_dir():
        root = root / "kaggle_3m"
    folders = sorted(p for p in root.iterdir() if p.is_dir() and _visible(p) and _has_slices(p))
    patients = read_each(folders, lambda folder: scan_patient_folder(folder, masks), problems)
    if not patients:
        raise InputError(root, "no patient folders with image slices found")
    return patients


def _has_slices(folder: Path) -> bool:
    return any(_SLICE.match(p.stem) and p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir() if _visible(p))


def load_patient(patient: Patient, channels: int = 3) -> Patient:
    """Decode a patient's slices (and masks) into ``patient.images`` and ``patient.masks``.

    Raises:
        InputError: a slice or mask cannot be read, has the wrong channel count, or a mask's
            size differs from its slice's, or slices differ in size.
    """
    images = [read_image(f, channels) for f in patient.image_files]
    shape = images[0].shape
    for path, image in zip(patient.image_files, images):
        if image.shape != shape:
            raise InputError(path, f"slice of size {image.shape[:2]} in a patient whose first slice is {shape[:2]}")
    patient.images = np.stack(images)
    if patient.mask_files is not None:
        masks = []
        for mask_path, image in zip(patient.mask_files, images):
            mask = read_mask(mask_path)
            if mask.shape != image.shape[:2]:
                raise InputError(mask_path, f"mask of size {mask.shape} does not match its image's {image.shape[:2]}")
            masks.append(mask)
        patient.masks = np.stack(masks)
    return patient

"""Dataset type ``kaggle3m``: the LGG ``kaggle_3m`` layout (Buda et al. 2019).

Layout::

    kaggle_3m/
        TCGA_CS_4941_19960909/
            TCGA_CS_4941_19960909_1.tif        256x256x3 uint8: pre-contrast, FLAIR, post-contrast
            TCGA_CS_4941_19960909_1_mask.tif   256x256 uint8, 0 or 255
            ...
        README.md, data.csv                    ignored

A case is a patient: its slices ordered by their number as a number (``_10`` after ``_9``),
stacked into ``(3, H, W, S)`` uint8 images and an ``(H, W, S)`` binary label map. Hidden files
and folders, and anything that is not a ``<patient>_<n>.<ext>`` slice or its mask, are
ignored. Loose slice files given to ``segment`` are each a case of one slice. Outputs: a mask
and an overlay PNG per slice (:func:`gliomaseg.data.io.write_slice_outputs`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError, read_each
from .base import Case, CaseRef, register, visible
from .io import IMAGE_SUFFIXES, SliceType, is_mask_file, read_image, read_mask, verify_slices
from .labels import BinaryLabels

_SLICE = re.compile(r"^(?P<stem>.+?)_(?P<num>\d+)(?P<mask>_mask)?$")
CHANNELS = ("pre-contrast", "FLAIR", "post-contrast")


def scan_patient_folder(folder: str | Path, masks: str = "required") -> CaseRef:
    """List a patient folder's slices and masks without decoding them.

    Args:
        folder: one patient's folder.
        masks: ``"required"`` (training, evaluation: every slice must have its ``_mask``
            file), ``"optional"`` (paired when present) or ``"ignored"`` (``segment``).

    Raises:
        InputError: no slices, two slices (or masks) with one slice number (``_10`` and
            ``_010``), a slice without its mask (when required), or a mask without its slice
            (unless ignored).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    images, mask_paths = {}, {}
    for path in filter(visible, folder.iterdir()):
        match = _SLICE.match(path.stem)
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES or not match:
            continue
        found = mask_paths if match.group("mask") else images
        number = int(match.group("num"))
        if number in found:
            first, again = sorted([found[number], path])
            raise InputError(again, f"slice number {number} twice in this patient (also {first.name}); keep one")
        found[number] = path
    if not images:
        raise InputError(folder, "no image slices (<name>_<n>.tif) in this folder")
    order = sorted(images)
    slices = tuple(images[n] for n in order)
    if masks == "ignored" or (masks == "optional" and not mask_paths):
        return CaseRef(folder.name, slices, None, Path(folder.name))
    for num in sorted(set(mask_paths) - set(images)):
        raise InputError(mask_paths[num], "mask without its image slice")
    for num in order:
        if num not in mask_paths:
            raise InputError(images[num], "image slice without its mask (expected "
                             f"{images[num].stem}_mask{images[num].suffix})")
    return CaseRef(folder.name, slices, tuple(mask_paths[n] for n in order), Path(folder.name))


def find_patients(root: str | Path, masks: str = "required", problems: list[InputError] | None = None) -> list[CaseRef]:
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
    folders = sorted(p for p in root.iterdir() if p.is_dir() and visible(p) and _has_slices(p))
    patients = read_each(folders, lambda folder: scan_patient_folder(folder, masks), problems)
    if not patients and not problems:
        raise InputError(root, "no patient folders with image slices found")
    return patients


def _has_slices(folder: Path) -> bool:
    return any(_SLICE.match(p.stem) and p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir() if visible(p))


def load_patient(ref: CaseRef, channels: int | None = None) -> Case:
    """Decode a patient's slices (and masks).

    Returns:
        a case with ``(3, H, W, S)`` uint8 images and, with masks, an ``(H, W, S)`` uint8 label
        map in {0, 1}.

    Raises:
        InputError: a slice or mask cannot be read, has the wrong channel count, a mask's size
            differs from its slice's, or slices differ in size.
    """
    wanted = channels or len(CHANNELS)
    images = [read_image(f, wanted) for f in ref.images]
    shape = images[0].shape
    for path, image in zip(ref.images, images):
        if image.shape != shape:
            raise InputError(path, f"slice of size {image.shape[:2]} in a patient whose first slice is {shape[:2]}")
    label = None
    if ref.labels is not None:
        masks = []
        for mask_path, image in zip(ref.labels, images):
            mask = read_mask(mask_path)
            if mask.shape != image.shape[:2]:
                raise InputError(mask_path, f"mask of size {mask.shape} does not match its image's {image.shape[:2]}")
            masks.append(mask)
        label = np.stack(masks, axis=-1).astype(np.uint8)
    return Case(ref.id, Kaggle3m.name, np.stack([image.transpose(2, 0, 1) for image in images], axis=-1), CHANNELS[:wanted], label, BinaryLabels(),
                None, ref.images, ref.output)


@register
class Kaggle3m(SliceType):
    """LGG ``kaggle_3m`` patient folders of 3-channel TIFF slices with ``_mask`` twins."""

    name = "kaggle3m"
    description = "kaggle_3m patient folders of <patient>_<n>.tif slices (or loose slice files)"
    labels = BinaryLabels()
    channels = CHANNELS
    case_noun = "patient"
    # Axial slices as displayed (radiological convention): rows towards posterior, columns
    # towards the patient's left, slice numbers upwards (slice 1 at the skull base).
    orientation = ("P", "L", "S")

    def detect(self, path: Path) -> bool:
        if path.is_file():
            return path.suffix.lower() in IMAGE_SUFFIXES
        if not path.is_dir():
            return False
        root = path / "kaggle_3m" if (path / "kaggle_3m").is_dir() else path
        return _has_slices(root) or any(p.is_dir() and visible(p) and _has_slices(p) for p in root.iterdir())

    def find(self, root: Path, require_labels: bool = True, problems: list[InputError] | None = None) -> list[CaseRef]:
        return find_patients(root, "required" if require_labels else "ignored", problems)

    def inputs(self, path: Path, problems: list[InputError], sequences: dict[str, str] | None = None) -> list[CaseRef]:
        """A patient folder, a folder of them, or a loose slice file.

        Raises:
            InputError: a loose file named as a mask (``<stem>_mask.<ext>``), or of a type that
                is not an image; ``sequences`` given (slices have no sequences to choose).
        """
        self.reject_sequences(path, sequences)
        if path.is_file():
            if is_mask_file(path):
                raise InputError(path, "is a mask (<stem>_mask), not an image; give segment its image")
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise InputError(path, f"unsupported file type {path.suffix or '(none)'}; expected one of {sorted(IMAGE_SUFFIXES)}")
            return [CaseRef(path.stem, (path,), None, Path("."))]
        if _has_slices(path):
            return [scan_patient_folder(path, masks="ignored")]
        return find_patients(path, "ignored", problems)

    def load(self, ref: CaseRef, channels: int | None = None) -> Case:
        return load_patient(ref, channels)

    def verify(self, ref: CaseRef, full: bool = True) -> Iterator[InputError]:
        """With ``full``: slice numbers missing between 1 and the highest, and files in the
        patient folder that are neither slices nor masks; then every slice and mask
        (:func:`~.io.verify_slices`)."""
        yield from verify_slices(ref.images, ref.labels, lambda path: read_image(path, len(CHANNELS)), full)
        if not full:
            return
        folder = ref.images[0].parent
        numbers = {int(_SLICE.match(path.stem).group("num")) for path in ref.images}
        missing = sorted(set(range(1, max(numbers) + 1)) - numbers)
        if missing and len(ref.images) > 1:
            shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
            yield InputError(folder, f"slice number(s) {shown} missing ({len(missing)} of 1..{max(numbers)})")
        if ref.output != Path("."):
            known = set(ref.images) | set(ref.labels or ())
            for path in sorted(p for p in folder.iterdir() if visible(p) and p not in known):
                yield InputError(path, "extra file: not a <patient>_<n> slice or mask of this folder")

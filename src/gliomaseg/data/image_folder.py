"""Dataset type ``image_folder``: 2D slices in an ``images/`` folder with their masks beside them.

Layout::

    <root>/
        images/3000.png          PNG, JPEG, TIFF or BMP; any size; grey, RGB or RGBA
        masks/3000_mask.png      0/255 or 0/1; the image's size
        dataset.yaml             optional: patient_pattern (below)

The mask of ``images/<stem>.<ext>`` is ``masks/<stem>.<ext>`` or ``masks/<stem>_mask.<ext>``
(any image extension), or ``images/<stem>_mask.<ext>`` (such files are masks, not images).
Exactly one must match; a mask that matches no image is an error. Hidden files and files of
other types are ignored. ``segment`` needs only ``images/``.

Cases: every slice is a case of its own (``(C, H, W, 1)``, id = its stem), in natural order
(``2`` before ``10``). A ``dataset.yaml`` with ``patient_pattern: <regex>`` groups slices into
patients instead: the regex must match each image's whole stem; its group ``patient`` (else
its first group) is the patient id, and its optional group ``slice`` a slice number. The
slices of one patient form one case ``(C, H, W, S)``, ordered by slice number (else naturally
by stem), and must share one size. For example ``patient_pattern: '(?P<patient>.+)_(?P<slice>\\d+)'``
reads ``P07_12.png`` as slice 12 of patient ``P07``.

Channels: grey content (also RGB with equal channels, as many PNG datasets store it) is read
as one ``grey`` channel, true colour as ``red, green, blue``; alpha is dropped. A model's
channel count converts: 1 from colour by luminance (ITU-R 601-2, Pillow's ``L``), 3 from grey
by replication. Each kind of conversion is logged once per folder (logger ``gliomaseg``, INFO).
Outputs: a mask and an overlay PNG per slice (:func:`gliomaseg.data.io.write_slice_outputs`).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import yaml

from ..errors import InputError, read_each
from .base import Case, CaseRef, register, visible
from .io import (IMAGE_SUFFIXES, MASK_SUFFIX, SliceType, decode_image, drop_alpha, range_note, read_mask, to_uint8,
                 verify_slices, warn_once)
from .labels import BinaryLabels

log = logging.getLogger("gliomaseg")

MASK = MASK_SUFFIX
CONFIG = "dataset.yaml"
GREY, RGB = ("grey",), ("red", "green", "blue")
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}
LAYOUTS = {1: "grey", 2: "grey+alpha", 3: "RGB", 4: "RGBA"}  # decoded channel count -> words
_said: set[str] = set()  # conversion messages already logged in this process


def natural_key(text: str) -> list:
    """Sort key ordering the digit runs of ``text`` as numbers (``2`` before ``10``)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if visible(p) and p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _scan(root: Path, with_masks: bool) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """Image files and mask candidates by stem (several files per stem are kept, for the errors)."""
    images, masks = defaultdict(list), defaultdict(list)
    for path in _image_files(root / "images"):
        if path.stem.endswith(MASK):
            masks[path.stem.removesuffix(MASK)].append(path)
        else:
            images[path.stem].append(path)
    for path in _image_files(root / "masks") if with_masks else []:
        masks[path.stem.removesuffix(MASK)].append(path)
    return images, masks


def read_pattern(root: Path) -> re.Pattern | None:
    """The ``patient_pattern`` of ``root/dataset.yaml``, or ``None`` without one.

    Raises:
        InputError: ``dataset.yaml`` is not YAML, not a mapping, has keys other than
            ``patient_pattern``, or the pattern is not a regular expression with a group.
    """
    path = root / CONFIG
    if not path.is_file():
        return None
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(config, dict):
        raise InputError(path, "expected a mapping such as patient_pattern: '(?P<patient>.+)_(?P<slice>\\d+)'")
    unknown = sorted(map(str, set(config) - {"patient_pattern"}))
    if unknown:
        raise InputError(path, f"unknown key(s) {', '.join(unknown)}; the only key is patient_pattern")
    text = config.get("patient_pattern")
    if text is None:
        return None
    if not isinstance(text, str):
        raise InputError(path, f"patient_pattern must be a regular expression in quotes, got {text!r}")
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise InputError(path, f"patient_pattern {text!r} is not a valid regular expression ({exc})") from None
    if not pattern.groups:
        raise InputError(path, f"patient_pattern {text!r} has no group for the patient id")
    return pattern


def _patient_slice(pattern: re.Pattern, path: Path) -> tuple[str, int | None, Path]:
    match = pattern.fullmatch(path.stem)
    if not match:
        raise InputError(path, f"file name does not match the patient_pattern {pattern.pattern!r} of {CONFIG}")
    patient = match.group("patient" if "patient" in pattern.groupindex else 1)
    number = match.group("slice") if "slice" in pattern.groupindex else None
    if not patient:
        raise InputError(path, f"the patient_pattern of {CONFIG} gives this file an empty patient id")
    if number is not None and not number.isdigit():
        raise InputError(path, f"the patient_pattern of {CONFIG} gives this file the slice number {number!r}, not a number")
    return patient, None if number is None else int(number), path


def _group(images: dict[str, list[Path]], pattern: re.Pattern | None,
           problems: list[InputError] | None) -> list[tuple[str, list[tuple[int | None, Path]]]]:
    """Cases as ``(id, [(slice number or None, image file)] in slice order)``, sorted naturally by id."""
    if pattern is None:
        return [(stem, [(None, images[stem][0])]) for stem in sorted(images, key=natural_key)]
    patients = defaultdict(list)
    for patient, number, path in read_each([paths[0] for paths in images.values()],
                                           lambda p: _patient_slice(pattern, p), problems):
        patients[patient].append((number, path))
    return [(patient, sorted(patients[patient], key=lambda s: (s[0] or 0, natural_key(s[1].stem))))
            for patient in sorted(patients, key=natural_key)]


def _pair(stem: str, images: dict[str, list[Path]], masks: dict[str, list[Path]] | None) -> tuple[Path, Path | None]:
    """The image file of ``stem`` and its one mask (``None`` when ``masks`` is ``None``)."""
    image, *others = images[stem]
    if others:
        raise InputError(others[0], f"two images with the stem {stem} ({image.name}); keep one")
    if masks is None:
        return image, None
    found = masks.get(stem, [])
    if not found:
        raise InputError(image, f"image without its mask (expected masks/{stem}.<ext>, masks/{stem}{MASK}.<ext> "
                         f"or images/{stem}{MASK}.<ext>)")
    if len(found) > 1:
        raise InputError(image, f"{len(found)} masks match this image ({', '.join(f'{p.parent.name}/{p.name}' for p in found)}); keep one")
    return image, found[0]


def find_cases(root: str | Path, require_labels: bool = True, problems: list[InputError] | None = None) -> list[CaseRef]:
    """Every case under ``root`` (the folder holding ``images/``), naturally sorted by id.

    Returns:
        one :class:`CaseRef` per slice (``output`` ``.``) or, with a ``patient_pattern``, per
        patient (``output`` the patient id); ``labels`` the masks in image order, or ``None``
        without ``require_labels``.

    Raises:
        InputError: ``root`` is missing or has no ``images/`` folder or no image in it, a bad
            ``dataset.yaml``, no masks at all when required; or (without ``problems``) an image
            whose stem the patient pattern does not match, a slice number given twice, an image
            without its mask, a mask without its image, several masks matching one image, or
            two images with one stem.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "no such folder")
    if not (root / "images").is_dir():
        raise InputError(root, "no images/ folder (expected images/ and masks/ side by side)")
    pattern = read_pattern(root)
    images, masks = _scan(root, require_labels)
    if not images:
        raise InputError(root / "images", f"no image files ({', '.join(sorted(set(FORMATS.values())))})")
    if require_labels and not masks:
        raise InputError(root, f"no masks (masks/<stem>.<ext>, masks/<stem>{MASK}.<ext> or images/<stem>{MASK}.<ext>); "
                         "training and evaluation need them")
    if require_labels:
        orphans = [p for stem in sorted(set(masks) - set(images), key=natural_key) for p in masks[stem]]
        read_each(orphans, _orphan, problems)

    def ref(case: tuple[str, list[tuple[int | None, Path]]]) -> CaseRef:
        case_id, slices = case
        for (number, first), (same, path) in zip(slices, slices[1:]):
            if number is not None and number == same:
                raise InputError(path, f"slice {number} of patient {case_id} again (also {first.name})")
        pairs = [_pair(path.stem, images, masks if require_labels else None) for _, path in slices]
        return CaseRef(case_id, tuple(image for image, _ in pairs),
                       tuple(mask for _, mask in pairs) if require_labels else None,
                       Path(".") if pattern is None else Path(case_id))

    return read_each(_group(images, pattern, problems), ref, problems)


def _orphan(mask: Path) -> None:
    stem = mask.stem.removesuffix(MASK)
    raise InputError(mask, f"mask without its image (expected images/{stem}.<ext>)")


def _say(message: str) -> None:
    if message not in _said:
        _said.add(message)
        log.info(message)


@dataclass(frozen=True)
class _Slice:
    """One decoded image: ``array`` ``(H, W, 1 or 3)`` uint8 without alpha, whether its content
    is grey, whether it had alpha, what the file held (e.g. ``RGBA PNG``) and, for values that
    were not uint8, how they were brought to 0..255 (:func:`~.io.range_note`)."""

    array: np.ndarray
    grey: bool
    alpha: bool
    what: str
    rescaled: str | None


def _read_slice(path: Path) -> _Slice:
    """Decode one image (other dtypes rescaled to uint8 by its maximum).

    Raises:
        InputError: the file cannot be read, or is not a 2D grey or colour image.
    """
    raw = decode_image(path)
    if raw.ndim == 2:
        raw = raw[..., None]
    if raw.ndim != 3 or raw.shape[-1] not in LAYOUTS or 0 in raw.shape:
        raise InputError(path, f"expected a non-empty 2D grey or colour image, got an array of shape {raw.shape}")
    array = to_uint8(drop_alpha(raw))
    grey = array.shape[-1] == 1 or bool((array[..., 1:] == array[..., :1]).all())
    return _Slice(array, grey, raw.shape[-1] in (2, 4), f"{LAYOUTS[raw.shape[-1]]} {FORMATS[path.suffix.lower()]}",
                  range_note(raw))


def _convert(path: Path, image: _Slice, channels: int) -> np.ndarray:
    """``image`` as ``(H, W, channels)`` uint8; says what was converted, once per kind and folder."""
    array, colour = image.array, image.array.shape[-1] == 3
    notes = ["alpha dropped"] if image.alpha else []
    if image.rescaled:
        warn_once(f"{path.parent}: {image.rescaled}")
    content = ""
    if channels == 1 and colour:
        content = " with grey content" if image.grey else " with colour content"
        if image.grey:
            array = array[..., :1]
        else:  # Pillow's "L": (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16
            weights = np.array([19595, 38470, 7471], np.uint32)
            array = ((array.astype(np.uint32) @ weights + 0x8000) >> 16).astype(np.uint8)[..., None]
            notes.append("luminance, ITU-R 601-2")
    elif channels == 3 and not colour:
        array = np.repeat(array, 3, axis=-1)
        notes.append("grey replicated")
    if notes or content:
        plural = "s" if channels > 1 else ""
        _say(f"{path.parent}: {image.what}{content} read as {channels} channel{plural}" + (f" ({'; '.join(notes)})" if notes else ""))
    return array


def _read_label(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Read a mask as ``(H, W)`` uint8 in {0, 1}.

    Raises:
        InputError: unreadable, several different channels, values other than 0/255 or 0/1,
            or a size other than ``size`` (its image's).
    """
    mask = read_mask(path)
    if mask.shape != size:
        raise InputError(path, f"mask of size {mask.shape} does not match its image's {size}")
    return mask.astype(np.uint8)


@register
class ImageFolder(SliceType):
    """A folder of ``images/`` with ``masks/`` beside it (or ``_mask`` twins inside it)."""

    name = "image_folder"
    description = "a folder with images/<stem>.png and masks/<stem>.png or masks/<stem>_mask.png (PNG, JPEG, TIFF, BMP)"
    labels = BinaryLabels()
    channels = GREY
    case_noun = "slice"

    def detect(self, path: Path) -> bool:
        return path.is_dir() and bool(_image_files(path / "images"))

    def accepts_channels(self, count: int) -> bool:
        """1 or 3: grey and colour images are converted to the model's channel count."""
        return count in (1, 3)

    def find(self, root: Path, require_labels: bool = True, problems: list[InputError] | None = None) -> list[CaseRef]:
        return find_cases(root, require_labels, problems)

    def load(self, ref: CaseRef, channels: int | None = None) -> Case:
        """Read a case's slices (and masks).

        Args:
            channels: 1 or 3, the model's channel count; ``None``: 1 if every slice is grey, else 3.

        Returns:
            a case with ``(C, H, W, S)`` uint8 images (channels ``grey`` or ``red, green,
            blue``) and, with masks, an ``(H, W, S)`` uint8 label map in {0, 1}.

        Raises:
            InputError: an unreadable image or mask, a non-binary mask, a mask whose size
                differs from its image's, or slices of one patient that differ in size.
            ValueError: ``channels`` other than 1, 3 or ``None``.
        """
        if channels not in (None, 1, 3):
            raise ValueError(f"image_folder images are read with 1 or 3 channels, not {channels}")
        slices = [_read_slice(path) for path in ref.images]
        size = slices[0].array.shape[:2]
        for path, image in zip(ref.images, slices):
            if image.array.shape[:2] != size:
                raise InputError(path, f"slice of size {image.array.shape[:2]} in a patient whose first slice is {size}")
        wanted = channels or (1 if all(image.grey for image in slices) else 3)
        images = np.stack([_convert(path, image, wanted) for path, image in zip(ref.images, slices)], axis=-1)
        label = None if ref.labels is None else np.stack([_read_label(path, size) for path in ref.labels], axis=-1)
        return Case(ref.id, self.name, np.ascontiguousarray(images.transpose(2, 0, 1, 3)), GREY if wanted == 1 else RGB,
                    label, BinaryLabels(), None, ref.images, ref.output)

    def verify(self, ref: CaseRef, full: bool = True) -> Iterator[InputError]:
        """Every image and mask of the case (:func:`~.io.verify_slices`)."""
        yield from verify_slices(ref.images, ref.labels, lambda path: _read_slice(path).array, full)

"""Reading and writing 2D slices (TIFF, PNG, JPEG, BMP) with errors that name the file, and the
per-slice outputs (mask and overlay PNGs) every slice dataset type writes.

Decoding is done by tifffile (TIFF) and Pillow (PNG, JPEG); any failure of theirs becomes an
:class:`~gliomaseg.errors.InputError` saying which file and what is wrong.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from ..atomic import atomic_path
from ..errors import InputError
from .overlays import overlay

TIFF_SUFFIXES = {".tif", ".tiff"}
PIL_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
IMAGE_SUFFIXES = TIFF_SUFFIXES | PIL_SUFFIXES


def decode_image(path: Path) -> np.ndarray:
    """The raw decoded array of an image file (any dtype; ``(H, W)`` or ``(H, W, C)``).

    Raises:
        InputError: unsupported type, missing, empty, undecodable or truncated file.
    """
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise InputError(path, f"unsupported file type {suffix or '(none)'}; expected one of {sorted(IMAGE_SUFFIXES)}")
    if not path.is_file():
        raise InputError(path, "no such file")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty")
    try:
        if suffix in TIFF_SUFFIXES:
            return np.asarray(tifffile.imread(path))
        with Image.open(path) as img:
            img.load()
            return np.asarray(img)
    except (tifffile.TiffFileError, UnidentifiedImageError) as exc:
        raise InputError(path, f"not a readable {suffix[1:].upper()} image ({exc})") from None
    except Exception as exc:  # noqa: BLE001  corrupt headers make the decoders fail in many ways
        raise InputError(path, f"corrupt or truncated image ({exc.__class__.__name__}: {exc})") from None


def drop_alpha(array: np.ndarray) -> np.ndarray:
    """``array`` without its alpha channel (grey+alpha or RGBA), else unchanged."""
    if array.ndim == 3 and array.shape[-1] in (2, 4):  # grey+alpha or RGBA
        return array[..., :-1]
    return array


def read_image(path: str | Path, channels: int = 3) -> np.ndarray:
    """Read one MRI slice as ``(H, W, channels)`` uint8.

    An alpha channel is dropped. With ``channels=1`` an RGB image whose three channels are equal
    (grey saved as RGB, as in many PNG datasets) is reduced to one channel. Images of other
    integer or float types are rescaled to 0..255 by their own maximum.

    Args:
        path: TIFF, PNG or JPEG file.
        channels: channels the caller needs: 3 for LGG (pre-contrast, FLAIR, post-contrast).

    Raises:
        InputError: missing, empty, undecodable or truncated file, or a channel count other
            than ``channels``.
    """
    path = Path(path)
    array = drop_alpha(decode_image(path))
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or 0 in array.shape:
        raise InputError(path, f"expected a non-empty 2D image, got an array of shape {array.shape}")
    if channels == 1 and array.shape[-1] == 3 and np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2]):
        array = array[..., :1]
    if array.shape[-1] != channels:
        raise InputError(path, f"expected {channels} channel(s), got {array.shape[-1]}")
    return to_uint8(array)


def mask_values(path: str | Path) -> np.ndarray:
    """Read a mask's raw values as ``(H, W)`` (alpha dropped; equal channels reduced to one).

    Raises:
        InputError: the file cannot be read, or it has more than one distinct channel.
    """
    path = Path(path)
    array = drop_alpha(decode_image(path))
    if array.ndim == 3:
        if not all(np.array_equal(array[..., 0], array[..., c]) for c in range(1, array.shape[-1])):
            raise InputError(path, f"a mask must have one channel, got {array.shape[-1]} different ones")
        array = array[..., 0]
    if array.ndim != 2 or 0 in array.shape:
        raise InputError(path, f"expected a non-empty 2D mask, got an array of shape {array.shape}")
    return array


def read_mask(path: str | Path) -> np.ndarray:
    """Read a binary mask as ``(H, W)`` bool (any non-zero pixel is tumor).

    Raises:
        InputError: see :func:`mask_values`.
    """
    return mask_values(path) > 0


def to_uint8(array: np.ndarray) -> np.ndarray:
    """uint8 as is; other types rescaled to 0..255 by the array's own maximum (0 if it is not positive)."""
    if array.dtype == np.uint8:
        return array
    array = array.astype(np.float32)
    top = float(array.max())
    return (np.clip(array / top, 0, 1) * 255).astype(np.uint8) if top > 0 else np.zeros(array.shape, np.uint8)


def write_png_atomic(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` (``(H, W)`` or ``(H, W, 3)`` uint8) as PNG; the file appears only complete."""
    with atomic_path(path) as tmp:
        # Fast zlib level: a third of segment's time went into level-6 compression, for
        # files only slightly smaller (masks and overlays compress well either way).
        Image.fromarray(array).save(tmp, format="PNG", compress_level=1)


def write_slice_outputs(case, label: np.ndarray, probabilities: np.ndarray, out: Path, overwrite: bool,
                        patient: bool) -> list[dict]:
    """Write ``<stem>_mask.png`` (0/255, the input's size) and ``<stem>_overlay.png`` (the display
    channel with the mask tinted and outlined) for every slice of a slice case, under
    ``out / case.output``.

    Args:
        case: a :class:`~gliomaseg.data.base.Case` of slice images, ``(C, H, W, S)``.
        label: ``(H, W, S)`` uint8 predicted label map (non-zero: tumor).
        probabilities: ``(1, H, W, S)`` float32 tumor probabilities.
        patient: the slices form one patient (adds a patient record with the volume in voxels).

    Returns:
        one ``results.jsonl`` record per slice, then the patient record.

    Raises:
        InputError: an output file exists and ``overwrite`` is false (checked before any write).
    """
    folder = out / case.output
    targets = [(folder / f"{f.stem}_mask.png", folder / f"{f.stem}_overlay.png") for f in case.sources]
    if not overwrite:
        for path in (p for pair in targets for p in pair):
            if path.exists():
                raise InputError(path, "already exists; pass --overwrite to replace it")

    def write(index: int) -> dict:
        mask_path, overlay_path = targets[index]
        mask = label[..., index] > 0
        write_png_atomic(mask_path, mask.astype(np.uint8) * 255)
        write_png_atomic(overlay_path, overlay(case.images[..., index].transpose(1, 2, 0), mask))
        return {"type": "slice", "file": str(case.sources[index]), "patient": case.id if patient else None,
                "slice": index + 1, "tumor_area_px": int(mask.sum()),
                "max_probability": round(float(probabilities[0, ..., index].max()), 4),
                "mask": str(mask_path), "overlay": str(overlay_path)}

    # PNG encoding (zlib) and file writes release the GIL: a thread per core halves the time.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        records = list(pool.map(write, range(len(case.sources))))
    if patient:
        records.append({"type": "patient", "patient": case.id, "folder": str(case.sources[0].parent),
                        "n_slices": len(case.sources), "tumor_volume_voxels": int((label > 0).sum())})
    return records

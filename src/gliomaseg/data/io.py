"""Reading and writing 2D slices (TIFF, PNG, JPEG, BMP) with errors that name the file, and the
per-slice outputs (mask and overlay PNGs) every slice dataset type writes.

Decoding is done by tifffile (TIFF) and Pillow (PNG, JPEG); any failure of theirs becomes an
:class:`~gliomaseg.errors.InputError` saying which file and what is wrong.

Policies shared by every reader, so training, evaluation and ``segment`` see the same arrays
(README, "Bad and unusual input"):

- size: an image of more than :data:`MAX_PIXELS` pixels (Pillow's decompression-bomb limit,
  here applied to every decoder, TIFF included) is refused from its header, before decoding.
- NaN and infinite values: an error naming the file and the count (:func:`check_finite`);
  gliomaseg never guesses a value for them.
- intensities other than uint8 (:func:`to_uint8`): non-negative values are divided by their
  maximum; values with negatives (already normalised, e.g. z-scored) are rescaled from their
  minimum-maximum; either way to 0..255, with one ``warning:`` per folder (:func:`warn_once`).
- masks: 0/255 or 0/1 only (:func:`read_mask`); anything else (a JPEG-compressed mask) is an error.
"""

from __future__ import annotations

import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from ..atomic import atomic_path
from ..errors import InputError
from .base import CaseRef, DatasetType, WriteOptions, existing_outputs
from .overlays import overlay

TIFF_SUFFIXES = {".tif", ".tiff"}
PIL_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
IMAGE_SUFFIXES = TIFF_SUFFIXES | PIL_SUFFIXES
MASK_SUFFIX = "_mask"  # <stem>_mask.<ext> is the mask of <stem>.<ext> in every slice layout
MAX_PIXELS = Image.MAX_IMAGE_PIXELS  # 89,478,485: Pillow's decompression-bomb limit, for every decoder

log = logging.getLogger("gliomaseg")
_warned: set[str] = set()  # warnings already given in this process


def warn_once(message: str) -> None:
    """Log ``message`` as a warning (printed by the CLI as one ``warning:`` line) once per process."""
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def is_mask_file(path: Path) -> bool:
    """Whether ``path`` is named as a mask (``<stem>_mask.<ext>``), not an image."""
    return path.stem.lower().endswith(MASK_SUFFIX)


def check_pixels(path: Path, shape: tuple[int, ...], limit: int = MAX_PIXELS, unit: str = "pixels") -> None:
    """Refuse an image whose header announces more than ``limit`` pixels (or voxels), before
    any memory is allocated for it (a decompression bomb, or a corrupt header).

    Raises:
        InputError: naming the file, its size and the limit.
    """
    count = int(np.prod(shape, dtype=np.int64))
    if count > limit:
        raise InputError(path, f"{' x '.join(map(str, shape))} is {count:,} {unit}, over the limit of {limit:,}; "
                         "not a single MRI slice or volume (or a corrupt header)")


def check_finite(path: Path, array: np.ndarray) -> None:
    """The NaN and infinity policy of every reader: such values are an error, never filled in.

    Args:
        array: any dtype; only floating-point arrays can hold NaN or infinity.

    Raises:
        InputError: naming the file and how many NaN and infinite values it holds.
    """
    if not np.issubdtype(array.dtype, np.floating):
        return
    finite = np.isfinite(array)
    if finite.all():
        return
    nan = int(np.isnan(array).sum())
    raise InputError(path, f"{nan:,} NaN and {int(array.size - finite.sum() - nan):,} infinite value(s) among "
                     f"{array.size:,}; gliomaseg does not guess values for them: fix or mask them in the file")


def decode_image(path: Path) -> np.ndarray:
    """The raw decoded array of an image file (any dtype; ``(H, W)`` or ``(H, W, C)``).

    Raises:
        InputError: unsupported type, missing, empty, undecodable or truncated file, more than
            :data:`MAX_PIXELS` pixels, or NaN or infinite values (:func:`check_finite`).
    """
    array = _open_image(path, header_only=False)
    check_finite(path, array)
    return array


def image_size(path: Path) -> tuple[int, int]:
    """``(H, W)`` of an image file from its header alone (nothing decoded): the cheap check.

    Raises:
        InputError: as :func:`decode_image`, for what the header shows.
    """
    return _open_image(path, header_only=True)


def _open_image(path: Path, header_only: bool):
    """``(H, W)`` from the header, or the decoded array; the size limit checked in between."""
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise InputError(path, f"unsupported file type {suffix or '(none)'}; expected one of {sorted(IMAGE_SUFFIXES)}")
    if not path.is_file():
        raise InputError(path, "no such file")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty")
    try:
        if suffix in TIFF_SUFFIXES:
            with tifffile.TiffFile(path) as tif:
                shape = tif.series[0].shape
                size = shape[:-1] if len(shape) > 2 and shape[-1] <= 4 else shape
                check_pixels(path, size)
                return tuple(size[-2:]) if header_only else np.asarray(tif.asarray())
        with warnings.catch_warnings():  # over the limit: our own error below, not Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            check_pixels(path, (img.height, img.width))
            if header_only:
                return img.height, img.width
            img.load()
            return np.asarray(img)
    except InputError:
        raise
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
    note = range_note(array)
    if note:
        warn_once(f"{path.parent}: {note}")
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
    """Read a binary mask as ``(H, W)`` bool, True where the file holds 255 (or 1).

    Raises:
        InputError: see :func:`mask_values`; or values other than 0/255 or 0/1 (a
            JPEG-compressed or grey-level mask), which would change Dice if thresholded.
    """
    path = Path(path)
    mask = mask_values(path)
    values = np.unique(mask)
    if not (set(values.tolist()) <= {0, 255} or set(values.tolist()) <= {0, 1}):
        shown = values.tolist() if len(values) <= 6 else [*values[:3].tolist(), "...", *values[-3:].tolist()]
        count = f" ({len(values)} distinct)" if len(values) > 6 else ""
        raise InputError(path, f"mask values [{', '.join(map(str, shown))}]{count} are not binary (0/255 or 0/1)")
    return mask > 0


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Intensities as uint8 0..255 (see :func:`range_note` for what is done, in words).

    uint8 as is; other non-negative values divided by their maximum (an all-zero image stays
    0); values with negatives (already normalised, e.g. z-scored) rescaled from their minimum
    to their maximum. Finite values only (:func:`check_finite` runs first in every reader).
    """
    if array.dtype == np.uint8:
        return array
    array = array.astype(np.float64)
    scale = float(np.abs(array).max())  # divided first, so that no value overflows (float64 up to 1.8e308)
    if scale == 0:
        return np.zeros(array.shape, np.uint8)
    array = array / scale
    low, top = float(array.min()), float(array.max())
    if low < 0:
        array, top = array - low, top - low
    return (np.clip(array / top, 0, 1) * 255).astype(np.uint8) if top > 0 else np.zeros(array.shape, np.uint8)


def range_note(array: np.ndarray) -> str | None:
    """What :func:`to_uint8` does to ``array``, in words for a warning; ``None`` for uint8."""
    if array.dtype == np.uint8:
        return None
    low, top = float(array.min()), float(array.max())
    if low < 0:
        return (f"{array.dtype} values in [{low:.3g}, {top:.3g}] look already normalised (negative values); "
                "rescaled from their minimum-maximum to 0..255 per image: the model expects raw intensities, check the result")
    return f"{array.dtype} values in [{low:.3g}, {top:.3g}] rescaled to 0..255 by each image's maximum"


def write_png_atomic(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` (``(H, W)`` or ``(H, W, 3)`` uint8) as PNG; the file appears only complete."""
    with atomic_path(path) as tmp:
        # Fast zlib level: a third of segment's time went into level-6 compression, for
        # files only slightly smaller (masks and overlays compress well either way).
        Image.fromarray(array).save(tmp, format="PNG", compress_level=1)


def verify_slices(images: tuple[Path, ...], masks: tuple[Path, ...] | None, read, full: bool) -> Iterator[InputError]:
    """The problems of a case of slices, file by file (``gliomaseg verify``): unreadable slices
    and masks, non-binary masks, NaN, sizes that differ from the first slice's or from the
    mask's image.

    Args:
        read: the dataset type's slice reader, ``path -> (H, W, C)`` array.
        full: decode every file; ``False``: sizes from the headers only (:func:`image_size`).
    """
    first = None
    for index, path in enumerate(images):
        try:
            size = tuple(read(path).shape[:2]) if full else image_size(path)
        except InputError as exc:
            yield exc
            continue
        first = first or (path, size)
        if size != first[1]:
            yield InputError(path, f"slice of size {size} in a case whose slice {first[0].name} is {first[1]}")
        if masks is None:
            continue
        try:
            mask_size = tuple(read_mask(masks[index]).shape) if full else image_size(masks[index])
        except InputError as exc:
            yield exc
            continue
        if mask_size != size:
            yield InputError(masks[index], f"mask of size {mask_size} does not match its image's {size}")


def slice_outputs(output: Path, sources: tuple[Path, ...]) -> list[Path]:
    """``<stem>_mask.png`` and ``<stem>_overlay.png`` of every slice file, under ``output``, in
    slice order (mask, overlay, mask, ...)."""
    return [output / f"{f.stem}{suffix}" for f in sources for suffix in ("_mask.png", "_overlay.png")]


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
    paths = [out / path for path in slice_outputs(case.output, case.sources)]
    if not overwrite:
        existing_outputs(paths)
    targets = list(zip(paths[::2], paths[1::2]))

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


NIFTI_SUFFIXES = (".nii.gz", ".nii")
MAX_VOXELS = 512 ** 3  # per NIfTI volume: four times a 1 mm brain grid in each direction


def read_nifti(path: str | Path, header_only: bool = False):
    """Open a 3D NIfTI volume (nibabel), checked before its data are used.

    The header is read first: a volume that is not 3D, or of more than :data:`MAX_VOXELS`
    voxels, is refused before anything is decompressed. Then, unless ``header_only``, a
    ``.nii.gz`` is decompressed to its end with :mod:`gzip`, which checks the stream's CRC-32
    and length (RFC 1952): a corrupt or truncated file is an error here, where nibabel alone
    may read a corrupt stream without complaint.

    Returns:
        a ``nibabel.Nifti1Image`` (or ``Nifti2Image``); with ``header_only`` its data are
        still on disk (fine for shape, affine and zooms).

    Raises:
        InputError: not a ``.nii``/``.nii.gz`` name, missing, unreadable header, not 3D, too
            large, or a corrupt or truncated gzip stream, naming the file.
    """
    import gzip
    import zlib

    import nibabel as nib

    path = Path(path)
    if not path.name.endswith(NIFTI_SUFFIXES):
        raise InputError(path, "not a NIfTI file (.nii or .nii.gz)")
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        image = nib.load(str(path))
        shape = image.shape
    except Exception as exc:  # noqa: BLE001  nibabel raises many types on bad files
        raise InputError(path, f"not a readable NIfTI volume ({exc.__class__.__name__}: {exc})") from None
    if len(shape) != 3:
        raise InputError(path, f"expected a 3D volume, got shape {shape}")
    check_pixels(path, shape, MAX_VOXELS, "voxels")
    if header_only:
        return image
    try:
        data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        return type(image).from_bytes(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(path, f"corrupt or truncated gzip stream ({exc.__class__.__name__}: {exc})") from None
    except Exception as exc:  # noqa: BLE001  a short data block after a good header
        raise InputError(path, f"corrupt or truncated NIfTI data ({exc.__class__.__name__}: {exc})") from None


def nifti_array(path: str | Path, image, dtype=None) -> np.ndarray:
    """The voxels of a volume from :func:`read_nifti` as ``(X, Y, Z)`` ``dtype`` (scaled by the
    header's slope and intercept), checked finite (:func:`check_finite`).

    Raises:
        InputError: undecodable data, or NaN or infinite voxels, naming the file.
    """
    path = Path(path)
    try:
        array = np.asarray(image.dataobj, dtype=dtype)
    except Exception as exc:  # noqa: BLE001  truncated or corrupt data blocks fail in many ways
        raise InputError(path, f"corrupt or truncated NIfTI data ({exc.__class__.__name__}: {exc})") from None
    check_finite(path, array)
    return array


class SliceType(DatasetType):
    """Base of the 2D slice dataset types (``kaggle3m``, ``image_folder``): what they write,
    a mask and an overlay PNG per slice (:func:`write_slice_outputs`). Not registered itself."""

    volumetric = False

    def write(self, case, label: np.ndarray, probabilities: np.ndarray, out: Path, overwrite: bool,
              options: WriteOptions = WriteOptions()) -> list[dict]:
        return write_slice_outputs(case, label, probabilities, out, overwrite, patient=case.output.name == case.id)  # cases of a patient folder

    def outputs(self, ref: CaseRef) -> list[Path]:
        return slice_outputs(ref.output, ref.images)

"""Bad inputs become an InputError naming the file; good ones decode to the right arrays."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from gliomaseg.data.io import read_image, read_mask
from gliomaseg.data.kaggle3m import find_patients, load_patient, scan_patient_folder
from gliomaseg.errors import InputError


@pytest.fixture(scope="module")
def tumor_slice(patient_dir) -> tuple[Path, Path]:
    """(image, mask) files of a real slice whose mask shows tumor."""
    for image in sorted(patient_dir.glob(f"{patient_dir.name}_*[0-9].tif")):
        mask = image.with_name(f"{image.stem}_mask.tif")
        if tifffile.imread(mask).any():
            return image, mask
    raise AssertionError(f"no tumor slice in {patient_dir}")


def _raises_naming(path: Path, call, *args) -> InputError:
    """``call(*args)`` (``call(path)`` when no args) raises InputError about ``path``."""
    with pytest.raises(InputError) as raised:
        call(*(args or (path,)))
    assert raised.value.path == path
    assert path.name in str(raised.value)
    return raised.value


def test_truncated_tiff(tumor_slice, tmp_path):
    """A real slice cut to half its bytes raises InputError naming the file (image and mask)."""
    image, mask = tumor_slice
    for source, reader in ((image, read_image), (mask, read_mask)):
        data = source.read_bytes()
        bad = tmp_path / f"truncated_{source.name}"
        bad.write_bytes(data[: len(data) // 2])
        _raises_naming(bad, reader)


def test_random_bytes_tiff(tmp_path):
    """Random bytes named .tif raise InputError naming the file (with and without a TIFF header)."""
    rng = np.random.default_rng(1234)
    for name, head in (("random.tif", b""), ("random_header.tif", b"II*\x00")):
        bad = tmp_path / name
        bad.write_bytes(head + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
        _raises_naming(bad, read_image)
        _raises_naming(bad, read_mask)


def test_corrupt_tiff_header_zero_width(tumor_slice, tmp_path):
    """A real slice whose ImageWidth tag is overwritten with 0 raises InputError naming the file."""
    image, _ = tumor_slice
    data = bytearray(image.read_bytes())
    assert data[:4] == b"II*\x00", "tifffile writes little-endian classic TIFF"
    ifd = struct.unpack("<I", data[4:8])[0]
    for i in range(struct.unpack("<H", data[ifd:ifd + 2])[0]):
        entry = ifd + 2 + 12 * i
        if struct.unpack("<H", data[entry:entry + 2])[0] == 256:  # ImageWidth
            data[entry + 8:entry + 12] = bytes(4)
            break
    else:
        raise AssertionError("no ImageWidth tag")
    bad = tmp_path / "zero_width.tif"
    bad.write_bytes(bytes(data))
    _raises_naming(bad, read_image)


def test_text_file_named_tif(tmp_path):
    """A text file named .tif raises InputError naming the file."""
    bad = tmp_path / "notes.tif"
    bad.write_text("patient notes, not an image\n")
    _raises_naming(bad, read_image)
    _raises_naming(bad, read_mask)


def test_empty_file(tmp_path):
    """A zero-byte .tif and .png raise InputError naming the file."""
    for name in ("empty.tif", "empty.png"):
        bad = tmp_path / name
        bad.touch()
        error = _raises_naming(bad, read_image)
        assert "empty" in error.problem


def test_missing_file(tmp_path):
    """A path that does not exist raises InputError naming it."""
    _raises_naming(tmp_path / "absent_7.tif", read_image)


def test_wrong_channel_count(tumor_slice, tmp_path):
    """A 1-channel uint8 TIFF read with channels=3 raises InputError naming the file and the count."""
    flair = tifffile.imread(tumor_slice[0])[..., 1]
    bad = tmp_path / "one_channel.tif"
    tifffile.imwrite(bad, flair, photometric="minisblack")
    error = _raises_naming(bad, read_image, bad, 3)
    assert "3" in error.problem and "1" in error.problem
    # the same file is fine when one channel is asked for
    np.testing.assert_array_equal(read_image(bad, 1)[..., 0], flair)


def test_mask_of_other_size_than_its_image(tumor_slice, tmp_path):
    """load_patient on a folder whose mask is smaller than its slice raises InputError naming the mask."""
    image, mask = tumor_slice
    folder = tmp_path / "TCGA_XX_0000_20000101"
    folder.mkdir()
    shutil.copyfile(image, folder / f"{folder.name}_1.tif")
    small_mask = folder / f"{folder.name}_1_mask.tif"
    tifffile.imwrite(small_mask, tifffile.imread(mask)[:128, :200], photometric="minisblack")
    patient = scan_patient_folder(folder)
    _raises_naming(small_mask, load_patient, patient)


def test_image_without_its_mask(tumor_slice, tmp_path):
    """scan_patient_folder raises InputError naming the slice whose mask is missing."""
    image, mask = tumor_slice
    folder = tmp_path / "TCGA_XX_0001_20000101"
    folder.mkdir()
    for n in (1, 2):
        shutil.copyfile(image, folder / f"{folder.name}_{n}.tif")
    shutil.copyfile(mask, folder / f"{folder.name}_2_mask.tif")
    error = _raises_naming(folder / f"{folder.name}_1.tif", scan_patient_folder, folder)
    assert f"{folder.name}_1_mask.tif" in error.problem


def test_mask_without_its_image(tumor_slice, tmp_path):
    """scan_patient_folder raises InputError naming a mask whose slice is missing."""
    image, mask = tumor_slice
    folder = tmp_path / "TCGA_XX_0002_20000101"
    folder.mkdir()
    shutil.copyfile(image, folder / f"{folder.name}_1.tif")
    shutil.copyfile(mask, folder / f"{folder.name}_1_mask.tif")
    shutil.copyfile(mask, folder / f"{folder.name}_2_mask.tif")
    _raises_naming(folder / f"{folder.name}_2_mask.tif", scan_patient_folder, folder)


def test_empty_folder(tmp_path):
    """find_patients on an empty (or missing) folder raises InputError naming the folder."""
    empty = tmp_path / "empty_dataset"
    empty.mkdir()
    _raises_naming(empty, find_patients)
    _raises_naming(tmp_path / "no_such_dataset", find_patients)


def test_rgba_grayscale_png_with_one_channel(tumor_slice, tmp_path):
    """An RGBA (and a grey+alpha) PNG of a grey slice reads as (H, W, 1) uint8 with channels=1."""
    flair = tifffile.imread(tumor_slice[0])[..., 1]
    alpha = np.full_like(flair, 255)
    rgba = tmp_path / "flair_rgba.png"
    Image.fromarray(np.stack([flair, flair, flair, alpha], axis=-1), mode="RGBA").save(rgba)
    la = tmp_path / "flair_la.png"
    Image.fromarray(np.stack([flair, alpha], axis=-1), mode="LA").save(la)
    for path in (rgba, la):
        image = read_image(path, channels=1)
        assert image.shape == (*flair.shape, 1) and image.dtype == np.uint8
        np.testing.assert_array_equal(image[..., 0], flair)
    # the RGBA file as 3 channels keeps RGB and drops alpha
    np.testing.assert_array_equal(read_image(rgba, channels=3), np.stack([flair] * 3, axis=-1))


def test_rgb_png_with_distinct_channels_is_not_one_channel(tumor_slice, tmp_path):
    """A real 3-channel slice saved as PNG is refused with channels=1 (its channels differ)."""
    rgb = tifffile.imread(tumor_slice[0])
    assert not np.array_equal(rgb[..., 0], rgb[..., 1])
    path = tmp_path / "slice_rgb.png"
    Image.fromarray(rgb).save(path)
    np.testing.assert_array_equal(read_image(path, channels=3), rgb)
    _raises_naming(path, read_image, path, 1)


def test_read_mask_thresholds_to_bool(tumor_slice):
    """read_mask turns a real 0/255 mask into bool, True exactly where the file holds 255."""
    raw = tifffile.imread(tumor_slice[1])
    assert set(np.unique(raw).tolist()) == {0, 255}
    mask = read_mask(tumor_slice[1])
    assert mask.dtype == np.bool_ and mask.shape == raw.shape
    np.testing.assert_array_equal(mask, raw == 255)


def test_overlay_outline_equals_scipy_erosion():
    """The overlay's outline is the mask minus scipy's binary erosion (cross, border 0), on
    random masks and on a mask touching the image border."""
    from scipy import ndimage

    from gliomaseg.data.overlays import outline

    rng = np.random.default_rng(0)
    masks = [rng.random((40, 50)) < p for p in (0.2, 0.5, 0.9)] + [np.ones((8, 8), bool), np.zeros((5, 5), bool)]
    for mask in masks:
        assert np.array_equal(outline(mask), mask & ~ndimage.binary_erosion(mask))

"""Property-based tests of the readers (hypothesis): random bytes, shapes and dtypes either load
as a valid array or raise the project's own InputError naming the file, never anything else.
Bounded (``max_examples``, no deadline, derandomized) so that they run in CI within seconds."""

from __future__ import annotations

import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import tifffile
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gliomaseg.data.io import drop_alpha, nifti_array, read_image, read_mask, read_nifti
from gliomaseg.errors import InputError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # Pillow's notes on corrupt EXIF: read anyway or refused
BOUNDED = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
SUFFIXES = [".tif", ".png", ".jpg", ".bmp", ".nii", ".nii.gz"]
DTYPES = st.sampled_from([np.uint8, np.uint16, np.int16, np.float32, np.float64])


def _read_any(path: Path) -> np.ndarray:
    if path.name.endswith((".nii", ".nii.gz")):
        return nifti_array(path, read_nifti(path))
    return read_image(path, 3)


@BOUNDED
@given(data=st.binary(max_size=4096), suffix=st.sampled_from(SUFFIXES), header=st.sampled_from([b"", b"II*\x00", b"\x89PNG\r\n\x1a\n", b"\x1f\x8b"]))
def test_random_bytes_load_or_raise_input_error(data, suffix, header):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"random{suffix}"
        path.write_bytes(header + data)
        try:
            array = _read_any(path)
        except InputError as exc:
            assert exc.path == path and path.name in str(exc)
        else:
            assert np.isfinite(array).all()


@BOUNDED
@given(array=hnp.arrays(DTYPES, hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=24)))
def test_tiff_of_any_dtype_and_shape(array):
    """A TIFF of any dtype and shape: uint8 (H, W, 3) within 0..255 when it is an RGB slice with
    finite values; otherwise InputError (NaN, infinity, wrong channel count)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "slice.tif"
        rgb = array.ndim == 3 and array.shape[-1] in (3, 4)
        tifffile.imwrite(path, array, photometric="rgb" if rgb else "minisblack", extrasamples=["unassalpha"] if rgb and array.shape[-1] == 4 else None)
        try:
            image = read_image(path, 3)
        except InputError as exc:
            assert exc.path == path
            rgb = array.ndim == 3 and array.shape[-1] in (3, 4)  # RGB, or RGBA read without its alpha
            assert not rgb or not np.isfinite(array).all(), f"a finite RGB slice was refused: {exc}"
        else:
            assert image.dtype == np.uint8 and image.shape == (*array.shape[:2], 3)
            assert np.isfinite(array).all()
            array = drop_alpha(array)
            if array.dtype == np.uint8:
                assert np.array_equal(image, array)
            elif array.max() > 0 or array.min() < 0:  # rescaled: the brightest value is 255, order kept
                assert (image[array == array.max()] == 255).all()
                low, high = np.unravel_index(np.argmin(array), array.shape), np.unravel_index(np.argmax(array), array.shape)
                assert image[low] <= image[high]


@BOUNDED
@given(values=hnp.arrays(np.uint8, (12, 12), elements=st.sampled_from([0, 1, 2, 128, 254, 255])))
def test_masks_binary_or_refused(values):
    """A mask loads (True exactly where non-zero) iff its values are 0/255 or 0/1."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m_mask.png"
        tifffile.imwrite(path.with_suffix(".tif"), values)
        found = set(np.unique(values).tolist())
        binary = found <= {0, 255} or found <= {0, 1}
        try:
            mask = read_mask(path.with_suffix(".tif"))
        except InputError:
            assert not binary
        else:
            assert binary and np.array_equal(mask, values > 0)


@BOUNDED
@given(array=hnp.arrays(st.sampled_from([np.uint8, np.int16, np.float32]), hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=6)),
       gz=st.booleans(), cut=st.one_of(st.none(), st.integers(1, 400)))
def test_nifti_of_any_shape_dtype_or_truncation(array, gz, cut):
    """A NIfTI volume reads back equal (3D, finite); 2D/4D, NaN or a cut file raise InputError."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("v.nii.gz" if gz else "v.nii")
        nib.save(nib.Nifti1Image(array, np.eye(4)), str(path))
        if cut:
            path.write_bytes(path.read_bytes()[:-cut])
        try:
            volume = nifti_array(path, read_nifti(path))
        except InputError as exc:
            assert exc.path == path
            assert cut or array.ndim != 3 or not np.isfinite(array).all(), f"a good volume was refused: {exc}"
        else:
            assert array.ndim == 3 and np.array_equal(volume, array)

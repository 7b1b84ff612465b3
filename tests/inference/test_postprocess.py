"""Post-processing on hand-made masks and BraTS regions."""

from __future__ import annotations

import numpy as np
import pytest

from gliomaseg.errors import ConfigError
from gliomaseg.data.labels import BratsRegions
from gliomaseg.inference.postprocess import clean_regions, postprocess, to_label


def _two_blobs() -> np.ndarray:
    """(4, 12, 12): a 3-slice ring enclosing a hole, and a separate 1-voxel speck."""
    mask = np.zeros((4, 12, 12), bool)
    mask[0:3, 2:7, 2:7] = True
    mask[0:3, 4, 4] = False  # hole inside the ring on each slice
    mask[3, 10, 10] = True  # speck, not touching the ring even diagonally
    return mask


def test_none_returns_mask_unchanged():
    """'none' changes nothing."""
    mask = _two_blobs()
    assert np.array_equal(postprocess(mask, "none"), mask)


def test_largest_keeps_largest_component_and_fills_holes():
    """'largest' drops the speck and fills the enclosed hole, nothing else."""
    out = postprocess(_two_blobs(), "largest-3d")
    expected = np.zeros((4, 12, 12), bool)
    expected[0:3, 2:7, 2:7] = True
    assert np.array_equal(out, expected)


def test_largest_uses_3d_connectivity():
    """Blobs touching only diagonally across slices are one 26-connected component."""
    mask = np.zeros((2, 5, 5), bool)
    mask[0, 1, 1] = True
    mask[1, 2, 2] = True
    assert np.array_equal(postprocess(mask, "largest-3d"), mask)


def test_empty_mask_stays_empty():
    """An empty prediction stays empty."""
    mask = np.zeros((3, 8, 8), bool)
    assert not postprocess(mask, "largest-3d").any()


def test_unknown_method_raises():
    """An unknown method is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="erode"):
        postprocess(np.zeros((1, 2, 2), bool), "erode")


def test_min_size_drops_only_small_components():
    """'min-size:2' drops the 1-voxel speck, keeps the ring (filled); 'min-size:1000' drops all."""
    mask = _two_blobs()
    expected = np.zeros((4, 12, 12), bool)
    expected[0:3, 2:7, 2:7] = True
    assert np.array_equal(postprocess(mask, "min-size:2"), expected)
    assert not postprocess(mask, "min-size:1000").any()


def test_min_size_needs_a_number():
    """'min-size:big' is a ConfigError."""
    with pytest.raises(ConfigError, match="whole number"):
        postprocess(_two_blobs(), "min-size:big")


def _regions() -> np.ndarray:
    """WT: a 4^3 block (64 voxels) holding TC and ET, and a separate 2^3 speck (8 voxels) with ET."""
    regions = np.zeros((3, 12, 12, 12), bool)
    regions[0, 1:5, 1:5, 1:5] = True
    regions[1, 2:4, 2:4, 2:4] = True
    regions[2, 2:3, 2:3, 2:3] = True
    regions[0, 8:10, 8:10, 8:10] = True
    regions[2, 8:10, 8:10, 8:10] = True
    return regions


def test_largest_and_min_size_drop_the_speck_and_what_lies_in_it():
    regions = _regions()
    for method in ("largest-3d", "min-size:10"):
        cleaned = clean_regions(regions, method)
        assert cleaned[0].sum() == 64 and cleaned[1].sum() == 8 and cleaned[2].sum() == 1, method


def test_none_and_small_threshold_keep_everything():
    regions = _regions()
    assert np.array_equal(clean_regions(regions, "none"), regions)
    assert np.array_equal(clean_regions(regions, "min-size:8"), regions)


def test_unknown_method_is_a_config_error():
    with pytest.raises(ConfigError):
        clean_regions(_regions(), "largest")


def test_to_label_thresholds_and_cleans_brats_regions():
    """to_label on BraTS probabilities is the label map of the thresholded, cleaned regions."""
    convention = BratsRegions()
    probabilities = np.where(_regions(), 0.9, 0.1).astype(np.float32)
    label = to_label(probabilities, convention, 0.5, "largest-3d")
    assert label.dtype == np.uint8 and label.shape == (12, 12, 12)
    assert np.array_equal(convention.to_regions(label), clean_regions(_regions(), "largest-3d"))


def test_per_region_thresholds_threshold_each_channel_on_its_own():
    """A tuple of thresholds gives each region channel its own (the regions of thresholding each
    channel alone); one threshold repeated equals that threshold given once; a count that is not
    the number of channels is a ConfigError."""
    convention = BratsRegions()
    # nested probabilities (WT >= TC >= ET at every voxel), as a trained network gives them
    probabilities = np.sort(np.random.default_rng(0).random((3, 12, 12, 12)), axis=0)[::-1].astype(np.float32)
    levels = (0.2, 0.5, 0.8)
    expected = np.stack([probabilities[k] >= level for k, level in enumerate(levels)])
    assert np.array_equal(convention.to_regions(to_label(probabilities, convention, levels, "none")), expected)
    assert np.array_equal(to_label(probabilities, convention, (0.3, 0.3, 0.3), "min-size:8"),
                          to_label(probabilities, convention, 0.3, "min-size:8"))
    low_wt = convention.to_regions(to_label(probabilities, convention, (0.1, 0.5, 0.8), "none"))
    assert np.array_equal(low_wt[1:], expected[1:]) and low_wt[0].sum() > expected[0].sum()
    with pytest.raises(ConfigError, match="2 thresholds for 3"):
        to_label(probabilities, convention, (0.3, 0.5), "none")


def test_fill_holes_per_slice_equals_scipy_on_whole_slices():
    """Filling inside each slice's mask box gives exactly scipy's fill of the whole slice,
    also for masks touching the border, empty slices and nested rings."""
    from scipy import ndimage

    from gliomaseg.inference.postprocess import fill_holes_per_slice

    rng = np.random.default_rng(1)
    masks = rng.random((6, 30, 40)) < 0.45
    masks[0] = False
    ring = np.zeros((30, 40), bool)
    ring[5:20, 5:20], ring[8:17, 8:17], ring[10:15, 10:15] = True, False, True  # a ring around an island
    masks[1] = ring
    masks[2, :, 0] = True  # touches the border
    expected = np.stack([ndimage.binary_fill_holes(m) for m in masks])
    assert np.array_equal(fill_holes_per_slice(masks), expected)

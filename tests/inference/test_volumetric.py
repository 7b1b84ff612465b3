"""BraTS region post-processing on hand-made volumes."""

from __future__ import annotations

import numpy as np
import pytest

from gliomaseg.errors import ConfigError
from gliomaseg.inference.volumetric import clean_regions


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

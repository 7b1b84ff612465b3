"""Label conventions: BraTS regions on a real case unpacked from ../shared/brats."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import BRATS_TRAIN_CASE
from gliomaseg.data.brats import load_case, scan_case
from gliomaseg.data.labels import BratsRegions


@pytest.fixture(scope="module")
def label(brats_root) -> np.ndarray:
    """The real label map of the BraTS training case (2018-2021 convention, enhancing label 4)."""
    case = load_case(scan_case(brats_root / BRATS_TRAIN_CASE))
    assert case.labels == BratsRegions()
    return case.label


def test_regions_follow_the_challenge_definition(label):
    """WT = {1,2,4}, TC = {1,4}, ET = {4}; nested; converting back gives the label map."""
    convention = BratsRegions()
    regions = convention.to_regions(label)
    assert np.array_equal(regions[0], label > 0)
    assert np.array_equal(regions[1], (label == 1) | (label == 4))
    assert np.array_equal(regions[2], label == 4)
    assert not (regions[2] & ~regions[1]).any() and not (regions[1] & ~regions[0]).any()
    assert np.array_equal(convention.from_regions(regions), label)

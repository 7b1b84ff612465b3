"""Preprocessing helpers: slice stacking on hand-made arrays; histogram standardisation on real
LGG patients and a real BraTS case."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import BRATS_TRAIN_CASE, TEST_PATIENTS, TRAIN_PATIENTS, VAL_PATIENTS
from gliomaseg.config import Config, ConfigError, DataConfig
from gliomaseg.data.base import get_dataset
from gliomaseg.data.preprocessing import (Preprocessing, brain_mask, case_landmarks, fit_landmarks, normalize_volume,
                                          stack_slices, standardize)


def test_stack_slices_orders_neighbours_then_sequences():
    """Channel k * C + c of slice z is sequence c at slice z - context + k, edges repeated."""
    volume = torch.arange(2 * 3 * 3 * 5, dtype=torch.float32).reshape(2, 3, 3, 5)
    stacked = stack_slices(volume, torch.tensor([0, 4]), context=1)
    assert stacked.shape == (2, 6, 3, 3)
    for row, z in enumerate((0, 4)):
        for k, neighbour in enumerate((max(z - 1, 0), z, min(z + 1, 4))):
            for c in range(2):
                assert torch.equal(stacked[row, k * 2 + c], volume[c, :, :, neighbour])


@pytest.fixture(scope="module")
def lgg_images(lgg_root):
    """``(C, H, W, S)`` uint8 images of 7 real patients: 4 to fit on, 3 to standardise."""
    dataset = get_dataset("kaggle3m")
    refs = {ref.id: ref for ref in dataset.find(lgg_root)}
    return [dataset.load(refs[pid]).images for pid in TRAIN_PATIENTS + VAL_PATIENTS + TEST_PATIENTS]


def test_standardised_patients_share_the_standard_landmarks(lgg_images):
    """Nyul's defining property: after the transformation, every channel's brain percentiles
    are the standard scale, however far apart the patients' own percentiles were (but for
    percentiles at grey level 0, which stay 0)."""
    landmarks = np.asarray(fit_landmarks(lgg_images[:4], volumetric=False))
    assert landmarks.shape == (3, 11) and np.all(np.diff(landmarks, axis=1) > 0)
    spreads_before, spreads_after = [], []
    for images in lgg_images[4:]:
        brain = brain_mask(images, volumetric=False)
        before = case_landmarks(images, brain)
        after = case_landmarks(standardize(images, brain, landmarks), brain)
        inside = before > 0  # a percentile at grey level 0 stays 0 (the map goes through 0 -> 0)
        np.testing.assert_allclose(after[inside], landmarks[inside], atol=1.0)  # within one grey level of the source
        np.testing.assert_array_equal(after[~inside], 0)
        spreads_before.append(np.abs(before - landmarks)[inside].max())
        spreads_after.append(np.abs(after - landmarks)[inside].max())
    assert max(spreads_after) < 0.2 * max(spreads_before)


def test_fitting_one_patient_gives_its_own_landmarks(lgg_images):
    """With one training case, the linear pre-mapping is the identity: the standard scale is
    that case's percentiles, and standardising the case changes it by at most the ties kept
    increasing."""
    images = lgg_images[0]
    brain = brain_mask(images, volumetric=False)
    own = case_landmarks(images, brain)
    np.testing.assert_allclose(fit_landmarks([images], volumetric=False), own, atol=1e-3)


def test_background_stays_zero_and_order_is_kept(lgg_images):
    """0 -> 0 and a strictly increasing map: background and intensity order survive, and the
    slice recipe's normalisation still yields [0, 1.5]."""
    landmarks = fit_landmarks(lgg_images[:4], volumetric=False)
    images = lgg_images[4]
    out = standardize(images, brain_mask(images, volumetric=False), landmarks)
    assert out.dtype == np.float32 and out.shape == images.shape
    for c in range(3):
        assert np.all(out[c][images[c] == 0] == 0)
        levels = np.unique(images[c])
        mapped = np.array([out[c][images[c] == v][0] for v in levels])
        assert np.all(np.diff(mapped) > 0)
    normalized = normalize_volume(out)
    assert normalized.min() == 0 and normalized.max() <= 1.5


def test_volumes_keep_their_brain_mask(brats_root):
    """A real BraTS case: the non-zero brain mask (the z-score's) is the same after the map,
    and each sequence's brain percentiles are the standard scale."""
    dataset = get_dataset("brats")
    ref = next(ref for ref in dataset.find(brats_root) if ref.id == BRATS_TRAIN_CASE)
    images = dataset.load(ref).images
    brain = brain_mask(images, volumetric=True)
    landmarks = np.asarray(fit_landmarks([images], volumetric=True)) * np.array([[1.0], [2.0], [0.5], [1.5]])
    out = standardize(images, brain, tuple(map(tuple, landmarks)))
    np.testing.assert_array_equal(out != 0, images != 0)
    np.testing.assert_allclose(case_landmarks(out, brain), landmarks, rtol=1e-3)


def test_landmarks_are_checked():
    """Landmarks without histogram standardisation, rows of the wrong length or order, and
    histogram standardisation without landmarks (nothing fitted) are configuration errors;
    fitting on no case, or landmarks for another channel count, a ValueError."""
    row = [float(v) for v in range(11)]
    with pytest.raises(ConfigError, match="data.landmarks"):
        Config.from_dict({"data": {"landmarks": [row]}})
    with pytest.raises(ConfigError, match="data.landmarks"):
        Config.from_dict({"data": {"standardize": "histogram", "landmarks": [row[:5]]}})
    with pytest.raises(ConfigError, match="data.landmarks"):
        Config.from_dict({"data": {"standardize": "histogram", "landmarks": [row[::-1]]}})
    with pytest.raises(ConfigError, match="data.standardize"):
        Config.from_dict({"data": {"standardize": "nyul"}})
    with pytest.raises(ConfigError, match="landmarks is empty"):
        Preprocessing.from_config(DataConfig(standardize="histogram"), volumetric=False)
    with pytest.raises(ValueError, match="at least one training case"):
        fit_landmarks([], volumetric=False)
    with pytest.raises(ValueError, match="2 channel"):
        standardize(np.zeros((3, 4, 4, 1), np.uint8), np.ones((4, 4, 1), bool), (tuple(row), tuple(row)))

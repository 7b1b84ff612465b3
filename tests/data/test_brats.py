"""BraTS reader and 3D crop on real cases unpacked from ../shared/brats."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from brats_cases import add_foreign_label, copy_as_2023, copy_case, drop_sequence, replace_with_text, shrink_sequence
from conftest import BRATS_TRAIN_CASE
from gliomaseg.data.brats import find_cases, load_case, scan_case
from gliomaseg.data.labels import BratsRegions
from gliomaseg.data.preprocessing import nonzero_box, uncrop, zscore_brain
from gliomaseg.errors import InputError

CASE = BRATS_TRAIN_CASE


@pytest.fixture(scope="module")
def volume(brats_root):
    return load_case(scan_case(brats_root / CASE))


def test_reads_2018_case(volume):
    """Four sequences and a label map share the 240x240x155 grid at 1 mm; labels in {0,1,2,4}."""
    assert volume.images.shape == (4, 240, 240, 155) and volume.images.dtype == np.float32
    assert volume.label.shape == (240, 240, 155)
    assert set(np.unique(volume.label)) <= {0, 1, 2, 4}
    assert volume.spacing == (1.0, 1.0, 1.0)


def test_reads_2023_names_and_labels(brats_root, volume, tmp_path):
    """A 2023-named copy reads to the same volumes, and its regions equal the 2018 case's."""
    case = scan_case(copy_as_2023(brats_root / CASE, tmp_path))
    assert case.info["convention"] == "2023"
    copy = load_case(case)
    assert copy.labels == BratsRegions(enhancing_label=3) and volume.labels == BratsRegions(enhancing_label=4)
    assert np.array_equal(copy.images, volume.images)
    assert np.array_equal(copy.labels.to_regions(copy.label), volume.labels.to_regions(volume.label))


def test_crop_and_inverse_restore_the_original_grid(volume):
    """The brain box holds every non-zero voxel; uncrop of the crop is the original exactly."""
    box = nonzero_box(volume.images)
    cropped = volume.images[(slice(None), *box)]
    assert cropped.shape[1:] < volume.images.shape[1:]
    assert np.count_nonzero(cropped) == np.count_nonzero(volume.images)
    assert np.array_equal(uncrop(cropped, box, volume.images.shape[1:]), volume.images)
    assert np.array_equal(uncrop(volume.label[box], box, volume.label.shape), volume.label)


def test_zscore_over_brain(volume):
    """Each sequence has mean 0 and std 1 over the brain; the background stays 0."""
    normalized = zscore_brain(volume.images)
    brain = np.any(volume.images != 0, axis=0)
    for channel in normalized:
        assert abs(float(channel[brain].mean())) < 1e-3
        assert abs(float(channel[brain].std()) - 1) < 1e-3
        assert not channel[~brain].any()


def test_missing_sequence_is_reported(brats_root, tmp_path):
    """A case without its FLAIR is an InputError naming the case and the file."""
    folder = copy_case(brats_root / CASE, tmp_path)
    drop_sequence(folder, "flair")
    with pytest.raises(InputError, match=f"{CASE}_flair.nii.gz.*lacks this sequence"):
        scan_case(folder)


def test_mismatched_shape_and_bad_labels_are_reported(brats_root, tmp_path):
    """A sequence of another shape, and a label value outside the convention, are InputErrors."""
    folder = copy_case(brats_root / CASE, tmp_path)
    shrink_sequence(folder, "t2")
    with pytest.raises(InputError, match=f"{CASE}_t2.nii.gz.*shape"):
        load_case(scan_case(folder))
    shutil.copy(brats_root / CASE / f"{CASE}_t2.nii.gz", folder / f"{CASE}_t2.nii.gz")
    add_foreign_label(folder, 7)
    with pytest.raises(InputError, match=r"label values \[7\]"):
        load_case(scan_case(folder))


def test_non_nifti_file_is_reported(brats_root, tmp_path):
    """A text file named like a sequence is an InputError naming it."""
    folder = copy_case(brats_root / CASE, tmp_path)
    replace_with_text(folder, "t1")
    with pytest.raises(InputError, match=f"{CASE}_t1.nii.gz.*not a readable NIfTI"):
        load_case(scan_case(folder))


def test_find_cases_lists_case_folders(brats_root):
    """find_cases accepts the brats folder or its parent, sorted, every listed case complete."""
    for root in (brats_root, brats_root.parent):
        cases = find_cases(root)
        ids = [c.id for c in cases]
        assert CASE in ids and ids == sorted(ids)
        assert all(len(c.images) == 4 and c.labels is not None for c in cases)


def test_region_metrics_match_monai_on_a_real_case(volume):
    """Per-region Dice and HD95 (mm, anisotropic spacing) equal MONAI's DiceMetric and
    compute_hausdorff_distance on the real label map against a shifted copy."""
    import torch
    from monai.metrics import DiceMetric, compute_hausdorff_distance
    from scipy import ndimage

    from gliomaseg.metrics import BRATS_EMPTY_HD95, brats_region_metrics

    truth = volume.labels.to_regions(volume.label)
    pred = np.stack([ndimage.shift(r, (2, -1, 1), order=0) for r in truth])
    spacing = (1.0, 1.0, 2.5)  # anisotropic, so the spacing must be used
    as_tensor = lambda a: torch.from_numpy(a[None].astype(np.float32))  # noqa: E731
    monai_dice = DiceMetric(include_background=True, reduction="none")(as_tensor(pred), as_tensor(truth))[0]
    monai_hd = compute_hausdorff_distance(as_tensor(pred), as_tensor(truth), include_background=True,
                                          percentile=95, spacing=list(spacing))[0]
    for index in range(3):
        got = brats_region_metrics(pred[index], truth[index], spacing)
        assert got["dice"] == pytest.approx(float(monai_dice[index]), abs=1e-6)
        assert got["hd95"] == pytest.approx(float(monai_hd[index]), rel=1e-5)
        assert got["true_volume_cm3"] == pytest.approx(truth[index].sum() * 2.5 / 1000)
    empty = np.zeros(truth.shape[1:], bool)
    assert brats_region_metrics(empty, empty, spacing)["dice"] == 1.0
    assert brats_region_metrics(empty, empty, spacing)["hd95"] == 0.0
    assert brats_region_metrics(truth[2], empty, spacing)["hd95"] == BRATS_EMPTY_HD95

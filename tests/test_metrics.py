"""Metrics against hand-counted arrays, MedPy, and a brute-force HD95."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from medpy.metric import binary as medpy_binary
from scipy import ndimage
from scipy.spatial.distance import cdist

from gliomaseg.data.kaggle3m import load_patient, scan_patient_folder
from gliomaseg.metrics import (
    confusion_counts,
    hd95,
    metrics_from_counts,
    overlap_metrics,
    segmentation_metrics,
)


def _box(shape, rows, cols) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[rows[0]:rows[1], cols[0]:cols[1]] = True
    return mask


def _surface(mask: np.ndarray) -> np.ndarray:
    """Coordinates of the surface voxels: the mask minus its erosion (cross structure, zero border)."""
    return np.argwhere(mask & ~ndimage.binary_erosion(mask))


def _directed(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances from each pred surface voxel to the nearest truth surface voxel, and back.

    All pairwise distances by cdist, a block of pred rows at a time to keep memory small.
    """
    pred_surface, truth_surface = _surface(pred), _surface(truth)
    forward = np.empty(len(pred_surface))
    backward = np.full(len(truth_surface), np.inf)
    for start in range(0, len(pred_surface), 512):
        d = cdist(pred_surface[start:start + 512], truth_surface)
        forward[start:start + 512] = d.min(axis=1)
        backward = np.minimum(backward, d.min(axis=0))
    return forward, backward


def brute_hd95(pred: np.ndarray, truth: np.ndarray) -> float:
    """max of the two directed 95th percentiles (np.percentile, linear interpolation)."""
    forward, backward = _directed(pred, truth)
    return max(np.percentile(forward, 95), np.percentile(backward, 95))


def brute_hd95_float32(pred: np.ndarray, truth: np.ndarray) -> float:
    """Same as brute_hd95, but with the percentile taken like MONAI: float32 torch.quantile."""
    return max(torch.quantile(torch.tensor(d, dtype=torch.float32), 0.95).item() for d in _directed(pred, truth))


def brute_hd95_pooled(pred: np.ndarray, truth: np.ndarray) -> float:
    """MedPy's definition: one 95th percentile over both directions' distances pooled."""
    return float(np.percentile(np.concatenate(_directed(pred, truth)), 95))


def assert_hd95_matches_brute_force(pred: np.ndarray, truth: np.ndarray) -> None:
    """gliomaseg.metrics.hd95 equals the brute-force HD95.

    MONAI's surface is the same as ours (mask XOR its scipy erosion with the default cross
    structure; it crops to the union's bounding box with a margin of 1 and pads with zeros,
    which equals eroding with a zero border). What differs is precision: MONAI stores the
    distances as float32 and takes the percentile with float32 ``torch.quantile``, whose
    interpolation position ``(n - 1) * 0.95`` is rounded in float32. That alone makes it
    deviate from the float64 ``np.percentile`` by up to about 1e-5 relative on a few
    thousand surface voxels, so the float64 comparison uses rel 1e-5 and the comparison with
    the same distances through float32 ``torch.quantile`` uses 1e-6.
    """
    got = hd95(pred, truth)
    assert got == pytest.approx(brute_hd95(pred, truth), rel=1e-5, abs=1e-6)
    assert got == pytest.approx(brute_hd95_float32(pred, truth), rel=1e-6, abs=1e-6)


# --- overlap metrics on a hand-counted 10x10 grid -------------------------------------------

# truth: rows 1..5, cols 1..6 -> 5 x 6 = 30 pixels; pred: rows 3..7, cols 4..8 -> 5 x 5 = 25 pixels
# overlap: rows 3..5, cols 4..6 -> 3 x 3 = 9 pixels
GRID_TRUTH = _box((10, 10), (1, 6), (1, 7))
GRID_PRED = _box((10, 10), (3, 8), (4, 9))
TP, FP, FN = 9, 25 - 9, 30 - 9  # 9, 16, 21
TN = 100 - TP - FP - FN  # 54


def test_confusion_counts_by_hand():
    """TP, FP, FN, TN of the 10x10 grid are the hand-counted 9, 16, 21, 54."""
    assert GRID_TRUTH.sum() == 30 and GRID_PRED.sum() == 25
    assert confusion_counts(GRID_PRED, GRID_TRUTH).tolist() == [TP, FP, FN, TN]


def test_overlap_metrics_by_hand():
    """Dice, IoU, precision, recall, specificity, accuracy and Tversky equal the hand formulas."""
    got = overlap_metrics(GRID_PRED, GRID_TRUTH)
    expected = {
        "dice": 2 * 9 / (2 * 9 + 16 + 21),  # 18/55
        "iou": 9 / (9 + 16 + 21),  # 9/46
        "precision": 9 / 25,
        "recall": 9 / 30,
        "specificity": 54 / (54 + 16),
        "accuracy": (9 + 54) / 100,
        "tversky": 9 / (9 + 0.7 * 21 + 0.3 * 16),  # alpha 0.7 on FN, beta 0.3 on FP: 9/28.5
    }
    assert got == pytest.approx(expected, rel=1e-12)
    # alpha and beta swapped would give 9/26.5: the grid distinguishes them
    assert got["tversky"] != pytest.approx(9 / (9 + 0.3 * 21 + 0.7 * 16))


def test_overlap_metrics_swap_pred_and_truth():
    """Swapping pred and truth swaps precision and recall and keeps Dice and IoU."""
    forward, backward = overlap_metrics(GRID_PRED, GRID_TRUTH), overlap_metrics(GRID_TRUTH, GRID_PRED)
    assert backward["precision"] == pytest.approx(forward["recall"])
    assert backward["recall"] == pytest.approx(forward["precision"])
    assert backward["dice"] == pytest.approx(forward["dice"])
    assert backward["iou"] == pytest.approx(forward["iou"])


def test_both_empty_conventions():
    """Both masks empty: Dice, IoU, Tversky 1, HD95 0; precision and recall NaN."""
    empty = np.zeros((8, 8), bool)
    got = segmentation_metrics(empty, empty)
    assert got["dice"] == 1.0 and got["iou"] == 1.0 and got["tversky"] == 1.0
    assert got["hd95"] == 0.0
    assert got["specificity"] == 1.0 and got["accuracy"] == 1.0
    assert math.isnan(got["precision"]) and math.isnan(got["recall"])
    assert hd95(np.zeros((3, 8, 8), bool), np.zeros((3, 8, 8), bool)) == 0.0


def test_one_empty_conventions():
    """Exactly one mask empty: HD95 NaN, Dice 0; the ratio with a zero denominator is NaN."""
    empty = np.zeros((10, 10), bool)
    empty_pred = segmentation_metrics(empty, GRID_TRUTH)
    assert math.isnan(empty_pred["hd95"])
    assert empty_pred["dice"] == 0.0 and empty_pred["recall"] == 0.0
    assert math.isnan(empty_pred["precision"])
    empty_truth = segmentation_metrics(GRID_PRED, empty)
    assert math.isnan(empty_truth["hd95"])
    assert empty_truth["dice"] == 0.0 and empty_truth["precision"] == 0.0
    assert math.isnan(empty_truth["recall"])


# --- real masks against MedPy ---------------------------------------------------------------


@pytest.fixture(scope="module")
def real_truth(patient_dir) -> np.ndarray:
    """(S, 256, 256) bool tumor masks of a real patient."""
    label = load_patient(scan_patient_folder(patient_dir)).label  # (256, 256, S) uint8
    masks = np.moveaxis(label > 0, -1, 0)
    assert masks.sum() > 100
    return masks


def _perturbations(truth: np.ndarray) -> dict[str, np.ndarray]:
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)
    return {
        "dilated": ndimage.binary_dilation(truth, in_plane, iterations=3),
        "eroded": ndimage.binary_erosion(truth, in_plane, iterations=2),
        "shifted": ndimage.shift(truth.astype(np.uint8), (0, 5, -4), order=0).astype(bool),
        "shifted_dilated": ndimage.binary_dilation(np.roll(truth, (1, -3, 6), axis=(0, 1, 2)), iterations=1),
    }


@pytest.mark.parametrize("kind", ["dilated", "eroded", "shifted", "shifted_dilated"])
def test_overlap_matches_medpy_on_real_volume(real_truth, kind):
    """Dice, precision and recall equal MedPy's dc, precision and recall on a real perturbed volume."""
    pred = _perturbations(real_truth)[kind]
    assert pred.any() and not np.array_equal(pred, real_truth)
    got = overlap_metrics(pred, real_truth)
    assert got["dice"] == pytest.approx(medpy_binary.dc(pred, real_truth), rel=1e-12)
    assert got["precision"] == pytest.approx(medpy_binary.precision(pred, real_truth), rel=1e-12)
    assert got["recall"] == pytest.approx(medpy_binary.recall(pred, real_truth), rel=1e-12)
    assert 0 < got["dice"] < 1


def test_overlap_matches_medpy_per_real_slice(real_truth):
    """Per slice with tumor in both masks, Dice, precision and recall equal MedPy's."""
    pred_volume = _perturbations(real_truth)["shifted_dilated"]
    checked = 0
    for pred, truth in zip(pred_volume, real_truth):
        if not pred.any() or not truth.any():
            continue
        got = overlap_metrics(pred, truth)
        assert got["dice"] == pytest.approx(medpy_binary.dc(pred, truth), rel=1e-12)
        assert got["precision"] == pytest.approx(medpy_binary.precision(pred, truth), rel=1e-12)
        assert got["recall"] == pytest.approx(medpy_binary.recall(pred, truth), rel=1e-12)
        checked += 1
    assert checked >= 3


# --- HD95 against a brute-force implementation --------------------------------------------------


def test_hd95_hand_made_2d():
    """HD95 of two offset squares in 2D equals the brute force."""
    truth = _box((20, 20), (4, 12), (4, 12))
    pred = _box((20, 20), (6, 15), (5, 16))
    assert_hd95_matches_brute_force(pred, truth)
    assert_hd95_matches_brute_force(truth, pred)
    # identical masks: every surface distance is 0
    assert hd95(truth, truth) == 0.0


def test_hd95_translation_is_the_shift():
    """A square shifted by 3 pixels along one axis has HD95 3 (hand value and brute force agree)."""
    truth = _box((30, 30), (5, 20), (5, 20))
    pred = np.roll(truth, 3, axis=1)
    assert brute_hd95(pred, truth) == pytest.approx(3.0)
    assert hd95(pred, truth) == pytest.approx(3.0, abs=1e-6)


def test_hd95_touching_the_border_2d():
    """Masks touching the image border: their border pixels count as surface, as in the brute force."""
    truth = _box((16, 16), (0, 10), (0, 16))
    pred = _box((16, 16), (0, 13), (2, 16))
    assert_hd95_matches_brute_force(pred, truth)


def test_hd95_hand_made_3d():
    """HD95 of a ball and an offset box in 3D equals the brute force."""
    z, y, x = np.mgrid[:14, :16, :18]
    ball = (z - 7) ** 2 + (y - 8) ** 2 + (x - 8) ** 2 <= 25
    box = np.zeros_like(ball)
    box[3:11, 6:14, 7:16] = True
    assert_hd95_matches_brute_force(box, ball)
    assert_hd95_matches_brute_force(ball, box)


@pytest.mark.parametrize("seed", range(6))
def test_hd95_random_blobs(seed):
    """HD95 of random smoothed blobs (2D and 3D, touching the border) equals the brute force."""
    rng = np.random.default_rng(seed)
    shape = (24, 28) if seed % 2 else (8, 20, 22)
    pred = ndimage.binary_opening(rng.random(shape) < 0.55)
    truth = ndimage.binary_dilation(rng.random(shape) < 0.03, iterations=2)
    assert pred.any() and truth.any()
    assert_hd95_matches_brute_force(pred, truth)


@pytest.fixture(scope="module")
def real_truth_small(real_truth) -> np.ndarray:
    """The real tumor volume at every second pixel in-plane (keeps the brute force's cdist small)."""
    return real_truth[:, ::2, ::2]


@pytest.mark.parametrize("kind", ["dilated", "eroded", "shifted_dilated"])
def test_hd95_real_volume(real_truth_small, kind):
    """HD95 of a real tumor volume and a perturbed copy equals the brute force."""
    pred = _perturbations(real_truth_small)[kind]
    assert_hd95_matches_brute_force(pred, real_truth_small)


def test_hd95_real_slice(real_truth):
    """HD95 of the real slice with the largest tumor and its shifted, dilated copy equals the brute force."""
    truth = real_truth[real_truth.sum(axis=(1, 2)).argmax()]
    pred = ndimage.binary_dilation(np.roll(truth, (-4, 7), axis=(0, 1)), iterations=2)
    assert_hd95_matches_brute_force(pred, truth)


def test_hd95_differs_from_medpy_by_definition():
    """MedPy's hd95 (pooled directions) differs from gliomaseg's (larger directed percentile) on a far blob."""
    # MedPy pools both directions' distances before taking one 95th percentile; gliomaseg (MONAI)
    # takes each direction's 95th percentile and reports the larger. Both use the same surface
    # (mask minus its erosion with the cross structure) and exact Euclidean distances, so
    # medpy.hd95 equals the pooled brute force and gliomaseg's hd95 the max-of-directed one.
    # A far blob holding 8 of the prediction's 124 surface pixels (6.5 % > 5 %) dominates the
    # directed 95th percentile, but only 8 of the 240 pooled distances (3.3 % < 5 %), so MedPy
    # gives 0 while gliomaseg gives about the blob's distance.
    truth = _box((64, 64), (4, 34), (4, 34))  # 30 x 30: 116 surface pixels
    pred = truth.copy()
    pred[55:58, 55:58] = True  # 3 x 3 blob: 8 surface pixels, far from the square
    assert len(_surface(truth)) == 116 and len(_surface(pred)) == 124
    ours, medpy_value = hd95(pred, truth), medpy_binary.hd95(pred, truth)
    assert medpy_value == pytest.approx(brute_hd95_pooled(pred, truth), rel=1e-9)
    assert ours == pytest.approx(brute_hd95(pred, truth), rel=1e-5)
    assert medpy_value == 0.0
    assert ours > 25  # the blob is about 30 pixels from the square's corner


@pytest.mark.parametrize("kind", ["dilated", "shifted", "shifted_dilated"])
def test_medpy_hd95_is_the_pooled_brute_force_on_real_volume(real_truth_small, kind):
    """On real masks, medpy.hd95 is the pooled percentile and never above gliomaseg's directed max."""
    pred = _perturbations(real_truth_small)[kind]
    medpy_value = medpy_binary.hd95(pred, real_truth_small)
    assert medpy_value == pytest.approx(brute_hd95_pooled(pred, real_truth_small), rel=1e-9)
    assert medpy_value <= hd95(pred, real_truth_small) + 1e-5


# --- pooled counts ------------------------------------------------------------------------------


def test_metrics_from_pooled_counts_equal_metrics_of_concatenation(lgg_root, real_truth):
    """Summed confusion counts over patients give the metrics of the concatenated volumes."""
    from conftest import TRAIN_PATIENTS

    second = np.moveaxis(load_patient(scan_patient_folder(lgg_root / TRAIN_PATIENTS[0])).label > 0, -1, 0)
    truths = [real_truth, second]
    preds = [_perturbations(real_truth)["shifted_dilated"], _perturbations(second)["eroded"]]
    pooled = sum(confusion_counts(p, t) for p, t in zip(preds, truths))
    concatenated = overlap_metrics(np.concatenate(preds), np.concatenate(truths))
    assert metrics_from_counts(*pooled) == pytest.approx(concatenated, rel=1e-12)
    # and pooling is not the mean of the per-patient values
    per_patient = [overlap_metrics(p, t)["dice"] for p, t in zip(preds, truths)]
    assert concatenated["dice"] != pytest.approx(np.mean(per_patient), rel=1e-6)


def _cube(mask: np.ndarray, corner: tuple[int, int, int], side: int) -> None:
    x, y, z = corner
    mask[x:x + side, y:y + side, z:z + side] = True


def test_lesion_wise_metrics_by_hand():
    """BraTS 2023 lesion-wise scores of a hand-made case (1 mm voxels), computed by hand:
    lesion A (6^3 = 216 voxels) predicted shifted by one voxel: Dice 2*180/432 = 0.8333, HD95
    1 mm; lesion B (4^3 = 64 > 50 mm^3) missed: Dice 0, HD95 374; lesion C (3^3 = 27 <= 50
    mm^3) predicted exactly: left out, and its component is no false positive; one predicted
    cube far from every lesion: a false positive, Dice 0, HD95 374. Score over A, B and the
    false positive: Dice 0.8333 / 3, HD95 (1 + 374 + 374) / 3."""
    from gliomaseg.metrics import lesion_wise_metrics

    truth, pred = np.zeros((40, 40, 40), bool), np.zeros((40, 40, 40), bool)
    _cube(truth, (5, 5, 5), 6)
    _cube(pred, (6, 5, 5), 6)
    _cube(truth, (25, 25, 25), 4)
    _cube(truth, (5, 30, 30), 3)
    _cube(pred, (5, 30, 30), 3)
    _cube(pred, (30, 5, 30), 3)
    got = lesion_wise_metrics(pred, truth, (1.0, 1.0, 1.0))
    assert got["lesions"] == 2 and got["detected"] == 1 and got["false_positives"] == 1
    assert got["lesion_dice"] == pytest.approx((2 * 180 / 432) / 3)
    assert got["lesion_hd95"] == pytest.approx((1.0 + 374.0 + 374.0) / 3)
    # 2 mm voxels: C is 216 mm^3 and counts (perfect: Dice 1, HD95 0); HD95 of A doubles to 2 mm
    got = lesion_wise_metrics(pred, truth, (2.0, 2.0, 2.0))
    assert got["lesions"] == 3 and got["detected"] == 2
    assert got["lesion_dice"] == pytest.approx((2 * 180 / 432 + 1.0) / 4)
    assert got["lesion_hd95"] == pytest.approx((2.0 + 374.0 + 0.0 + 374.0) / 4)


def test_lesion_wise_grouping_and_empty_cases():
    """Ground-truth fragments 2 voxels apart are one lesion (within the 3-voxel growth), 8
    apart two; empty truth and prediction score Dice 1, HD95 0; a prediction on an empty
    truth gives a false positive per predicted component (predictions are not grouped: the
    two fragments are two; Dice 0, HD95 374); nothing predicted on a lesion: Dice 0."""
    from gliomaseg.metrics import lesion_wise_metrics

    spacing = (1.0, 1.0, 1.0)
    near, far = np.zeros((30, 30, 30), bool), np.zeros((30, 30, 30), bool)
    _cube(near, (5, 5, 5), 4)
    _cube(near, (5, 5, 11), 4)  # a gap of 2 voxels (z = 9, 10)
    _cube(far, (5, 5, 5), 4)
    _cube(far, (5, 5, 17), 4)  # a gap of 8 voxels
    assert lesion_wise_metrics(near, near, spacing)["lesions"] == 1
    assert lesion_wise_metrics(far, far, spacing)["lesions"] == 2
    assert lesion_wise_metrics(far, far, spacing)["lesion_dice"] == 1.0
    empty = np.zeros_like(near)
    assert lesion_wise_metrics(empty, empty, spacing) == {"lesion_dice": 1.0, "lesion_hd95": 0.0, "lesions": 0.0,
                                                          "detected": 0.0, "false_positives": 0.0}
    false = lesion_wise_metrics(near, empty, spacing)
    assert (false["lesion_dice"], false["lesion_hd95"], false["false_positives"]) == (0.0, 374.0, 2.0)
    missed = lesion_wise_metrics(empty, far, spacing)
    assert (missed["lesion_dice"], missed["lesion_hd95"], missed["detected"]) == (0.0, 374.0, 0.0)

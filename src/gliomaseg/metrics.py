"""Overlap and distance metrics for binary masks, per slice (2D) and per patient (3D).

Definitions (TP, FP, FN, TN counted over the voxels of one mask pair):

- Dice (DSC) = 2TP / (2TP + FP + FN); IoU (Jaccard) = TP / (TP + FP + FN)
- precision = TP / (TP + FP); recall (sensitivity) = TP / (TP + FN); specificity = TN / (TN + FP)
- pixel accuracy = (TP + TN) / all
- Tversky index = TP / (TP + alpha FN + beta FP), alpha = 0.7 on false negatives, beta = 0.3 on
  false positives (Salehi et al. 2017)
- HD95: 95th percentile Hausdorff distance between the mask surfaces, in pixels (voxel
  spacing 1 in every axis), computed by MONAI ``compute_hausdorff_distance(percentile=95)``:
  the larger of the two directed 95th-percentile surface distances.

Empty masks: when truth and prediction are both empty, Dice, IoU and Tversky are 1 and HD95
is 0 (the BraTS convention); a ratio whose denominator is 0 otherwise (precision of an empty
prediction, recall of an empty truth) is NaN, and HD95 with exactly one empty mask is NaN.
Summaries skip NaN values and report how many remain.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

TVERSKY_ALPHA = 0.7  # weight of false negatives
TVERSKY_BETA = 0.3  # weight of false positives
METRICS = ("dice", "iou", "precision", "recall", "specificity", "accuracy", "tversky", "hd95")


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def confusion_counts(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``[TP, FP, FN, TN]`` (float64) of two bool arrays of the same shape."""
    pred, truth = pred.astype(bool), truth.astype(bool)
    tp = np.count_nonzero(pred & truth)
    fp = np.count_nonzero(pred & ~truth)
    fn = np.count_nonzero(~pred & truth)
    return np.array([tp, fp, fn, pred.size - tp - fp - fn], np.float64)


def overlap_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Every metric of :data:`METRICS` but HD95, for one mask pair.

    Args:
        pred, truth: bool arrays of the same shape (2D slice or 3D volume).
    """
    return metrics_from_counts(*confusion_counts(pred, truth))


def metrics_from_counts(tp: float, fp: float, fn: float, tn: float) -> dict[str, float]:
    """Every metric of :data:`METRICS` but HD95, from voxel counts (e.g. pooled over patients)."""
    tp, fp, fn, tn = float(tp), float(fp), float(fn), float(tn)
    total = tp + fp + fn + tn
    both_empty = tp + fp + fn == 0
    return {
        "dice": 1.0 if both_empty else 2 * tp / (2 * tp + fp + fn),
        "iou": 1.0 if both_empty else tp / (tp + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "accuracy": (tp + tn) / total,
        "tversky": 1.0 if both_empty else tp / (tp + TVERSKY_ALPHA * fn + TVERSKY_BETA * fp),
    }


def hd95(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...] | None = None) -> float:
    """95th percentile Hausdorff distance (see module docstring for empty masks).

    Args:
        pred, truth: bool arrays of the same shape.
        spacing: voxel size per axis (mm); ``None``: 1, so the result is in pixels/voxels.
    """
    pred, truth = pred.astype(bool), truth.astype(bool)
    if not pred.any() and not truth.any():
        return 0.0
    if not pred.any() or not truth.any():
        return math.nan
    from monai.metrics import compute_hausdorff_distance  # MONAI costs start-up time; only HD95 needs it

    as_batch = lambda a: torch.from_numpy(a)[None, None]  # noqa: E731  (B=1, C=1, spatial)
    with warnings.catch_warnings():  # MONAI 1.5+ warns about its own internal argument
        warnings.simplefilter("ignore", FutureWarning)
        distance = compute_hausdorff_distance(as_batch(pred), as_batch(truth), include_background=True, percentile=95,
                                              spacing=None if spacing is None else list(spacing))
    return float(distance[0, 0])


def segmentation_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """All of :data:`METRICS` for one mask pair (bool arrays of equal shape)."""
    return {**overlap_metrics(pred, truth), "hd95": hd95(pred, truth)}


def summarize(values: list[float]) -> dict[str, float]:
    """Mean, median, standard deviation, min and max over the non-NaN values, and their count."""
    array = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if array.size == 0:
        return {"mean": math.nan, "median": math.nan, "std": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {
        "mean": float(array.mean()),
        "median": float(np.median(array)),
        "std": float(array.std()),
        "min": float(array.min()),
        "max": float(array.max()),
        "n": int(array.size),
    }


# BraTS reports HD95 = 373.13 mm (the diagonal of the 240x240x155 grid at 1 mm) when exactly
# one of prediction and truth is empty (BraTS 2021 evaluation), and 0 when both are.
BRATS_EMPTY_HD95 = 373.128664


def brats_region_metrics(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, float, float]) -> dict[str, float]:
    """Metrics of one tumor region (WT, TC or ET) of one case, the way BraTS reports them.

    Args:
        pred, truth: ``(X, Y, Z)`` bool region masks.
        spacing: voxel size in mm.

    Returns:
        ``dice``, ``hd95`` (mm), ``sensitivity``, ``specificity``, ``pred_volume_cm3`` and
        ``true_volume_cm3``. Both empty: Dice 1, HD95 0; exactly one empty: Dice 0, HD95
        :data:`BRATS_EMPTY_HD95`; sensitivity of an empty truth is 1 (nothing to find).
    """
    counts = overlap_metrics(pred, truth)
    distance = hd95(pred, truth, spacing)
    voxel_cm3 = float(np.prod(spacing)) / 1000.0
    return {
        "dice": counts["dice"],
        "hd95": BRATS_EMPTY_HD95 if math.isnan(distance) else distance,
        "sensitivity": 1.0 if not truth.any() else counts["recall"],
        "specificity": counts["specificity"],
        "pred_volume_cm3": float(pred.sum()) * voxel_cm3,
        "true_volume_cm3": float(truth.sum()) * voxel_cm3,
    }


# BraTS 2023 lesion-wise scoring, glioma parameters (BraTS-GLI): ground-truth lesions grown by
# 3 iterations of the 18-connected structuring element, lesions of at most 50 mm^3 left out,
# HD95 374 mm for a missed lesion or a false-positive component.
LESION_DILATION = 3
LESION_MIN_VOLUME_MM3 = 50.0
LESION_MISSED_HD95 = 374.0


def lesion_wise_metrics(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, float, float],
                        dilation: int = LESION_DILATION, min_volume_mm3: float = LESION_MIN_VOLUME_MM3) -> dict[str, float]:
    """BraTS 2023 lesion-wise Dice and HD95 of one region (WT, TC or ET) of one case.

    Lesions are 26-connected components. Ground-truth components whose ``dilation``-times grown
    masks (18-connected structuring element) touch form one lesion, so nearby fragments count
    once. Each ground-truth lesion is scored against the union of the predicted components
    that touch its grown mask: Dice, and HD95 in mm (:func:`hd95`; :data:`LESION_MISSED_HD95`
    when nothing was predicted). Lesions of at most ``min_volume_mm3`` are left out of the
    score (the components that touch them are not false positives either). Every predicted
    component that touches no grown lesion is a false positive: Dice 0, HD95 374 mm. The
    score is the mean over the kept lesions and the false positives; with neither, Dice 1 and
    HD95 0.

    Source: BraTS 2023 lesion-wise performance metrics (Saluja et al.,
    github.com/rachitsaluja/BraTS-2023-Metrics, parameters of BraTS-GLI). That code measures
    HD95 with DeepMind's ``surface-distance``; this one with MONAI (:func:`hd95`).

    Args:
        pred, truth: ``(X, Y, Z)`` bool region masks.
        spacing: voxel size in mm along X, Y, Z.

    Returns:
        ``lesion_dice`` in [0, 1], ``lesion_hd95`` (mm), ``lesions`` (ground-truth lesions
        scored), ``detected`` (of those, found by at least one predicted component),
        ``false_positives`` (predicted components).
    """
    from scipy import ndimage

    pred, truth = pred.astype(bool), truth.astype(bool)
    touching, grow = ndimage.generate_binary_structure(3, 3), ndimage.generate_binary_structure(3, 2)
    pred_components, n_pred = ndimage.label(pred, touching)
    grown, _ = ndimage.label(ndimage.binary_dilation(truth, grow, iterations=dilation), touching)
    lesions = np.where(truth, grown, 0)  # ground truth grouped by the grown component it lies in
    voxel_mm3 = float(np.prod(spacing))
    matched: set[int] = set()
    dices, distances, detected = [], [], 0
    for lesion_id, box in enumerate(ndimage.find_objects(lesions), start=1):
        if box is None:
            continue
        # The grown lesion fits in its box widened by ``dilation`` voxels on each side.
        box = tuple(slice(max(s.start - dilation, 0), s.stop + dilation) for s in box)
        lesion = lesions[box] == lesion_id
        zone = ndimage.binary_dilation(lesion, grow, iterations=dilation)
        hits = np.unique(pred_components[box][zone])
        hits = hits[hits > 0]
        matched.update(hits.tolist())
        if lesion.sum() * voxel_mm3 <= min_volume_mm3:
            continue
        whole = np.zeros_like(truth)
        whole[box] = lesion
        found = np.isin(pred_components, hits) if len(hits) else np.zeros_like(pred)
        dices.append(2.0 * float((found & whole).sum()) / float(found.sum() + whole.sum()))
        distances.append(hd95(found, whole, spacing) if len(hits) else LESION_MISSED_HD95)
        detected += bool(len(hits))
    false_positives = n_pred - len(matched)
    count = len(dices) + false_positives
    return {
        "lesion_dice": sum(dices) / count if count else 1.0,
        "lesion_hd95": (sum(distances) + LESION_MISSED_HD95 * false_positives) / count if count else 0.0,
        "lesions": float(len(dices)),
        "detected": float(detected),
        "false_positives": float(false_positives),
    }

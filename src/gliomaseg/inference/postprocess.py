"""From probabilities to a label map: threshold, then post-processing of the connected
components (scipy.ndimage), for binary masks and for BraTS regions alike (:func:`to_label`).

Methods (``inference.postprocess``): ``none``; ``largest-3d``: keep only the largest 3D
connected component (26-connectivity), since an LGG FLAIR abnormality is one lesion (nnU-Net
applies the same rule when it helps on validation); ``min-size:N``: drop 3D components of fewer
than N voxels (multifocal tumors keep their foci). Binary masks then get the holes enclosed in
each slice filled (cystic parts, dark on FLAIR, belong to the annotated abnormality); BraTS
regions are cleaned on the whole tumor, and the tumor core and enhancing tumor are kept only
inside what remains of it.
"""

from __future__ import annotations

import numpy as np

from ..config import parse_postprocess
from ..data.labels import BinaryLabels, LabelConvention
from ..errors import ConfigError


def to_label(probabilities: np.ndarray, convention: LabelConvention, threshold: float | tuple[float, ...],
             method: str) -> np.ndarray:
    """Threshold and post-process predicted probabilities into a label map.

    Args:
        probabilities: ``(K, *spatial)`` float in [0, 1], one channel per region of
            ``convention`` (spatial ``(H, W, S)`` for slices, ``(X, Y, Z)`` for volumes).
        convention: binary (:func:`postprocess` on the mask) or BraTS regions (:func:`clean_regions`).
        threshold: probability at or above which a voxel is in a region: one for every
            channel, or a tuple of ``K``, one per channel (nnU-Net and BraTS entrants tune them
            per region, e.g. a lower one for the whole tumor).
        method: post-processing method (module docstring).

    Returns:
        ``(*spatial)`` uint8 label map in ``convention``.

    Raises:
        ConfigError: unknown post-processing method, or a tuple of thresholds not of length ``K``.
    """
    levels = np.asarray(threshold, probabilities.dtype).reshape(-1, *[1] * (probabilities.ndim - 1))
    if len(levels) not in (1, len(probabilities)):
        raise ConfigError(f"{len(levels)} thresholds for {len(probabilities)} region channel(s)")
    regions = probabilities >= levels
    if isinstance(convention, BinaryLabels):
        slices_first = np.moveaxis(regions[0], -1, 0)  # (S, H, W): holes are filled per slice
        return np.moveaxis(postprocess(slices_first, method), 0, -1).astype(np.uint8)
    return convention.from_regions(clean_regions(regions, method))


def postprocess(mask: np.ndarray, method: str) -> np.ndarray:
    """Clean a predicted binary mask.

    Args:
        mask: ``(S, H, W)`` bool, one patient's slices stacked in slice order.
        method: see the module docstring.

    Returns:
        ``(S, H, W)`` bool.

    Raises:
        ConfigError: unknown method or a bad N.
    """
    kind, size = parse_postprocess(method)
    if kind == "none":
        return mask
    kept = largest_component(mask) if kind == "largest-3d" else drop_small_components(mask, size)
    return fill_holes_per_slice(kept)


def clean_regions(regions: np.ndarray, method: str) -> np.ndarray:
    """Post-process predicted BraTS regions: the whole tumor is cleaned by ``method``, the tumor
    core and enhancing tumor are kept only inside what remains of it.

    Args:
        regions: ``(3, X, Y, Z)`` bool, WT, TC, ET.

    Returns:
        ``(3, X, Y, Z)`` bool.

    Raises:
        ConfigError: unknown method.
    """
    kind, size = parse_postprocess(method)
    if kind == "none":
        return regions
    whole = largest_component(regions[0]) if kind == "largest-3d" else drop_small_components(regions[0], size)
    return regions & whole[None]


def components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 26-connected components of a 3D bool mask (``scipy.ndimage.label``).

    Returns:
        ``labels``, int32 of ``mask``'s shape: 0 outside the mask, 1..n for the n components;
        ``sizes``, ``(n,)`` int64 voxel counts (index 0: label 1).
    """
    from scipy import ndimage  # imported here: scipy costs start-up time of every command

    labels, _ = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    return labels, np.bincount(labels.ravel())[1:]


def drop_small_components(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    """``mask`` without its 3D components (26-connected) of fewer than ``min_voxels`` voxels."""
    labels, sizes = components(mask)
    keep = np.concatenate([[False], sizes >= min_voxels])
    return keep[labels]


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a 3D bool mask (the mask itself if it has <= 1)."""
    labels, sizes = components(mask)
    return best_component(mask, labels, sizes)


def best_component(mask: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The component of ``mask`` with the highest score, as a bool mask of its shape.

    Args:
        mask: 3D bool; ``labels``: its :func:`components` labels; ``scores``: ``(n,)``, one per
            component (index 0: label 1), e.g. the sizes of :func:`components`.

    Returns:
        ``mask`` itself when it has at most one component.
    """
    if len(scores) <= 1:
        return mask
    return labels == 1 + int(np.argmax(scores))


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Fill the background regions fully enclosed by the mask, slice by slice (2D), with
    ``scipy.ndimage.binary_fill_holes``. Only slices with mask pixels are filled, each within its
    mask's bounding box and a one-pixel frame (an enclosed hole lies inside it; the frame keeps
    the outside connected): the same result as filling whole slices, in a fraction of the time.

    Args:
        mask: ``(S, H, W)`` bool.
    """
    from scipy import ndimage

    filled = mask.copy()
    for index in np.flatnonzero(mask.reshape(len(mask), -1).any(axis=1)):
        rows, cols = np.flatnonzero(mask[index].any(axis=1)), np.flatnonzero(mask[index].any(axis=0))
        window = (index, slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        filled[window] = ndimage.binary_fill_holes(np.pad(mask[window], 1))[1:-1, 1:-1]
    return filled

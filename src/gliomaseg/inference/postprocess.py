"""Post-processing of binary predictions (connected components with scipy.ndimage)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import ConfigError

POSTPROCESS = ("none", "largest-3d", "min-size:N")


def postprocess(mask: np.ndarray, method: str) -> np.ndarray:
    """Clean a predicted mask.

    Args:
        mask: ``(S, H, W)`` bool, one patient's slices stacked in slice order.
        method: ``"none"``; ``"largest-3d"``: keep only the largest 3D connected component
            (26-connectivity), since an LGG FLAIR abnormality is one lesion (nnU-Net applies
            the same rule when it helps on validation); ``"min-size:N"``: drop 3D components of
            fewer than N voxels. Both then fill the holes enclosed in each slice (cystic parts,
            dark on FLAIR, belong to the annotated abnormality).

    Returns:
        ``(S, H, W)`` bool.

    Raises:
        ConfigError: unknown method or a bad N.
    """
    if method == "none":
        return mask
    if method == "largest-3d":
        return fill_holes_per_slice(largest_component(mask))
    if method.startswith("min-size:"):
        return fill_holes_per_slice(drop_small_components(mask, min_size(method)))
    raise ConfigError(f"unknown post-processing {method!r}; choose one of {', '.join(POSTPROCESS)}")


def validate_postprocess(method: str) -> None:
    """Raise :class:`ConfigError` unless ``method`` is one :func:`postprocess` accepts."""
    if method not in ("none", "largest-3d") and not method.startswith("min-size:"):
        raise ConfigError(f"unknown post-processing {method!r}; choose one of {', '.join(POSTPROCESS)}")
    if method.startswith("min-size:"):
        min_size(method)


def min_size(method: str) -> int:
    """N of ``"min-size:N"``.

    Raises:
        ConfigError: N is not a whole number.
    """
    size = method.split(":", 1)[1]
    if not size.isdigit():
        raise ConfigError(f"post-processing {method!r}: N in min-size:N must be a whole number of voxels")
    return int(size)


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the 26-connected components and each component's size (index 0: label 1)."""
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    return labels, np.bincount(labels.ravel())[1:]


def drop_small_components(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    """``mask`` without its 3D components (26-connected) of fewer than ``min_voxels`` voxels."""
    labels, sizes = _components(mask)
    keep = np.concatenate([[False], sizes >= min_voxels])
    return keep[labels]


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a 3D bool mask (the mask itself if it has <= 1)."""
    labels, sizes = _components(mask)
    if len(sizes) <= 1:
        return mask
    return labels == 1 + int(np.argmax(sizes))


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Fill the background regions fully enclosed by the mask, slice by slice (2D)."""
    return np.stack([ndimage.binary_fill_holes(s) for s in mask]) if mask.size else mask

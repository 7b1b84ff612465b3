"""Post-processing of binary predictions (connected components with scipy.ndimage)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import ConfigError

POSTPROCESS = ("none", "largest")


def postprocess(mask: np.ndarray, method: str) -> np.ndarray:
    """Clean a predicted mask.

    Args:
        mask: ``(S, H, W)`` bool, one patient's slices stacked in slice order.
        method: ``"none"``, or ``"largest"``: keep only the largest 3D connected component
            (26-connectivity), since an LGG FLAIR abnormality is one lesion (nnU-Net applies
            the same rule when it helps on validation), then fill holes enclosed in each slice
            (cystic parts, dark on FLAIR, belong to the annotated abnormality).

    Returns:
        ``(S, H, W)`` bool.

    Raises:
        ConfigError: unknown method.
    """
    if method == "none":
        return mask
    if method == "largest":
        return fill_holes_per_slice(largest_component(mask))
    raise ConfigError(f"unknown post-processing {method!r}; choose one of {', '.join(POSTPROCESS)}")


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a 3D bool mask (the mask itself if it has <= 1)."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == 1 + int(np.argmax(sizes))


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Fill the background regions fully enclosed by the mask, slice by slice (2D)."""
    return np.stack([ndimage.binary_fill_holes(s) for s in mask]) if mask.size else mask

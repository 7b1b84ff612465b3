"""3D preprocessing of multi-sequence volumes: crop to the brain (non-zero) box, per-sequence
z-score over brain voxels, and the inverse that puts predictions back on the original grid.

As in nnU-Net's BraTS preprocessing (Isensee et al. 2021, Nature Methods 18): BraTS volumes are
skull-stripped with background exactly 0, so the brain is where any sequence is non-zero.
"""

from __future__ import annotations

import numpy as np
import torch

Box3D = tuple[slice, slice, slice]


def nonzero_box(images: np.ndarray, margin: int = 0) -> Box3D:
    """Smallest box holding every voxel that is non-zero in any channel, widened by ``margin``
    voxels and clipped to the volume.

    Args:
        images: ``(C, X, Y, Z)``.

    Returns:
        three slices over X, Y, Z (the whole volume if it is all zero).
    """
    brain = np.any(images != 0, axis=0)
    if not brain.any():
        return tuple(slice(0, n) for n in brain.shape)
    box = []
    for axis, size in enumerate(brain.shape):
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(brain.any(axis=other))
        box.append(slice(max(int(present[0]) - margin, 0), min(int(present[-1]) + 1 + margin, size)))
    return tuple(box)


def zscore_brain(images: np.ndarray) -> np.ndarray:
    """Per-channel z-score over the brain voxels (non-zero in any channel); background stays 0.

    Args:
        images: ``(C, X, Y, Z)`` scanner intensities.

    Returns:
        ``(C, X, Y, Z)`` float32, mean 0 and standard deviation 1 over the brain per channel.
    """
    brain = np.any(images != 0, axis=0)
    out = np.zeros(images.shape, np.float32)
    for channel, volume in enumerate(images):
        values = volume[brain]
        if values.size:
            out[channel][brain] = (values - values.mean()) / max(float(values.std()), 1e-8)
    return out


def uncrop(array: np.ndarray, box: Box3D, shape: tuple[int, int, int], fill: float = 0) -> np.ndarray:
    """Paste ``array`` (``(..., x, y, z)``, the box's size) back into a ``(..., *shape)`` volume
    filled with ``fill`` elsewhere: the inverse of ``volume[..., box[0], box[1], box[2]]``."""
    out = np.full((*array.shape[:-3], *shape), fill, dtype=array.dtype)
    out[(..., *box)] = array
    return out


def crop_to_brain(images: np.ndarray) -> tuple[np.ndarray, Box3D]:
    """The network input of a case: cropped to the brain box, then z-scored over the brain.

    Args:
        images: ``(C, X, Y, Z)`` scanner intensities.

    Returns:
        ``(C, x, y, z)`` float32 and the box (undo with :func:`uncrop`).
    """
    box = nonzero_box(images)
    return zscore_brain(images[(slice(None), *box)]), box


def stack_slices(volume: torch.Tensor, z: torch.Tensor, context: int) -> torch.Tensor:
    """Axial slices with ``context`` neighbours on each side as channels (2.5D input); slices
    beyond the volume repeat the edge slice.

    Args:
        volume: ``(C, X, Y, Z)``.
        z: ``(N,)`` long, the centre slices.
        context: neighbours on each side.

    Returns:
        ``(N, C * (2 * context + 1), X, Y)``, channels ordered neighbour by neighbour (from
        ``z - context`` up), the ``C`` sequences within each.
    """
    offsets = torch.arange(-context, context + 1)
    index = (z[:, None] + offsets[None]).clamp(0, volume.shape[-1] - 1)  # (N, D)
    picked = volume[..., index.flatten()]  # (C, X, Y, N * D)
    channels, sx, sy = volume.shape[:3]
    picked = picked.reshape(channels, sx, sy, len(z), len(offsets))
    return picked.permute(3, 4, 0, 1, 2).reshape(len(z), len(offsets) * channels, sx, sy)

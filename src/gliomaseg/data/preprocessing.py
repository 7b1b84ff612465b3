"""Intensity normalisation and brain cropping, identical in training, evaluation and ``segment``.

Normalisation follows Buda et al. 2019 (Computers in Biology and Medicine 109; their
``normalize_volume``) in working per volume, not per slice, so that all slices of a patient
share one intensity scale: each channel is divided by its 99th percentile over the volume's
brain voxels and clipped to [0, 1.5]. The slices of one patient are one volume; a single
slice given on its own is a volume of one slice, so it still works, with statistics taken from
that slice alone.

Cropping: the square box around the brain over the whole volume (the union over slices of
pixels brighter than 10% of the FLAIR 99th percentile), plus a margin, is cut out and resized to
the network's input size; :func:`from_network` pastes predictions back into the original grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..config import DataConfig

CLIP_MAX = 1.5
BRAIN_FRACTION = 0.1  # of the reference channel's 99th percentile
REFERENCE_CHANNEL = 1  # FLAIR in the LGG channel order (pre-contrast, FLAIR, post-contrast)


@dataclass(frozen=True)
class Box:
    """Rows ``top:bottom`` and columns ``left:right`` of a volume's grid (pixels)."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left


def _reference(images: np.ndarray) -> np.ndarray:
    return images[..., min(REFERENCE_CHANNEL, images.shape[-1] - 1)]


def brain_voxels(images: np.ndarray) -> np.ndarray:
    """``(S, H, W)`` bool: voxels brighter than 10% of the FLAIR 99th percentile.

    Args:
        images: ``(S, H, W, C)`` uint8 volume.
    """
    reference = _reference(images)
    top = np.percentile(reference, 99)
    return reference > BRAIN_FRACTION * max(float(top), 1.0)


def normalize_volume(images: np.ndarray) -> np.ndarray:
    """Per-volume, per-channel intensity normalisation.

    Args:
        images: ``(S, H, W, C)`` uint8, one patient's slices (``S`` may be 1).

    Returns:
        ``(S, H, W, C)`` float32 in [0, 1.5]: each channel divided by its 99th percentile over
        the brain voxels of the whole volume (all voxels if none is found).
    """
    brain = brain_voxels(images)
    out = np.empty(images.shape, np.float32)
    for c in range(images.shape[-1]):
        channel = images[..., c]
        values = channel[brain] if brain.any() else channel.ravel()
        scale = max(float(np.percentile(values, 99)), 1.0)
        out[..., c] = np.clip(channel / scale, 0.0, CLIP_MAX)
    return out


def brain_box(images: np.ndarray, margin: int) -> Box:
    """Square box around the brain of the whole volume, ``margin`` pixels wider on each side.

    The box is kept inside the image; when the image is not square and the brain is wider
    than the shorter side, the box is the brain's rectangle clipped to the image.

    Args:
        images: ``(S, H, W, C)`` uint8 volume.
        margin: pixels of background kept around the brain.
    """
    height, width = images.shape[1:3]
    brain = brain_voxels(images).any(axis=0)
    if not brain.any():
        return Box(0, height, 0, width)
    rows, cols = np.flatnonzero(brain.any(axis=1)), np.flatnonzero(brain.any(axis=0))
    side = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 + 2 * margin
    top, bottom = _fit((rows[0] + rows[-1] + 1) / 2, side, height)
    left, right = _fit((cols[0] + cols[-1] + 1) / 2, side, width)
    return Box(top, bottom, left, right)


def _fit(center: float, side: int, limit: int) -> tuple[int, int]:
    side = min(side, limit)
    start = int(round(center - side / 2))
    start = min(max(start, 0), limit - side)
    return start, start + side


@dataclass
class NetworkInput:
    """A volume ready for the network, and what is needed to map predictions back.

    Attributes:
        images: ``(S, C, N, N)`` float32 tensor, ``N = DataConfig.image_size``.
        box: the region of the original grid that was resized to ``N x N``.
        shape: ``(H, W)`` of the original grid.
    """

    images: torch.Tensor
    box: Box
    shape: tuple[int, int]


def to_network(images: np.ndarray, config: DataConfig) -> NetworkInput:
    """Normalise, crop to the brain box (if configured) and resize a volume.

    Args:
        images: ``(S, H, W, C)`` uint8 volume.
        config: preprocessing settings.
    """
    height, width = images.shape[1:3]
    box = brain_box(images, config.crop_margin) if config.crop_to_brain else Box(0, height, 0, width)
    normalized = normalize_volume(images[:, box.top:box.bottom, box.left:box.right])
    tensor = torch.from_numpy(normalized).permute(0, 3, 1, 2)
    return NetworkInput(resize(tensor, config.image_size), box, (height, width))


def resize(tensor: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` float to ``(N, C, size, size)``: bilinear, antialiased when shrinking."""
    if tuple(tensor.shape[-2:]) == (size, size):
        return tensor.contiguous()
    return F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def mask_to_network(masks: np.ndarray, box: Box, size: int) -> torch.Tensor:
    """Crop and resize ``(S, H, W)`` bool masks like their images: ``(S, 1, size, size)`` float {0, 1}."""
    cropped = torch.from_numpy(masks[:, box.top:box.bottom, box.left:box.right].astype(np.float32))
    return (resize(cropped[:, None], size) >= 0.5).float()


def from_network(probabilities: torch.Tensor, network_input: NetworkInput) -> np.ndarray:
    """Map ``(S, 1, N, N)`` probabilities back to the original ``(S, H, W)`` grid (float32).

    Outside the brain box the probability is 0.
    """
    box = network_input.box
    inside = F.interpolate(probabilities.float(), size=(box.height, box.width), mode="bilinear", align_corners=False)
    out = np.zeros((probabilities.shape[0], *network_input.shape), np.float32)
    out[:, box.top:box.bottom, box.left:box.right] = inside[:, 0].numpy()
    return out

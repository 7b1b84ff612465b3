"""One preprocessing object, with forward and inverse, identical in training, evaluation and
``segment``: crop, intensity normalisation, resize, and the way back onto the input's grid.

Two recipes, chosen by the dataset type:

- slice images (``kaggle3m``, ``image_folder``), after Buda et al. 2019 (Computers in Biology
  and Medicine 109; their ``normalize_volume``): per volume, per channel division by the 99th
  percentile over the brain voxels, clipped to [0, 1.5], so all slices of a patient share one
  intensity scale (a lone slice is a volume of one slice); optionally the square box around the
  brain of the whole volume (the union over slices of pixels brighter than 10% of the FLAIR 99th
  percentile), plus a margin; then each slice resized to the network's square input.
- volumes (``brats``), as nnU-Net's BraTS preprocessing (Isensee et al. 2021, Nature Methods
  18): crop to the box of voxels non-zero in any sequence (skull-stripped, background exactly
  0), then per-sequence z-score over those brain voxels; no resampling (1 mm grid kept).

Either recipe can first standardise each channel's histogram (``data.standardize:
histogram``; Nyul, Udupa and Zhang 2000, IEEE Transactions on Medical Imaging 19(2)):
landmarks fitted on the training cases map every case's brain-intensity percentiles onto one
standard scale, piecewise linearly, before the normalisation above.

Its parameters are the ``data`` section of the model's config, saved in every weights file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..config import LANDMARK_PERCENTILES, DataConfig
from ..errors import ConfigError

CLIP_MAX = 1.5
BRAIN_FRACTION = 0.1  # of the reference channel's 99th percentile
REFERENCE_CHANNEL = 1  # FLAIR in the LGG channel order (pre-contrast, FLAIR, post-contrast)

Box = tuple[slice, slice, slice]  # over the spatial axes of a (C, *spatial) array


@dataclass(frozen=True)
class Prepared:
    """A case ready for the network, and what the inverse needs.

    Attributes:
        images: ``(C, *spatial')`` float32 tensor on the network's grid.
        box: the region of the input grid that was cut out (and resized to ``spatial'``).
        shape: the input's spatial shape.
    """

    images: torch.Tensor
    box: Box
    shape: tuple[int, int, int]


@dataclass(frozen=True)
class Preprocessing:
    """Crop, normalise and resize a case; map predictions back.

    Args:
        volumetric: the volume recipe (non-zero box, z-score, no resize) instead of the slice recipe.
        size: slice recipe: side of the square each slice is resized to (0: no resize).
        crop_to_brain: slice recipe: crop to the square brain box first.
        margin: slice recipe: pixels of background kept around the brain box.
        landmarks: histogram standardisation's standard scale, ``(C, 11)`` (see
            :func:`fit_landmarks`); empty: none.
    """

    volumetric: bool
    size: int = 0
    crop_to_brain: bool = False
    margin: int = 8
    landmarks: tuple[tuple[float, ...], ...] = ()

    @classmethod
    def from_config(cls, data: DataConfig, volumetric: bool) -> "Preprocessing":
        """The preprocessing of a run's ``data`` section for a slice or volume dataset type.

        Raises:
            ConfigError: ``data.standardize`` is ``histogram`` but no landmarks were fitted.
        """
        if data.standardize == "histogram" and not data.landmarks:
            raise ConfigError("data.standardize is histogram but data.landmarks is empty: landmarks are fitted "
                              "when training starts (gliomaseg train) and saved with the weights")
        if volumetric:
            return cls(True, landmarks=data.landmarks)
        return cls(False, data.image_size, data.crop_to_brain, data.crop_margin, data.landmarks)

    def forward(self, images: np.ndarray) -> Prepared:
        """Args: ``images`` ``(C, *spatial)``: uint8 slices ``(C, H, W, S)`` or float volumes
        ``(C, X, Y, Z)``. Returns the network-grid tensor (float32) and the inverse's state."""
        shape = tuple(images.shape[1:])
        if self.volumetric:
            box = nonzero_box(images)
            cropped = images[(slice(None), *box)]
            if self.landmarks:
                cropped = standardize(cropped, brain_mask(cropped, True), self.landmarks)
            return Prepared(torch.from_numpy(zscore_brain(cropped)), box, shape)
        box = brain_box(images, self.margin) if self.crop_to_brain else tuple(slice(0, n) for n in shape)
        cropped = images[:, box[0], box[1]]
        if self.landmarks:
            cropped = standardize(cropped, brain_mask(cropped, False), self.landmarks)
        normalized = torch.from_numpy(normalize_volume(cropped, slices_first=True))  # (S, C, h, w)
        tensor = resize(normalized, self.size)  # (S, C, N, N)
        return Prepared(tensor.permute(1, 2, 3, 0), box, shape)

    def target(self, label_regions: np.ndarray, prepared: Prepared) -> torch.Tensor:
        """Training targets on the network grid: ``(K, *spatial)`` bool regions cropped (and
        resized, then re-binarised at 0.5) like their images; ``(K, *spatial')`` float32 {0, 1}."""
        cropped = torch.from_numpy(np.ascontiguousarray(label_regions[(slice(None), *prepared.box)], dtype=np.float32))
        if self.volumetric or not self.size:
            return cropped
        stacked = cropped.permute(3, 0, 1, 2)  # (S, K, h, w)
        return (resize(stacked, self.size) >= 0.5).float().permute(1, 2, 3, 0)

    def inverse(self, probabilities: torch.Tensor, prepared: Prepared) -> np.ndarray:
        """``(K, *spatial')`` probabilities on the network grid -> ``(K, *shape)`` float32 on
        the input grid (bilinear back to the box's size; 0 outside the box)."""
        if not self.volumetric and self.size:
            box = prepared.box
            height, width = box[0].stop - box[0].start, box[1].stop - box[1].start
            stacked = probabilities.float().permute(3, 0, 1, 2).contiguous()  # (S, K, N, N)
            inside = F.interpolate(stacked, size=(height, width), mode="bilinear", align_corners=False)
            probabilities = inside.permute(1, 2, 3, 0)
        return uncrop(probabilities.float().numpy(), prepared.box, prepared.shape)


def percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear interpolation), from a histogram for uint8 values:
    the same number, without sorting millions of voxels."""
    if values.dtype != np.uint8 or values.size == 0:
        return float(np.percentile(values, q))
    cumulative = np.cumsum(np.bincount(values.ravel(), minlength=256))
    rank = q / 100 * (values.size - 1)
    below = int(np.floor(rank))
    low = int(np.searchsorted(cumulative, below, side="right"))
    high = int(np.searchsorted(cumulative, min(below + 1, values.size - 1), side="right"))
    return low + (rank - below) * (high - low)


def brain_voxels(images: np.ndarray) -> np.ndarray:
    """``(H, W, S)`` bool: voxels brighter than 10% of the FLAIR 99th percentile.

    Args:
        images: ``(C, H, W, S)`` uint8 volume; FLAIR is channel 1 (the only channel of grey images).
    """
    reference = images[min(REFERENCE_CHANNEL, images.shape[0] - 1)]
    top = percentile(reference, 99)
    return reference > BRAIN_FRACTION * max(float(top), 1.0)


def brain_mask(images: np.ndarray, volumetric: bool) -> np.ndarray:
    """``(*spatial)`` bool: the brain voxels each recipe normalises over: voxels non-zero in any
    channel (volumes: skull-stripped, background exactly 0) or :func:`brain_voxels` (slices).

    Args:
        images: ``(C, *spatial)``.
    """
    return np.any(images != 0, axis=0) if volumetric else brain_voxels(images)


def case_landmarks(images: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """``(C, 11)`` float64: each channel's intensities at the brain percentiles
    :data:`~gliomaseg.config.LANDMARK_PERCENTILES` (all voxels where ``brain`` is empty).

    Args:
        images: ``(C, *spatial)``; brain: ``(*spatial)`` bool.
    """
    rows = []
    for channel in images:
        values = channel[brain] if brain.any() else channel.ravel()
        rows.append([percentile(values, q) for q in LANDMARK_PERCENTILES])
    return np.asarray(rows, np.float64)


def fit_landmarks(cases: Iterable[np.ndarray], volumetric: bool) -> tuple[tuple[float, ...], ...]:
    """Nyul's training step: the standard scale of histogram standardisation.

    Each case's landmarks (:func:`case_landmarks` over :func:`brain_mask`) are mapped linearly
    so that its 1st and 99th percentiles land on the means of all cases' 1st and 99th, then
    averaged over the cases (Nyul, Udupa and Zhang 2000, IEEE TMI 19(2), 143-150). Channels of
    a case with no spread (1st percentile = 99th: an empty or missing sequence) are left out.

    Args:
        cases: ``(C, *spatial)`` images of the training cases, in scanner units (uint8 slices
            or float volumes), all with the same ``C``.
        volumetric: the volume recipe's brain mask (non-zero voxels) instead of the slices'.

    Returns:
        ``C`` rows of 11 strictly increasing intensities (``data.landmarks``).

    Raises:
        ValueError: no case, or a channel without spread in every case.
    """
    per_case = [case_landmarks(images, brain_mask(images, volumetric)) for images in cases]
    if not per_case:
        raise ValueError("histogram standardisation needs at least one training case")
    landmarks = np.stack(per_case)  # (N, C, 11)
    rows = []
    for channel in range(landmarks.shape[1]):
        table = landmarks[:, channel]
        table = table[table[:, -1] > table[:, 0]]
        if not len(table):
            raise ValueError(f"histogram standardisation: channel {channel} has no spread in any training case")
        low, high = table[:, 0].mean(), table[:, -1].mean()
        mapped = low + (table - table[:, :1]) / (table[:, -1:] - table[:, :1]) * (high - low)
        standard = mapped.mean(axis=0)
        # A tie in every case (coarse uint8 histograms) becomes a tiny step: the scale must increase.
        ramp = 1e-6 * (high - low) * np.arange(len(standard))
        rows.append(tuple(float(v) for v in np.maximum.accumulate(standard - ramp) + ramp))
    return tuple(rows)


def standardize(images: np.ndarray, brain: np.ndarray, landmarks: tuple[tuple[float, ...], ...]) -> np.ndarray:
    """Nyul's transformation: each channel mapped piecewise linearly from its own brain
    landmarks (:func:`case_landmarks`) onto the standard ``landmarks``, through ``0 -> 0`` so
    that background stays 0; linear beyond the last landmark (and below 0) with the slope of the
    nearest segment. A channel's repeated landmarks (coarse histograms) count once; a channel
    that is 0 throughout stays 0.

    Args:
        images: ``(C, *spatial)`` uint8 slices or float volumes, non-negative intensities
            apart from noise.
        brain: ``(*spatial)`` bool, the voxels the percentiles are taken over.
        landmarks: ``(C, 11)`` standard scale from :func:`fit_landmarks`.

    Returns:
        ``(C, *spatial)`` float32, each channel's brain percentiles equal to ``landmarks``
        (up to the interpolation of uint8 histograms).

    Raises:
        ValueError: ``landmarks`` has a row count other than ``C``.
    """
    if len(landmarks) != images.shape[0]:
        raise ValueError(f"histogram standardisation has landmarks for {len(landmarks)} channel(s); the images have {images.shape[0]}")
    out = np.empty(images.shape, np.float32)
    for c, (own, standard) in enumerate(zip(case_landmarks(images, brain), landmarks)):
        source, target = [0.0], [0.0]
        for x, y in zip(own, standard):
            if x > source[-1] and y > target[-1]:
                source.append(float(x))
                target.append(float(y))
        if images.dtype == np.uint8:  # a lookup table: the same numbers, one pass
            out[c] = _piecewise(np.arange(256, dtype=np.float64), source, target).astype(np.float32)[images[c]]
        else:
            out[c] = _piecewise(images[c].astype(np.float64), source, target)
    return out


def _piecewise(x: np.ndarray, source: list[float], target: list[float]) -> np.ndarray:
    """``np.interp`` through the points ``(source, target)`` (both increasing), continued
    linearly at both ends; the identity through a single point ``(0, 0)``."""
    if len(source) < 2:
        return x
    y = np.interp(x, source, target)
    first = (target[1] - target[0]) / (source[1] - source[0])
    last = (target[-1] - target[-2]) / (source[-1] - source[-2])
    y = np.where(x < source[0], target[0] + (x - source[0]) * first, y)
    return np.where(x > source[-1], target[-1] + (x - source[-1]) * last, y)


def normalize_volume(images: np.ndarray, slices_first: bool = False) -> np.ndarray:
    """Per-volume, per-channel intensity normalisation.

    Args:
        images: ``(C, H, W, S)`` uint8, one patient's slices (``S`` may be 1).
        slices_first: return ``(S, C, H, W)`` (the batch layout of slice networks), written
            directly in that order rather than transposed afterwards.

    Returns:
        ``(C, H, W, S)`` (or ``(S, C, H, W)``) float32 in [0, 1.5]: each channel divided by its
        99th percentile over the brain voxels of the whole volume (all voxels if none is found).
    """
    brain = brain_voxels(images)
    out = np.empty((images.shape[-1], *images.shape[:-1]) if slices_first else images.shape, np.float32)
    for c, channel in enumerate(images):
        values = channel[brain] if brain.any() else channel.ravel()
        scale = max(percentile(values, 99), 1.0)
        if channel.dtype == np.uint8:  # a lookup table: the same numbers, one pass
            normalized = np.clip(np.arange(256) / scale, 0.0, CLIP_MAX).astype(np.float32)[channel]
        else:
            normalized = np.clip(channel / scale, 0.0, CLIP_MAX)
        if slices_first:
            out[:, c] = np.moveaxis(normalized, -1, 0)
        else:
            out[c] = normalized
    return out


def brain_box(images: np.ndarray, margin: int) -> Box:
    """Square box around the brain of the whole volume, ``margin`` pixels wider on each side.

    The box is kept inside the image; when the image is not square and the brain is wider
    than the shorter side, the box is the brain's rectangle clipped to the image.

    Args:
        images: ``(C, H, W, S)`` uint8 volume.
        margin: pixels of background kept around the brain.

    Returns:
        rows, columns and (all) slices of the box, as slices over ``(H, W, S)``.
    """
    height, width, count = images.shape[1:]
    brain = brain_voxels(images).any(axis=2)
    if not brain.any():
        return slice(0, height), slice(0, width), slice(0, count)
    rows, cols = np.flatnonzero(brain.any(axis=1)), np.flatnonzero(brain.any(axis=0))
    side = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 + 2 * margin
    return _fit((rows[0] + rows[-1] + 1) / 2, side, height), _fit((cols[0] + cols[-1] + 1) / 2, side, width), slice(0, count)


def _fit(center: float, side: int, limit: int) -> slice:
    side = min(side, limit)
    start = int(round(center - side / 2))
    start = min(max(start, 0), limit - side)
    return slice(start, start + side)


def resize(tensor: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` float to ``(N, C, size, size)``: bilinear, antialiased when
    shrinking; ``size`` 0 keeps the size."""
    if not size or tuple(tensor.shape[-2:]) == (size, size):
        return tensor.contiguous()
    return F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def nonzero_box(images: np.ndarray, margin: int = 0) -> Box:
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


def uncrop(array: np.ndarray, box: Box, shape: tuple[int, ...], fill: float = 0) -> np.ndarray:
    """Paste ``array`` (``(..., x, y, z)``, the box's size) back into a ``(..., *shape)`` volume
    filled with ``fill`` elsewhere: the inverse of ``volume[..., box[0], box[1], box[2]]``."""
    out = np.full((*array.shape[:-3], *shape), fill, dtype=array.dtype)
    out[(..., *box)] = array
    return out


def stack_slices(volume: torch.Tensor, z: torch.Tensor, context: int) -> torch.Tensor:
    """Slices along the last axis with ``context`` neighbours on each side as channels (2.5D
    input); slices beyond the volume repeat the edge slice.

    Args:
        volume: ``(C, X, Y, Z)``.
        z: ``(N,)`` long, the centre slices.
        context: neighbours on each side.

    Returns:
        ``(N, C * (2 * context + 1), X, Y)``, channels ordered neighbour by neighbour (from
        ``z - context`` up), the ``C`` channels within each.
    """
    offsets = torch.arange(-context, context + 1)
    index = (z[:, None] + offsets[None]).clamp(0, volume.shape[-1] - 1)  # (N, D)
    picked = volume[..., index.flatten()]  # (C, X, Y, N * D)
    channels, sx, sy = volume.shape[:3]
    picked = picked.reshape(channels, sx, sy, len(z), len(offsets))
    return picked.permute(3, 4, 0, 1, 2).reshape(len(z), len(offsets) * channels, sx, sy)

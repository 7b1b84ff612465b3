"""On-the-fly augmentation of whole batches: flips, small rotations and scaling, intensity jitter,
and FLAIR copies in place of the other LGG sequences. 3D patches get mirroring along every
axis and the intensity jitter (nnU-Net's cheapest and most useful 3D transforms).

Done on the batch tensor with one ``affine_grid``/``grid_sample`` call, which costs a small
fraction of a training step on the CPU, unlike per-sample pipelines.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..config import AugmentConfig


def augment_batch(images: torch.Tensor, masks: torch.Tensor, config: AugmentConfig, generator: torch.Generator,
                  stack: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly transform a batch; image and mask get the same geometry.

    Args:
        images: ``(B, C, H, W)`` (or ``(B, C, X, Y, Z)``) float32 normalised images; for 2.5D
            input, ``stack`` slices of ``C / stack`` channels each (as ``stack_slices`` orders them).
        masks: ``(B, K, H, W)`` (or ``(B, K, X, Y, Z)``) float32 in {0, 1}.
        config: ranges of each transform (rotation, scaling and FLAIR copies apply to 2D only;
            FLAIR copies only to 3-sequence LGG slices, ``C = 3 * stack``).
        generator: random source, for reproducible runs.
        stack: slices stacked as channels (``2 * context_slices + 1``).

    Returns:
        ``(images, masks)`` of the same shapes; masks stay in {0, 1}.
    """
    if images.dim() == 5:
        return _augment_volumes(images, masks, config, generator)
    batch = images.shape[0]

    angle = _uniform(-1, 1, generator, batch) * math.radians(config.rotate_degrees)
    scale = _uniform(*config.scale, generator, batch)
    flip = torch.where(torch.rand(batch, generator=generator) < 0.5, -1.0, 1.0) if config.flip else torch.ones(batch)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    masks = (F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False) >= 0.5).float()
    if config.flair_copy > 0 and images.shape[1] == 3 * stack:
        images = _copy_flair(images, config.flair_copy, generator, stack)
    return _jitter_intensity(images, config.intensity, generator), masks


def _uniform(low: float, high: float, generator: torch.Generator, *shape: int) -> torch.Tensor:
    return low + (high - low) * torch.rand(*shape, generator=generator)


def _jitter_intensity(images: torch.Tensor, amount: float, generator: torch.Generator) -> torch.Tensor:
    """Per-sample, per-channel gain in ``1 +- amount`` and, inside the brain (non-zero), bias in ``+- amount``."""
    if amount <= 0:
        return images
    shape = (*images.shape[:2], *[1] * (images.dim() - 2))
    gain = _uniform(1 - amount, 1 + amount, generator, *shape)
    bias = _uniform(-amount, amount, generator, *shape)
    return images * gain + bias * (images != 0)


def _augment_volumes(images: torch.Tensor, masks: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror each sample along each spatial axis with probability 1/2, then jitter intensities."""
    if config.flip:
        images, masks = images.clone(), masks.clone()
        for axis in (2, 3, 4):
            chosen = torch.rand(images.shape[0], generator=generator) < 0.5
            images[chosen] = images[chosen].flip(axis - 1)
            masks[chosen] = masks[chosen].flip(axis - 1)
    return _jitter_intensity(images, config.intensity, generator), masks


def _copy_flair(images: torch.Tensor, probability: float, generator: torch.Generator, stack: int = 1) -> torch.Tensor:
    """Replace channel 0 (pre-contrast) and channel 2 (post-contrast) by channel 1 (FLAIR), each
    independently with ``probability`` per sample, in every one of the ``stack`` stacked slices
    alike. Some LGG patients ship that way (their missing sequences were filled with FLAIR),
    and a network that never saw it relies on the contrast between sequences and misses their
    tumors."""
    images = images.clone()
    for channel in (0, 2):
        chosen = torch.rand(images.shape[0], generator=generator) < probability
        for first in range(0, 3 * stack, 3):
            images[chosen, first + channel] = images[chosen, first + 1]
    return images


def trained_mirror_axes(config: AugmentConfig, spatial_dims: int) -> tuple[int, ...]:
    """The spatial axes of the network input that :func:`augment_batch` mirrors: none without
    ``flip``; the width (axis 1 of a ``(H, W)`` slice, ``y`` of an ``(x, y)`` slice) for slice
    networks; every axis of a 3D patch. Saved with a model, it bounds flip TTA."""
    if not config.flip:
        return ()
    return (0, 1, 2) if spatial_dims == 3 else (1,)

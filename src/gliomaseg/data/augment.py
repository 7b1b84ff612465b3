"""On-the-fly augmentation of whole batches: flips, small rotations and scaling, intensity jitter,
and FLAIR copies in place of the other LGG sequences.

Done on the batch tensor with one ``affine_grid``/``grid_sample`` call, which costs a small
fraction of a training step on the CPU, unlike per-sample pipelines.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..config import AugmentConfig


def augment_batch(images: torch.Tensor, masks: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly transform a batch; image and mask get the same geometry.

    Args:
        images: ``(B, C, H, W)`` float32 normalised images.
        masks: ``(B, 1, H, W)`` float32 in {0, 1}.
        config: ranges of each transform.
        generator: random source, for reproducible runs.

    Returns:
        ``(images, masks)`` of the same shapes; masks stay in {0, 1}.
    """
    batch = images.shape[0]

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=generator)

    angle = uniform(-1, 1, batch) * math.radians(config.rotate_degrees)
    scale = uniform(*config.scale, batch)
    flip = torch.where(torch.rand(batch, generator=generator) < 0.5, -1.0, 1.0) if config.flip else torch.ones(batch)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    masks = (F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False) >= 0.5).float()
    if config.flair_copy > 0 and images.shape[1] == 3:
        images = _copy_flair(images, config.flair_copy, generator)
    if config.intensity > 0:
        channels = images.shape[1]
        gain = uniform(1 - config.intensity, 1 + config.intensity, batch, channels, 1, 1)
        bias = uniform(-config.intensity, config.intensity, batch, channels, 1, 1)
        images = images * gain + bias * (images > 0)
    return images, masks


def _copy_flair(images: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """Replace channel 0 (pre-contrast) and channel 2 (post-contrast) by channel 1 (FLAIR), each
    independently with ``probability`` per sample. Some LGG patients ship that way (their
    missing sequences were filled with FLAIR), and a network that never saw it relies on the
    contrast between sequences and misses their tumors."""
    images = images.clone()
    for channel in (0, 2):
        chosen = torch.rand(images.shape[0], generator=generator) < probability
        images[chosen, channel] = images[chosen, 1]
    return images

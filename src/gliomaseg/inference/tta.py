"""Test-time augmentation: transforms of the network-grid volume, undone on the output before
the probabilities are averaged (nnU-Net's mirroring).

A transform is ``(quarter turns in the x-y plane, mirrored spatial axes)``; the input is
mirrored, then turned; the output is turned back, then mirrored back. ``flip`` averages every
combination of the axes the network was trained mirrored along (``inference.mirror_axes``,
saved with the model): mirroring along an axis never seen flipped in training lowered Dice.
``flip+rot90`` adds the four quarter turns (slice networks only; with the width axis mirrored
these are the 8 symmetries of the square).
"""

from __future__ import annotations

from itertools import combinations

import torch

from ..errors import ConfigError

Transform = tuple[int, tuple[int, ...]]


def tta_transforms(name: str, mirror_axes: tuple[int, ...], spatial_dims: int) -> list[Transform]:
    """The transforms of TTA mode ``name`` (``none``, ``flip``, ``flip+rot90``).

    Args:
        mirror_axes: spatial axes (0 x, 1 y, 2 z) the network was trained mirrored along.
        spatial_dims: 2 (slice network) or 3 (volume network).

    Raises:
        ConfigError: unknown mode, or ``flip+rot90`` for a 3D network.
    """
    mirrors = [axes for count in range(len(mirror_axes) + 1) for axes in combinations(sorted(mirror_axes), count)]
    if name == "none":
        return [(0, ())]
    if name == "flip":
        return [(0, axes) for axes in mirrors]
    if name == "flip+rot90":
        if spatial_dims == 3:
            raise ConfigError("test-time augmentation flip+rot90 is for slice networks; a 3D network takes none or flip")
        return [(turns, axes) for turns in range(4) for axes in mirrors]
    raise ConfigError(f"unknown test-time augmentation {name!r}; choose one of none, flip, flip+rot90")


def apply_transform(volume: torch.Tensor, transform: Transform) -> torch.Tensor:
    """Apply ``transform`` to a ``(C, X, Y, Z)`` volume."""
    turns, axes = transform
    if axes:
        volume = volume.flip([a + 1 for a in axes])
    return torch.rot90(volume, turns, dims=(1, 2)) if turns else volume


def undo_transform(volume: torch.Tensor, transform: Transform) -> torch.Tensor:
    """Undo ``transform`` on a ``(K, X, Y, Z)`` output."""
    turns, axes = transform
    if turns:
        volume = torch.rot90(volume, -turns, dims=(1, 2))
    return volume.flip([a + 1 for a in axes]) if axes else volume

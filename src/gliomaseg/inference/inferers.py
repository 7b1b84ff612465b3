"""Inferers: how a network covers a preprocessed case, as objects (after MONAI's ``SliceInferer``
and ``SlidingWindowInferer``).

Both take a ``(C, X, Y, Z)`` float32 volume on the network grid and a network callable (logits
out) and return ``(K, X, Y, Z)`` float32 sigmoid probabilities in [0, 1].
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..data.preprocessing import stack_slices

Network = Callable[[torch.Tensor], torch.Tensor]


class SliceInferer:
    """A 2D network applied to every slice along the last axis, with ``context`` neighbouring
    slices on each side stacked as channels (2.5D; 0 for plain slices), in batches, each slice
    zero-padded at its end to a multiple of the network's stride and cropped back.

    Args:
        context: neighbours on each side (``in_channels = C * (2 * context + 1)``).
        batch_size: slices per forward pass.
        stride: the network's total downsampling (sides must be multiples of it).
    """

    def __init__(self, context: int = 0, batch_size: int = 32, stride: int = 1):
        self.context, self.batch_size, self.stride = context, batch_size, max(stride, 1)

    def __call__(self, volume: torch.Tensor, network: Network) -> torch.Tensor:
        sx, sy, depth = volume.shape[1:]
        pad_x, pad_y = -sx % self.stride, -sy % self.stride
        padded = F.pad(volume, (0, 0, 0, pad_y, 0, pad_x)) if pad_x or pad_y else volume
        outputs = []
        for start in range(0, depth, self.batch_size):
            z = torch.arange(start, min(start + self.batch_size, depth))
            logits = network(stack_slices(padded, z, self.context))
            outputs.append(torch.sigmoid(logits[:, :, :sx, :sy].float()))
        return torch.cat(outputs).permute(1, 2, 3, 0)


class SlidingWindowInferer:
    """A 3D network applied by Gaussian-weighted sliding windows (MONAI ``sliding_window_inference``).

    Args:
        roi_size: window in voxels, ``(x, y, z)``.
        overlap: fraction of the window shared by neighbouring windows, in [0, 1).
        batch_size: windows per forward pass.
    """

    def __init__(self, roi_size: tuple[int, int, int], overlap: float = 0.5, batch_size: int = 1):
        self.roi_size, self.overlap, self.batch_size = tuple(roi_size), overlap, batch_size

    def __call__(self, volume: torch.Tensor, network: Network) -> torch.Tensor:
        from monai.inferers import sliding_window_inference  # MONAI costs start-up time; only 3D models need it

        probabilities = sliding_window_inference(
            volume[None], roi_size=self.roi_size, sw_batch_size=self.batch_size,
            predictor=lambda patch: torch.sigmoid(network(patch).float()), overlap=self.overlap, mode="gaussian")
        return probabilities[0].float()

"""Preprocessing helpers on hand-made arrays."""

from __future__ import annotations

import torch

from gliomaseg.data.preprocessing import stack_slices


def test_stack_slices_orders_neighbours_then_sequences():
    """Channel k * C + c of slice z is sequence c at slice z - context + k, edges repeated."""
    volume = torch.arange(2 * 3 * 3 * 5, dtype=torch.float32).reshape(2, 3, 3, 5)
    stacked = stack_slices(volume, torch.tensor([0, 4]), context=1)
    assert stacked.shape == (2, 6, 3, 3)
    for row, z in enumerate((0, 4)):
        for k, neighbour in enumerate((max(z - 1, 0), z, min(z + 1, 4))):
            for c in range(2):
                assert torch.equal(stacked[row, k * 2 + c], volume[c, :, :, neighbour])

"""The two inferers and the one predictor: slice-wise (with and without neighbouring slices)
and 3D sliding window cover every voxel exactly once in effect, and the predictor runs either
on real data through the same code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import BRATS_TRAIN_CASE
from gliomaseg.config import Config
from gliomaseg.data.brats import load_case, scan_case
from gliomaseg.data.preprocessing import stack_slices
from gliomaseg.inference.inferers import SliceInferer, SlidingWindowInferer
from gliomaseg.inference.predictor import Predictor
from gliomaseg.models import create_model


def _pointwise(images: torch.Tensor) -> torch.Tensor:
    """Logits from the first channel alone: an equivariant 'network' for any input size."""
    return images[:, :1] * 2 - 1


def test_slice_inferer_equals_the_network_slice_by_slice():
    """Batches, padding to the stride and cropping back change nothing for a pointwise network."""
    volume = torch.rand(3, 37, 45, 11)
    expected = torch.sigmoid(volume[:1] * 2 - 1)
    for batch_size, stride in ((4, 16), (11, 1), (32, 32)):
        out = SliceInferer(0, batch_size, stride)(volume, _pointwise)
        assert out.shape == (1, 37, 45, 11)
        assert torch.allclose(out, expected, atol=1e-6)


def test_slice_inferer_stacks_neighbours_as_channels():
    """With context 1 the network sees (z-1, z, z+1) as channels, edges repeated."""
    volume = torch.arange(5, dtype=torch.float32).reshape(1, 1, 1, 5).expand(1, 4, 4, 5).contiguous()
    seen = []

    def network(images):
        seen.append(images[:, :, 0, 0].clone())
        return images[:, :1]

    SliceInferer(1, 8, 1)(volume, network)
    assert seen[0].tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 4]]
    assert torch.equal(stack_slices(volume, torch.tensor([0]), 1)[0, :, 0, 0], torch.tensor([0.0, 0.0, 1.0]))


def test_sliding_window_inferer_equals_the_network_on_the_whole_volume():
    """Overlapping Gaussian-weighted windows of a pointwise network reproduce it everywhere,
    also where the volume is smaller than the window along an axis."""
    volume = torch.rand(2, 40, 35, 20)
    out = SlidingWindowInferer((16, 16, 32), overlap=0.5)(volume, _pointwise)
    assert out.shape == (1, 40, 35, 20)
    assert torch.allclose(out, torch.sigmoid(volume[:1] * 2 - 1), atol=1e-5)


@pytest.mark.parametrize("name, data", [
    ("unet", {"dataset": "brats", "image_size": 0, "patch_size": [32, 32, 1], "context_slices": 1}),
    ("unet3d", {"dataset": "brats", "image_size": 0, "patch_size": [32, 32, 32]}),
])
def test_predictor_runs_both_inferers_on_a_real_case(brats_root, name, data):
    """One Predictor drives a 2.5D slice network and a 3D network on a real BraTS case (cropped
    to 40 slices to stay quick): probabilities on the case's own grid, zero outside the brain
    box, and a label map in the BraTS convention."""
    case = load_case(scan_case(brats_root / BRATS_TRAIN_CASE))
    sub = case.images[..., 60:100].copy()
    in_channels = 12 if name == "unet" else 4
    config = Config.from_dict({"model": {"name": name, "in_channels": in_channels, "out_channels": 3, "width": 4},
                               "data": data, "runtime": {"bf16": False}, "inference": {"batch_size": 16}})
    torch.manual_seed(0)
    predictor = Predictor(create_model(config.model), config)
    assert type(predictor.inferer) is (SliceInferer if name == "unet" else SlidingWindowInferer)
    probabilities = predictor.probabilities(sub)
    assert probabilities.shape == (3, *sub.shape[1:]) and probabilities.dtype == np.float32
    assert 0 <= probabilities.min() and probabilities.max() <= 1
    outside = ~np.any(sub != 0, axis=0)
    assert outside.any() and np.all(probabilities[:, outside.all(axis=(1, 2))] == 0)

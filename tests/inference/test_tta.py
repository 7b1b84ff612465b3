"""Test-time augmentation undoes each transform: an equivariant network gives the same output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gliomaseg.config import TTA_CHOICES, Config
from gliomaseg.data.augment import trained_mirror_axes
from gliomaseg.inference.predictor import Predictor


class Pointwise:
    """A backend that maps each pixel on its own, so it commutes with flips and rotations."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images[:, 1:2] * 4 - 2


class LeftBiased:
    """A backend whose output depends on the column: not equivariant."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(-3, 3, images.shape[-1])
        return images[:, 1:2] * 0 + ramp


def _volume() -> np.ndarray:
    """Three 64x64 slices of 3 channels, ``(C, H, W, S)`` uint8."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=(3, 64, 64, 3), dtype=np.uint8)


def _config(tta: str) -> Config:
    """A slice network's config, mirrored in training as by default (augment.flip: the width axis)."""
    config = Config.from_dict({"data": {"dataset": "kaggle3m", "image_size": 64}, "inference": {"tta": tta}})
    config.inference.mirror_axes = trained_mirror_axes(config.augment, spatial_dims=2)
    assert config.inference.mirror_axes == (1,)
    return config


@pytest.mark.parametrize("tta", sorted(TTA_CHOICES))
def test_tta_is_exact_for_an_equivariant_network(tta):
    """Every TTA mode returns the plain prediction when the network is pointwise."""
    plain = Predictor(Pointwise(), _config("none")).probabilities(_volume())
    assert np.allclose(Predictor(Pointwise(), _config(tta)).probabilities(_volume()), plain, atol=1e-6)


def test_flip_tta_averages_mirrored_outputs():
    """With a column-dependent network, flip TTA averages it with its mirror: left-right symmetric output."""
    out = Predictor(LeftBiased(), _config("flip")).probabilities(_volume())  # (1, H, W, S)
    assert np.allclose(out, out[:, :, ::-1], atol=1e-6)
    plain = Predictor(LeftBiased(), _config("none")).probabilities(_volume())
    assert not np.allclose(plain, plain[:, :, ::-1], atol=1e-3)

"""Test-time augmentation undoes each transform: an equivariant network gives the same output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gliomaseg.config import Config
from gliomaseg.inference.predictor import TTA_TRANSFORMS, Predictor


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
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=(3, 64, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize("tta", sorted(TTA_TRANSFORMS))
def test_tta_is_exact_for_an_equivariant_network(tta):
    """Every TTA mode returns the plain prediction when the network is pointwise."""
    config = Config.from_dict({"data": {"image_size": 64}, "inference": {"tta": "none"}})
    plain = Predictor(Pointwise(), config).probabilities(_volume())
    config.inference.tta = tta
    assert np.allclose(Predictor(Pointwise(), config).probabilities(_volume()), plain, atol=1e-6)


def test_flip_tta_averages_mirrored_outputs():
    """With a column-dependent network, flip TTA averages it with its mirror: left-right symmetric output."""
    config = Config.from_dict({"data": {"image_size": 64}, "inference": {"tta": "flip"}})
    out = Predictor(LeftBiased(), config).probabilities(_volume())
    assert np.allclose(out, out[..., ::-1], atol=1e-6)
    config.inference.tta = "none"
    plain = Predictor(LeftBiased(), config).probabilities(_volume())
    assert not np.allclose(plain, plain[..., ::-1], atol=1e-3)

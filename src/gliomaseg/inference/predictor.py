"""Whole-volume prediction: preprocess, batched forward pass, map back, threshold, post-process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import Config
from ..errors import ConfigError
from ..data.preprocessing import from_network, to_network
from ..models.weights import load_model, resolve_weights
from ..runtime import autocast, memory_format
from .postprocess import postprocess


# Mirrorings (tensor dims to flip) averaged by each test-time augmentation, as in nnU-Net.
TTA_FLIPS: dict[str, list[tuple[int, ...]]] = {
    "none": [()],
    "flip": [(), (3,), (2,), (2, 3)],
}


@dataclass
class Prediction:
    """One volume's prediction on its original grid.

    Attributes:
        probabilities: ``(S, H, W)`` float32 in [0, 1].
        mask: ``(S, H, W)`` bool, thresholded and post-processed.
    """

    probabilities: np.ndarray
    mask: np.ndarray


class Predictor:
    """Applies a trained network to whole patients (or single slices).

    Args:
        model: network returning logits ``(B, 1, N, N)``.
        config: the run config the network was trained with (preprocessing and inference).
    """

    def __init__(self, model: nn.Module, config: Config):
        self.config = config
        self.memory_format = memory_format(config.train.channels_last)
        self.model = model.eval().to(memory_format=self.memory_format)

    @classmethod
    def from_path(cls, model: str | Path | None = None) -> "Predictor":
        """Load from a weights file, a run folder, or the bundled model (``None``)."""
        network, config = load_model(resolve_weights(model))
        return cls(network, config)

    @torch.inference_mode()
    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Tumor probability per pixel.

        Args:
            images: ``(S, H, W, C)`` uint8, one patient's slices in slice order (``S`` may be 1).

        Returns:
            ``(S, H, W)`` float32 in [0, 1].
        """
        network_input = to_network(images, self.config.data)
        batch = self.config.inference.batch_size
        outputs = []
        for start in range(0, network_input.images.shape[0], batch):
            chunk = network_input.images[start:start + batch].contiguous(memory_format=self.memory_format)
            outputs.append(self._forward(chunk))
        return from_network(torch.cat(outputs), network_input)

    def _forward(self, images: torch.Tensor) -> torch.Tensor:
        """Sigmoid probabilities ``(B, 1, N, N)``, averaged over mirrorings when TTA is on."""
        flips = TTA_FLIPS.get(self.config.inference.tta)
        if flips is None:
            raise ConfigError(f"unknown test-time augmentation {self.config.inference.tta!r}; choose one of {', '.join(TTA_FLIPS)}")
        total = torch.zeros(images.shape[0], 1, *images.shape[2:])
        for dims in flips:
            with autocast(self.config.train.bf16):
                logits = self.model(images.flip(dims) if dims else images).float()
            total += torch.sigmoid(logits.flip(dims) if dims else logits)
        return total / len(flips)

    def predict(self, images: np.ndarray) -> Prediction:
        """Probabilities, then the mask: threshold and the configured post-processing."""
        probabilities = self.probabilities(images)
        mask = postprocess(probabilities >= self.config.inference.threshold, self.config.inference.postprocess)
        return Prediction(probabilities, mask)

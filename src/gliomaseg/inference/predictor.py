"""Whole-volume prediction: preprocess, batched forward pass, map back, threshold, post-process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..config import Config
from ..errors import ConfigError, InputError
from ..data.preprocessing import from_network, to_network
from ..models.weights import load_model, resolve_weights
from .backends import BACKENDS, OnnxBackend, TorchBackend
from .postprocess import postprocess


# Test-time augmentation: each transform is (quarter turns, mirror left-right), applied to the
# input and undone on the output before the probabilities are averaged (nnU-Net style).
# "flip" is the 4 mirrorings of the two in-plane axes, "flip+rot90" all 8 symmetries of the square.
TTA_TRANSFORMS: dict[str, list[tuple[int, bool]]] = {
    "none": [(0, False)],
    "flip": [(0, False), (0, True), (2, True), (2, False)],
    "flip+rot90": [(k, mirror) for k in range(4) for mirror in (False, True)],
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
        model: PyTorch network returning logits ``(B, 1, N, N)``, or a backend (a callable from
            ``(B, C, N, N)`` float32 to logits, see :mod:`.backends`).
        config: the run config the network was trained with (preprocessing and inference).
    """

    def __init__(self, model: nn.Module | Callable[[torch.Tensor], torch.Tensor], config: Config):
        self.config = config
        self.backend = TorchBackend(model, config) if isinstance(model, nn.Module) else model

    @classmethod
    def from_path(cls, model: str | Path | None = None, backend: str = "torch") -> "Predictor":
        """Load from a weights file, a run folder, the bundled model (``None``), or, with
        ``backend="onnxruntime"``, an ``.onnx`` file from ``gliomaseg export``.

        Raises:
            InputError: missing or unreadable model, or a model that does not fit the backend.
            ConfigError: unknown backend.
        """
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        is_onnx = model is not None and Path(model).suffix.lower() == ".onnx"
        if is_onnx != (backend == "onnxruntime"):
            where = model if model is not None else "the bundled model"
            raise InputError(where, "the onnxruntime backend needs an .onnx file (make one with `gliomaseg export`), "
                             "and an .onnx file needs --backend onnxruntime")
        if is_onnx:
            onnx_backend = OnnxBackend(model)
            return cls(onnx_backend, onnx_backend.config)
        path = resolve_weights(model)
        network, config = load_model(path)
        if config.data.dataset == "brats":
            raise InputError(path, "a BraTS model segments BraTS cases (NIfTI), not LGG slices")
        return cls(network, config)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Tumor probability per pixel.

        Args:
            images: ``(S, H, W, C)`` uint8, one patient's slices in slice order (``S`` may be 1).

        Returns:
            ``(S, H, W)`` float32 in [0, 1].
        """
        network_input = to_network(images, self.config.data)
        batch = self.config.inference.batch_size
        outputs = [self._forward(network_input.images[start:start + batch])
                   for start in range(0, network_input.images.shape[0], batch)]
        return from_network(torch.cat(outputs), network_input)

    def _forward(self, images: torch.Tensor) -> torch.Tensor:
        """Sigmoid probabilities ``(B, 1, N, N)``, averaged over the TTA transforms."""
        transforms = TTA_TRANSFORMS.get(self.config.inference.tta)
        if transforms is None:
            raise ConfigError(f"unknown test-time augmentation {self.config.inference.tta!r}; "
                              f"choose one of {', '.join(TTA_TRANSFORMS)}")
        total = torch.zeros(images.shape[0], 1, *images.shape[2:])
        for turns, mirror in transforms:
            view = torch.rot90(images.flip(3) if mirror else images, turns, dims=(2, 3))
            logits = torch.rot90(self.backend(view.contiguous()), -turns, dims=(2, 3))
            total += torch.sigmoid(logits.flip(3) if mirror else logits)
        return total / len(transforms)

    def predict(self, images: np.ndarray) -> Prediction:
        """Probabilities, then the mask: threshold and the configured post-processing."""
        probabilities = self.probabilities(images)
        mask = postprocess(probabilities >= self.config.inference.threshold, self.config.inference.postprocess)
        return Prediction(probabilities, mask)

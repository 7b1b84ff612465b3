"""One predictor for every dataset type and network (after nnU-Net v2's ``nnUNetPredictor``):
preprocess, run the network through its inferer with test-time augmentation, map back onto the
input grid, threshold and post-process into a label map.

The model's config decides everything: the dataset type (preprocessing recipe and label
convention), the network's dimensions (slice inferer with ``data.context_slices`` neighbours,
or 3D sliding window of ``data.patch_size``), its stride, the mirror axes of its training
(flip TTA), threshold and post-processing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..config import Config
from ..data.base import Case, get_dataset
from ..data.preprocessing import Preprocessing
from ..errors import InputError
from ..models.registry import spatial_dims
from ..models.weights import load_model, resolve_weights
from ..runtime import keep_freed_memory
from .backends import OnnxBackend, TorchBackend
from .inferers import SliceInferer, SlidingWindowInferer
from .postprocess import to_label
from .tta import apply_transform, tta_transforms, undo_transform


@dataclass(frozen=True)
class Prediction:
    """One case's prediction on its own grid.

    Attributes:
        probabilities: ``(K, *spatial)`` float32 in [0, 1], one channel per region.
        label: ``(*spatial)`` uint8 label map in the case's convention, thresholded and
            post-processed.
    """

    probabilities: np.ndarray
    label: np.ndarray


class Predictor:
    """Applies a trained network to whole cases.

    Args:
        model: a PyTorch network returning logits ``(B, K, *spatial)``, or a backend (a callable
            from ``(B, C, *spatial)`` float32 to logits, see :mod:`.backends`).
        config: the run config the network was trained with.

    Raises:
        ConfigError: an unknown dataset type or network in the config, or a TTA mode the
            network cannot take.
    """

    def __init__(self, model: nn.Module | Callable[[torch.Tensor], torch.Tensor], config: Config):
        self.config = config
        self.dims = spatial_dims(config.model.name)
        self.backend = TorchBackend(model, config, self.dims) if isinstance(model, nn.Module) else model
        self.dataset = get_dataset(config.data.dataset)
        self.preprocessing = Preprocessing.from_config(config.data, self.dataset.volumetric)
        if self.dims == 3:
            keep_freed_memory()  # whole-case 3D inference 1.13x on the CPU (benchmarks/allocator.py)
            self.inferer = SlidingWindowInferer(config.data.patch_size, config.inference.overlap)
        else:
            stride = getattr(self.backend, "stride", 1)
            self.inferer = SliceInferer(config.data.context_slices, config.inference.batch_size, stride)
        tta_transforms(config.inference.tta, config.inference.mirror_axes, self.dims)  # checked now, not mid-run

    @classmethod
    def from_path(cls, model: str | Path | None = None, dataset: str = "kaggle3m", backend: str = "torch") -> "Predictor":
        """Load a bundled model by name (``lgg``, ``brats``, ...), a weights file, a run folder,
        the bundled model of dataset type ``dataset`` (``model`` ``None``), or, with
        ``backend="onnxruntime"``, an ``.onnx`` file from ``gliomaseg export``.

        Raises:
            InputError: missing or unreadable model, or a model that does not fit the backend.
        """
        is_onnx = model is not None and Path(model).suffix.lower() == ".onnx"
        if is_onnx != (backend == "onnxruntime"):
            where = model if model is not None else "the bundled model"
            raise InputError(where, "the onnxruntime backend needs an .onnx file (make one with `gliomaseg export`), "
                             "and an .onnx file needs --backend onnxruntime")
        if is_onnx:
            onnx_backend = OnnxBackend(model)
            return cls(onnx_backend, onnx_backend.config)
        network, config = load_model(resolve_weights(model, dataset))
        return cls(network, config)

    @property
    def in_channels(self) -> int:
        """Channels of one slice or volume the network takes (before 2.5D stacking)."""
        return self.config.model.in_channels // (2 * self.config.data.context_slices + 1) if self.dims == 2 else self.config.model.in_channels

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Probability of each region at each voxel.

        Args:
            images: ``(C, *spatial)`` as a dataset type reads them (:class:`~gliomaseg.data.base.Case`).

        Returns:
            ``(K, *spatial)`` float32 in [0, 1], averaged over the TTA transforms; 0 outside
            the cropped box.
        """
        prepared = self.preprocessing.forward(images)
        transforms = tta_transforms(self.config.inference.tta, self.config.inference.mirror_axes, self.dims)
        total = None
        for transform in transforms:
            output = undo_transform(self.inferer(apply_transform(prepared.images, transform), self.backend), transform)
            total = output if total is None else total + output
        return self.preprocessing.inverse(total / len(transforms), prepared)

    def predict(self, case: Case) -> Prediction:
        """Probabilities, then the label map in ``case``'s convention (threshold, post-processing).

        Raises:
            InputError: the case's channels or label convention do not fit the model.
        """
        if case.images.shape[0] != self.in_channels:
            raise InputError(case.sources[0] if case.sources else case.id,
                             f"has {case.images.shape[0]} channel(s); the model takes {self.in_channels}")
        if len(case.labels.regions) != self.config.model.out_channels:
            raise InputError(case.sources[0] if case.sources else case.id,
                             f"a {case.dataset} case has regions {', '.join(case.labels.regions)}; "
                             f"the model predicts {self.config.model.out_channels} channel(s)")
        probabilities = self.probabilities(case.images)
        inference = self.config.inference
        return Prediction(probabilities, to_label(probabilities, case.labels, inference.threshold, inference.postprocess))

"""Whole-case BraTS prediction: crop and z-score, run a 3D network by sliding window or a 2D
network slice by slice (2.5D), optional mirroring TTA, threshold the WT/TC/ET regions, and put
them back on the case's original grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference
from torch import nn

from ..config import Config
from ..data.brats import REGIONS, BratsCase, BratsVolume, label_to_regions, regions_to_label
from ..data.volume import crop_to_brain, stack_slices, uncrop
from ..errors import ConfigError, InputError
from ..metrics import overlap_metrics
from ..models.registry import spatial_dims
from ..models.weights import load_model, resolve_weights
from .backends import TorchBackend
from .postprocess import drop_small_components, largest_component, min_size, validate_postprocess

# Mirrorings averaged by "flip" TTA, as spatial axes of a (C, X, Y, Z) volume: the identity and
# the in-plane mirrors. Only mirrors seen in training help (mirroring along an axis the network
# never saw flipped lowered Dice), so 3D networks (trained with every mirror) use all four and
# 2D networks (trained with mirrors along their image width, the Y axis) the identity and that one.
VOLUME_TTA: dict[str, list[tuple[int, ...]]] = {
    "none": [()],
    "flip": [(), (1,), (2,), (1, 2)],
}
SLICE_TRAINED_MIRRORS = {2}
SLICE_STRIDE = 32  # 2D networks need sides divisible by their total downsampling


@dataclass
class VolumePrediction:
    """One case's prediction on its original grid.

    Attributes:
        probabilities: ``(3, X, Y, Z)`` float32 in [0, 1], channels WT, TC, ET.
        regions: ``(3, X, Y, Z)`` bool, thresholded.
        label: ``(X, Y, Z)`` uint8 label map in the case's convention.
    """

    probabilities: np.ndarray
    regions: np.ndarray
    label: np.ndarray


class VolumePredictor:
    """Applies a BraTS network (3D, or 2D on slice stacks) to whole cases.

    Args:
        model: network returning region logits ``(B, 3, ...)``.
        config: its run config (``data.dataset`` ``brats``).
    """

    def __init__(self, model: nn.Module, config: Config):
        self.config = config
        self.dims = spatial_dims(config.model.name)
        self.backend = TorchBackend(model, config, self.dims)

    @classmethod
    def from_path(cls, model: str | Path | None = None) -> "VolumePredictor":
        """Load a BraTS model from a weights file, a run folder, or the bundled one (``None``).

        Raises:
            InputError: missing or unreadable model, or one not trained on BraTS.
        """
        path = resolve_weights(model, dataset="brats")
        network, config = load_model(path)
        if config.data.dataset != "brats":
            raise InputError(path, f"model trained on {config.data.dataset} data, not on BraTS cases")
        return cls(network, config)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Region probabilities of a case.

        Args:
            images: ``(4, X, Y, Z)`` scanner intensities, channels T1, T1ce, T2, FLAIR.

        Returns:
            ``(3, X, Y, Z)`` float32 in [0, 1] (WT, TC, ET), zero outside the brain box.
        """
        tta = self.config.inference.tta
        if tta not in VOLUME_TTA:
            raise ConfigError(f"test-time augmentation {tta!r} is not available for BraTS; choose one of {', '.join(VOLUME_TTA)}")
        cropped, box = crop_to_brain(images)
        volume = torch.from_numpy(cropped)
        total = None
        mirrors = [axes for axes in VOLUME_TTA[tta] if self.dims == 3 or set(axes) <= SLICE_TRAINED_MIRRORS]
        for axes in mirrors:
            view = volume.flip(axes) if axes else volume
            probs = self._volume(view) if self.dims == 3 else self._slices(view)
            probs = probs.flip(axes) if axes else probs
            total = probs if total is None else total + probs
        return uncrop((total / len(mirrors)).numpy(), box, images.shape[1:])

    def _volume(self, volume: torch.Tensor) -> torch.Tensor:
        """3D network: Gaussian-weighted sliding windows of ``data.patch_size``."""
        probs = sliding_window_inference(
            volume[None], roi_size=tuple(self.config.data.patch_size), sw_batch_size=1,
            predictor=lambda patch: torch.sigmoid(self.backend(patch)),
            overlap=self.config.inference.overlap, mode="gaussian")
        return probs[0].float()

    def _slices(self, volume: torch.Tensor) -> torch.Tensor:
        """2D network: every axial slice stack, padded to the network's stride."""
        sx, sy, depth = volume.shape[1:]
        pad_x, pad_y = -sx % SLICE_STRIDE, -sy % SLICE_STRIDE
        padded = F.pad(volume, (0, 0, 0, pad_y, 0, pad_x))
        batch, outputs = self.config.inference.batch_size, []
        for start in range(0, depth, batch):
            z = torch.arange(start, min(start + batch, depth))
            logits = self.backend(stack_slices(padded, z, self.config.data.context_slices))
            outputs.append(torch.sigmoid(logits[:, :, :sx, :sy]))
        return torch.cat(outputs).permute(1, 2, 3, 0)

    def predict(self, images: np.ndarray, enhancing_label: int = 4) -> VolumePrediction:
        """Probabilities, the label map (regions thresholded at ``inference.threshold``) and the
        regions read back from the label map, so they nest as in the written file."""
        probabilities = self.probabilities(images)
        inference = self.config.inference
        regions, label = threshold_regions(probabilities, inference.threshold, inference.postprocess, enhancing_label)
        return VolumePrediction(probabilities, regions, label)


def threshold_regions(probabilities: np.ndarray, threshold: float, postprocess: str, enhancing_label: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Region probabilities -> (regions, label map): thresholded, cleaned (:func:`clean_regions`),
    turned into the label map, and the regions read back from it so they nest as in the file.

    Args:
        probabilities: ``(3, X, Y, Z)`` float in [0, 1], WT, TC, ET.

    Returns:
        ``(3, X, Y, Z)`` bool regions and the ``(X, Y, Z)`` uint8 label map.
    """
    label = regions_to_label(clean_regions(probabilities >= threshold, postprocess), enhancing_label)
    return label_to_regions(label, enhancing_label), label


def clean_regions(regions: np.ndarray, method: str) -> np.ndarray:
    """Post-process predicted regions: the whole tumor is cleaned by ``method`` and the tumor
    core and enhancing tumor are kept only inside what remains of it.

    Args:
        regions: ``(3, X, Y, Z)`` bool, WT, TC, ET.
        method: ``"none"``; ``"largest-3d"``: keep the largest 26-connected WT component (one
            lesion); ``"min-size:N"``: drop WT components of fewer than N voxels (multifocal
            tumors keep their foci).

    Returns:
        ``(3, X, Y, Z)`` bool.

    Raises:
        ConfigError: unknown method.
    """
    validate_postprocess(method)
    if method == "none":
        return regions
    whole = largest_component(regions[0]) if method == "largest-3d" else drop_small_components(regions[0], min_size(method))
    return regions & whole[None]


def case_dice(predictor: VolumePredictor, case: BratsCase, volume: BratsVolume) -> float:
    """Mean of the WT, TC and ET Dice of one labelled case (the validation score)."""
    predicted = predictor.predict(volume.images, case.enhancing_label).regions
    truth = label_to_regions(volume.label, case.enhancing_label)
    return float(np.mean([overlap_metrics(predicted[i], truth[i])["dice"] for i in range(len(REGIONS))]))

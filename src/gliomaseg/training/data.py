"""Training slices held in memory, preprocessed once, and the tumor-oversampling sampler."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import AugmentConfig, DataConfig
from ..data.augment import augment_batch
from ..data.kaggle3m import Patient
from ..data.preprocessing import mask_to_network, to_network


@dataclass
class SliceBank:
    """All training slices, preprocessed as the network sees them.

    Attributes:
        images: ``(N, C, S, S)`` float32.
        masks: ``(N, 1, S, S)`` float32 in {0, 1}.
        has_tumor: ``(N,)`` bool, whether the slice's original mask has any tumor pixel.
    """

    images: torch.Tensor
    masks: torch.Tensor
    has_tumor: torch.Tensor

    @classmethod
    def from_patients(cls, patients: list[Patient], config: DataConfig) -> "SliceBank":
        """Preprocess loaded patients (``images`` and ``masks`` set) with ``config``."""
        images, masks, tumor = [], [], []
        for patient in patients:
            network_input = to_network(patient.images, config)
            images.append(network_input.images)
            masks.append(mask_to_network(patient.masks, network_input.box, config.image_size))
            tumor.append(torch.from_numpy(patient.masks.reshape(len(patient.masks), -1).any(axis=1)))
        return cls(torch.cat(images), torch.cat(masks), torch.cat(tumor))

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, index: torch.Tensor, augment: AugmentConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The slices at ``index``, augmented: ``(B, C, S, S)`` images, ``(B, 1, S, S)`` masks."""
        return augment_batch(self.images[index], self.masks[index], augment, generator)

    def sample(self, count: int, tumor_fraction: float, generator: torch.Generator) -> torch.Tensor:
        """``count`` slice indices drawn with replacement so that about ``tumor_fraction`` of
        them show tumor (both kinds uniformly within)."""
        n_tumor = int(self.has_tumor.sum())
        n_empty = len(self.has_tumor) - n_tumor
        if n_tumor == 0 or n_empty == 0:
            weights = torch.ones(len(self.has_tumor))
        else:
            weights = torch.where(self.has_tumor, tumor_fraction / n_tumor, (1 - tumor_fraction) / n_empty)
        return torch.multinomial(weights, count, replacement=True, generator=generator)

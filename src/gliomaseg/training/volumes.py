"""BraTS training samples held in memory: 3D patches for volume networks, axial slice stacks
(2.5D) for slice networks, drawn from the same preprocessed cases by one sampler.

Each case is cropped to its brain box and z-scored once (:func:`gliomaseg.data.volume.crop_to_brain`)
and zero-padded to at least the training window. A sample is a window position: with
probability ``tumor_fraction`` centred on a random tumor (WT) voxel, else anywhere in the
case, as nnU-Net's foreground oversampling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import track

from ..config import AugmentConfig, Config
from ..data.augment import augment_batch
from ..data.brats import BratsCase, find_cases, label_to_regions, load_case
from ..data.volume import crop_to_brain, stack_slices
from ..errors import ConfigError
from ..models.registry import spatial_dims
from .trainer import Validator, require_split_ids

TUMOR_VOXELS_KEPT = 50_000  # per case, enough to spread tumor-centred samples over the lesion


class VolumeBank:
    """Preprocessed training cases and the window sampler.

    Args:
        images: per case, ``(C, X, Y, Z)`` float32 z-scored sequences.
        targets: per case, ``(K, X, Y, Z)`` float32 regions in {0, 1}.
        window: ``(x, y, z)`` voxels of one sample: the 3D patch, or ``(S, S, 1)`` for a slice.
        context: 2.5D only: neighbouring slices on each side stacked as channels; ``None`` for 3D.
        seed: seed of the subsampling of tumor voxels.
    """

    def __init__(self, images: list[torch.Tensor], targets: list[torch.Tensor], window: tuple[int, int, int],
                 context: int | None = None, seed: int = 0):
        self.window, self.context = window, context
        self.images = [_pad_to(image, window) for image in images]
        self.targets = [_pad_to(target, window) for target in targets]
        rng = np.random.default_rng(seed)
        self.tumor_voxels = []
        for target in self.targets:
            voxels = torch.nonzero(target[0] > 0)
            if len(voxels) > TUMOR_VOXELS_KEPT:
                voxels = voxels[torch.from_numpy(rng.choice(len(voxels), TUMOR_VOXELS_KEPT, replace=False))]
            self.tumor_voxels.append(voxels)

    def __len__(self) -> int:
        """Windows in one pass: the number of axial slices (2.5D) or of patch-sized blocks (3D)."""
        if self.context is not None:
            return sum(image.shape[-1] for image in self.images)
        return sum(int(np.prod(image.shape[1:]) // np.prod(self.window)) + 1 for image in self.images)

    def sample(self, count: int, tumor_fraction: float, generator: torch.Generator) -> torch.Tensor:
        """``count`` windows as ``(count, 4)`` long rows: case, then the window's lowest corner."""
        rows = torch.empty(count, 4, dtype=torch.long)
        cases = torch.randint(len(self.images), (count,), generator=generator)
        on_tumor = torch.rand(count, generator=generator) < tumor_fraction
        for row, (case, tumor) in enumerate(zip(cases.tolist(), on_tumor.tolist())):
            shape = torch.tensor(self.images[case].shape[1:])
            voxels = self.tumor_voxels[case]
            if tumor and len(voxels):
                centre = voxels[torch.randint(len(voxels), (1,), generator=generator).item()]
            else:
                centre = (torch.rand(3, generator=generator) * shape).long()
            size = torch.tensor(self.window)
            rows[row, 0] = case
            rows[row, 1:] = torch.minimum(torch.clamp(centre - size // 2, min=0), shape - size)
        return rows

    def batch(self, rows: torch.Tensor, augment: AugmentConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The windows of ``rows``, augmented: ``(B, C', S, S)`` and ``(B, K, S, S)`` slice stacks
        (2.5D, ``C' = C (2 context + 1)``) or ``(B, C, x, y, z)`` and ``(B, K, x, y, z)`` patches."""
        images, targets = [], []
        for case, x, y, z in rows.tolist():
            sx, sy, sz = self.window
            if self.context is None:
                images.append(self.images[case][:, x:x + sx, y:y + sy, z:z + sz])
                targets.append(self.targets[case][:, x:x + sx, y:y + sy, z:z + sz])
            else:
                stack = stack_slices(self.images[case][:, x:x + sx, y:y + sy], torch.tensor([z]), self.context)
                images.append(stack[0])
                targets.append(self.targets[case][:, x:x + sx, y:y + sy, z])
        return augment_batch(torch.stack(images), torch.stack(targets), augment, generator)


def _pad_to(volume: torch.Tensor, window: tuple[int, int, int]) -> torch.Tensor:
    """Zero-pad the spatial axes of ``(C, X, Y, Z)`` at their end up to ``window`` where shorter."""
    pad = [max(w - n, 0) for n, w in zip(volume.shape[1:], window)]
    return F.pad(volume, (0, pad[2], 0, pad[1], 0, pad[0])) if any(pad) else volume


def bank_for(images: list[torch.Tensor], targets: list[torch.Tensor], config: Config) -> VolumeBank:
    """The bank ``config``'s network trains on: 3D patches of ``data.patch_size``, or 2.5D slice
    stacks of ``data.image_size`` squares with ``data.context_slices`` neighbours.

    Raises:
        ConfigError: ``model.in_channels`` does not match the sequences and context.
    """
    sequences = images[0].shape[0]
    if spatial_dims(config.model.name) == 3:
        expected, window, context = sequences, tuple(config.data.patch_size), None
    else:
        context = config.data.context_slices
        expected, window = sequences * (2 * context + 1), (config.data.image_size, config.data.image_size, 1)
    if config.model.in_channels != expected:
        raise ConfigError(f"model.in_channels is {config.model.in_channels}, but the input has {expected} channels "
                          f"({sequences} sequences" + (f" x {2 * context + 1} slices)" if context is not None else ")"))
    return VolumeBank(images, targets, window, context, config.train.seed)


def training_case(case: BratsCase) -> tuple[torch.Tensor, torch.Tensor]:
    """A labelled case as the banks hold it: ``(C, x, y, z)`` float32 sequences cropped to the
    brain box and z-scored, and ``(3, x, y, z)`` float32 WT/TC/ET regions in {0, 1} on that box.

    Raises:
        InputError: unreadable case.
    """
    volume = load_case(case)
    cropped, box = crop_to_brain(volume.images)
    regions = label_to_regions(volume.label[box], case.enhancing_label)
    return torch.from_numpy(cropped), torch.from_numpy(regions.astype(np.float32))


def brats_training(data: Path, split: dict[str, list[str]], config: Config) -> tuple[VolumeBank, Validator]:
    """Load the split's BraTS train and val cases; the bank and the validator (per case, the
    mean of the WT, TC and ET Dice).

    Raises:
        InputError: a case of the split is missing or unreadable.
    """
    from ..inference.volumetric import VolumePredictor, case_dice

    by_id = {case.id: case for case in find_cases(data)}
    require_split_ids(data, split, by_id, "case")
    prepared = [training_case(by_id[cid]) for cid in track(split["train"], description="loading cases", transient=True)]
    val_cases = [(by_id[cid], load_case(by_id[cid])) for cid in split["val"]]

    def validator(model: torch.nn.Module) -> list[float]:
        predictor = VolumePredictor(model, config)
        return [case_dice(predictor, case, volume) for case, volume in val_cases]

    return bank_for([images for images, _ in prepared], [regions for _, regions in prepared], config), validator

"""Training samples held in memory, preprocessed once as the network sees them, and their
samplers (the :class:`~gliomaseg.training.trainer.Bank` protocol).

- :class:`SliceBank`: whole slices of slice datasets (``kaggle3m``, ``image_folder``), each
  with its ``data.context_slices`` neighbours as channels; a share ``tumor_fraction`` of each
  epoch is drawn from the slices that show tumor, each tumor slice alike (``train.tumor_sampling:
  slice``) or each patient's tumor alike (``case``: a small lesion's few slices are drawn as
  often as a large lesion's many, as nnU-Net draws the case before the foreground).
- :class:`VolumeBank`: windows of volume datasets (``brats``): 3D patches for volume networks,
  slice stacks (2.5D) for slice networks. Each case is zero-padded to at least the window; a
  sample is a window position, with probability ``tumor_fraction`` centred on a random tumor
  voxel, else anywhere in the case, as nnU-Net's foreground oversampling: a voxel of the whole
  tumor (first region; ``train.tumor_sampling: slice`` or ``case``), or of a region chosen
  among those the case holds, each alike (``region``: as nnU-Net draws one of the case's
  foreground classes before its voxel, here over the regions WT, TC, ET rather than the labels,
  so a small core or enhancing rim is centred on as often as the whole tumor).
  Its cases are tensors in memory (``train.bank: memory``) or, for data larger than memory
  (``train.bank: disk``), ``.npy`` files of a :class:`DiskStore` read through memory maps:
  a batch reads only its windows, so memory stays flat as the number of cases grows.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..atomic import atomic_path
from ..config import AugmentConfig
from ..data.augment import augment_batch
from ..data.preprocessing import stack_slices

TUMOR_VOXELS_KEPT = 50_000  # per case, enough to spread tumor-centred samples over the lesion


class SliceBank:
    """All training slices, preprocessed.

    Args:
        images: per case, ``(C, N, N, S)`` float32 network-grid volumes.
        targets: per case, ``(K, N, N, S)`` float32 regions in {0, 1}.
        has_tumor: per case, ``(S,)`` bool: whether the slice's original label shows tumor.
        context: neighbouring slices on each side stacked as channels.
        tumor_sampling: ``"slice"``: every tumor slice equally likely, so patients weigh by
            their number of tumor slices; ``"case"``: every patient with tumor equally likely,
            then one of its tumor slices (small-lesion sampling; Isensee et al. 2021, nnU-Net,
            draws the case first).
    """

    def __init__(self, images: list[torch.Tensor], targets: list[torch.Tensor], has_tumor: list[torch.Tensor], context: int = 0,
                 tumor_sampling: str = "slice"):
        self.images = torch.cat([stack_slices(v, torch.arange(v.shape[-1]), context) for v in images])
        self.stack = 2 * context + 1
        self.masks = torch.cat([t.permute(3, 0, 1, 2) for t in targets])
        self.has_tumor = torch.cat(has_tumor)
        # Relative weight of each tumor slice within the tumor share (normalised in sample()).
        if tumor_sampling == "case":  # each case's tumor slices share one unit
            self.tumor_weight = torch.cat([torch.full((len(t),), 1.0 / max(int(t.sum()), 1)) for t in has_tumor])
        else:
            self.tumor_weight = torch.ones(len(self.has_tumor))

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, index: torch.Tensor, augment: AugmentConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The slices at ``index``, augmented: ``(B, C', N, N)`` images, ``(B, K, N, N)`` targets."""
        return augment_batch(self.images[index], self.masks[index], augment, generator, self.stack)

    def sample(self, count: int, tumor_fraction: float, generator: torch.Generator) -> torch.Tensor:
        """``count`` slice indices drawn with replacement so that about ``tumor_fraction`` of
        them show tumor (tumor slices by the bank's ``tumor_sampling``, tumor-free ones uniformly)."""
        tumor_mass = float(self.tumor_weight[self.has_tumor].sum())
        n_empty = int((~self.has_tumor).sum())
        if tumor_mass == 0 or n_empty == 0:
            weights = torch.where(self.has_tumor, self.tumor_weight, torch.ones(()))
        else:
            weights = torch.where(self.has_tumor, self.tumor_weight * tumor_fraction / tumor_mass, (1 - tumor_fraction) / n_empty)
        return torch.multinomial(weights, count, replacement=True, generator=generator)


class VolumeBank:
    """Preprocessed training cases and the window sampler.

    Args:
        images: per case, ``(C, X, Y, Z)`` float32 z-scored sequences.
        targets: per case, ``(K, X, Y, Z)`` float32 regions in {0, 1}.
        window: ``(x, y, z)`` voxels of one sample: the 3D patch, or ``(S, S, 1)`` for a slice.
        context: 2.5D only: neighbouring slices on each side stacked as channels; ``None`` for 3D.
        seed: seed of the subsampling of tumor voxels.
        tumor_voxels: per case, one ``(V, 3)`` long tensor of voxels to centre windows on per
            non-empty region drawn from, when already chosen (:func:`select_tumor_voxels`; a disk bank
            chooses them before the target leaves memory).
        store: the :class:`DiskStore` that maps ``images`` and ``targets`` from disk, released
            after each batch so memory stays flat; ``None`` for tensors in memory.
    """

    def __init__(self, images: list[torch.Tensor], targets: list[torch.Tensor], window: tuple[int, int, int],
                 context: int | None = None, seed: int = 0, tumor_voxels: list[list[torch.Tensor]] | None = None,
                 store: DiskStore | None = None, tumor_sampling: str = "slice"):
        self.window, self.context, self.store = window, context, store
        self.images = [pad_to(image, window) for image in images]
        self.targets = [pad_to(target, window) for target in targets]
        rng = np.random.default_rng(seed)
        self.tumor_voxels = tumor_voxels or [select_tumor_voxels(target, rng, tumor_sampling) for target in self.targets]

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
            pools = self.tumor_voxels[case]
            if tumor and pools:
                # one pool draws nothing for its choice, so the default keeps its stream of draws
                voxels = pools[torch.randint(len(pools), (1,), generator=generator).item()] if len(pools) > 1 else pools[0]
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
        images, targets = torch.stack(images).float(), torch.stack(targets).float()
        if self.store is not None:
            self.store.release()
        return augment_batch(images, targets, augment, generator, 1 if self.context is None else 2 * self.context + 1)


def select_tumor_voxels(target: torch.Tensor, rng: np.random.Generator, tumor_sampling: str = "slice") -> list[torch.Tensor]:
    """The voxels windows may be centred on, per region drawn from.

    Args:
        target: ``(K, X, Y, Z)`` regions in {0, 1} (BraTS: WT, TC, ET).
        rng: draws the subsample of a large region.
        tumor_sampling: ``"region"``: one pool per region (all ``K``); otherwise (``"slice"``,
            ``"case"``) one pool, the first region's (the whole tumor).

    Returns:
        ``(V_k, 3)`` long voxel indices per non-empty pool, at most :data:`TUMOR_VOXELS_KEPT`
        each, drawn without replacement; no pool for an empty region (none for a case without tumor).
    """
    pools = []
    for region in target if tumor_sampling == "region" else target[:1]:
        voxels = torch.nonzero(region > 0)
        if len(voxels) > TUMOR_VOXELS_KEPT:
            voxels = voxels[torch.from_numpy(rng.choice(len(voxels), TUMOR_VOXELS_KEPT, replace=False))]
        if len(voxels):
            pools.append(voxels)
    return pools


class DiskStore:
    """Preprocessed arrays as ``.npy`` files in ``folder``, read back through memory maps.

    Files are written atomically and kept, so a resumed run (or another rank) reuses them.
    Pages read through the maps count as this process's memory until :meth:`release`; a 2.5D
    window reads pages across all slices of its rows (slices are the last, fastest axis).
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.maps: list[mmap.mmap] = []

    def put(self, name: str, array: torch.Tensor) -> torch.Tensor:
        """Write ``array`` as ``<name>.npy`` unless there, and return it memory-mapped
        (copy-on-write: nothing is read until indexed, nothing ever written back)."""
        path = self.folder / f"{name}.npy"
        if not path.exists():
            with atomic_path(path) as tmp, tmp.open("wb") as handle:
                np.save(handle, array.numpy())
        array = np.load(path, mmap_mode="c")
        self.maps.append(array._mmap)  # noqa: SLF001  numpy keeps the mmap object there
        return torch.from_numpy(array)

    def release(self) -> None:
        """Drop the pages read so far from this process's memory (they are clean: read again
        from the file, or the page cache, when next needed)."""
        for mapping in self.maps:
            mapping.madvise(mmap.MADV_DONTNEED)


def pad_to(volume: torch.Tensor, window: tuple[int, int, int]) -> torch.Tensor:
    """Zero-pad the spatial axes of ``(C, X, Y, Z)`` at their end up to ``window`` where shorter."""
    pad = [max(w - n, 0) for n, w in zip(volume.shape[1:], window)]
    return F.pad(volume, (0, pad[2], 0, pad[1], 0, pad[0])) if any(pad) else volume



"""Label conventions: how a dataset's label map turns into the network's target channels and
back, and which regions are scored.

- :class:`BinaryLabels`: one foreground class (an LGG FLAIR abnormality, a tumor on a slice):
  label 0 background, 1 tumor; one sigmoid output channel.
- :class:`BratsRegions`: BraTS labels 0 background, 1 necrotic and non-enhancing tumor core,
  2 peritumoral edema, 4 enhancing tumor (3 in BraTS 2023), scored as the overlapping challenge
  regions (Menze et al. 2015; Bakas et al. 2018) whole tumor WT = {1, 2, 4}, tumor core
  TC = {1, 4}, enhancing tumor ET = {4}; three sigmoid output channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LabelConvention:
    """Base of the conventions. ``regions``: names of the output channels and scored regions."""

    regions: tuple[str, ...]

    def to_regions(self, label: np.ndarray) -> np.ndarray:
        """``(*spatial)`` label map -> ``(K, *spatial)`` bool, one channel per region."""
        raise NotImplementedError

    def from_regions(self, regions: np.ndarray) -> np.ndarray:
        """``(K, *spatial)`` bool regions -> ``(*spatial)`` uint8 label map (inverse of
        :meth:`to_regions` on nested regions)."""
        raise NotImplementedError

    @property
    def allowed(self) -> tuple[int, ...]:
        """Label values a label map of this convention may hold."""
        raise NotImplementedError

    @property
    def definitions(self) -> dict[str, str]:
        """Region name -> the labels it is made of, in words (for reports)."""
        raise NotImplementedError


@dataclass(frozen=True)
class BinaryLabels(LabelConvention):
    """0 background, 1 tumor (region ``tumor``)."""

    regions: tuple[str, ...] = ("tumor",)

    def to_regions(self, label: np.ndarray) -> np.ndarray:
        return (label > 0)[None]

    def from_regions(self, regions: np.ndarray) -> np.ndarray:
        return regions[0].astype(np.uint8)

    @property
    def allowed(self) -> tuple[int, ...]:
        return (0, 1)

    @property
    def definitions(self) -> dict[str, str]:
        return {"tumor": "label 1 (mask pixels > 0)"}


@dataclass(frozen=True)
class BratsRegions(LabelConvention):
    """BraTS labels and regions; ``enhancing_label`` is 4 (2018-2021) or 3 (2023)."""

    regions: tuple[str, ...] = ("WT", "TC", "ET")
    enhancing_label: int = 4

    def to_regions(self, label: np.ndarray) -> np.ndarray:
        """``(X, Y, Z)`` label map -> ``(3, X, Y, Z)`` bool: WT, TC, ET (overlapping)."""
        return np.stack([
            np.isin(label, (1, 2, self.enhancing_label)),
            np.isin(label, (1, self.enhancing_label)),
            label == self.enhancing_label,
        ])

    def from_regions(self, regions: np.ndarray) -> np.ndarray:
        """ET -> enhancing label, TC without ET -> 1, WT without TC -> 2. Regions need not be
        nested: ET outside TC still gets the enhancing label, TC outside WT still gets 1.

        Args:
            regions: ``(3, X, Y, Z)`` bool, channels WT, TC, ET.

        Returns:
            ``(X, Y, Z)`` uint8.
        """
        whole, core, enhancing = regions.astype(bool)
        label = np.zeros(whole.shape, np.uint8)
        label[whole] = 2
        label[core] = 1
        label[enhancing] = self.enhancing_label
        return label

    @property
    def allowed(self) -> tuple[int, ...]:
        return (0, 1, 2, self.enhancing_label)

    @property
    def definitions(self) -> dict[str, str]:
        et = self.enhancing_label
        return {"WT": f"labels 1, 2, {et}", "TC": f"labels 1, {et}", "ET": f"label {et}"}

"""Fold ensembles: several trained networks of one architecture whose probabilities are averaged,
as nnU-Net ensembles its five cross-validation fold models at inference (Isensee et al. 2021).

An ensemble is a network like any other to the predictor, the backends and ONNX export: it
takes ``(B, C, *spatial)`` and returns logits ``(B, K, *spatial)``, the logits of the mean of
its members' sigmoid probabilities, so thresholding and TTA behave as for one network. It is
stored in one self-describing safetensors file (``model.members`` in its config, weights under
``members.<i>.``), written by ``gliomaseg ensemble`` (:func:`~.weights.save_ensemble`).

Slice networks trained at different input sides (``data.image_size``) can be joined too, as
nnU-Net ensembles configurations of different resolutions: the ensemble takes the largest side,
and each smaller member sees the input resized to its own side (bilinear, antialiased, as
:func:`~gliomaseg.data.preprocessing.resize`) and its probabilities resized back (bilinear).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.preprocessing import resize

# Probabilities are clamped to [EPS, 1 - EPS] before the logit, so it stays finite in fp32.
EPS = 1e-6


class Ensemble(nn.Module):
    """Mean of the members' sigmoid probabilities, returned as logits.

    Args:
        members: at least one network with the same input and output channels; each returns
            logits ``(B, K, *spatial)`` for input ``(B, C, *spatial)``.
        sizes: slice networks only: the side in pixels each member was trained at, one per
            member (a mixed-resolution ensemble); a member whose side differs from the input's
            runs on the input resized to ``(side, side)``. Empty: every member on the input.

    Forward:
        ``(B, C, *spatial)`` float -> ``(B, K, *spatial)`` float32 logits of
        ``mean_i sigmoid(member_i(x))``, clamped to ``[EPS, 1 - EPS]`` (|logit| <= 13.8).

    Raises:
        ValueError: no member, or ``sizes`` not one positive side per member.

    Inference cost grows linearly with the number of members (with the square of each side).
    """

    def __init__(self, members: list[nn.Module], sizes: tuple[int, ...] = ()):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if sizes and (len(sizes) != len(members) or min(sizes) < 1):
            raise ValueError(f"an ensemble of {len(members)} members needs one positive side per member, got {sizes}")
        self.members = nn.ModuleList(members)
        self.sizes = tuple(sizes)
        self.stride = getattr(members[0], "stride", 1)

    def _probabilities(self, member: nn.Module, size: int, images: torch.Tensor) -> torch.Tensor:
        if not size or tuple(images.shape[-2:]) == (size, size):
            return torch.sigmoid(member(images).float())
        probabilities = torch.sigmoid(member(resize(images, size)).float())
        return F.interpolate(probabilities, size=tuple(images.shape[-2:]), mode="bilinear", align_corners=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        sizes = self.sizes or (0,) * len(self.members)
        probabilities = torch.stack([self._probabilities(member, size, images)
                                     for member, size in zip(self.members, sizes)]).mean(0)
        probabilities = probabilities.clamp(EPS, 1 - EPS)
        return torch.log(probabilities) - torch.log(1 - probabilities)

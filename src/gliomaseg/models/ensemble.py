"""Fold ensembles: several trained networks of one architecture whose probabilities are averaged,
as nnU-Net ensembles its five cross-validation fold models at inference (Isensee et al. 2021).

An ensemble is a network like any other to the predictor, the backends and ONNX export: it
takes ``(B, C, *spatial)`` and returns logits ``(B, K, *spatial)``, the logits of the mean of
its members' sigmoid probabilities, so thresholding and TTA behave as for one network. It is
stored in one self-describing safetensors file (``model.members`` in its config, weights under
``members.<i>.``), written by ``gliomaseg ensemble`` (:func:`~.weights.save_ensemble`).
"""

from __future__ import annotations

import torch
from torch import nn

# Probabilities are clamped to [EPS, 1 - EPS] before the logit, so it stays finite in fp32.
EPS = 1e-6


class Ensemble(nn.Module):
    """Mean of the members' sigmoid probabilities, returned as logits.

    Args:
        members: at least one network with the same input and output channels; each returns
            logits ``(B, K, *spatial)`` for input ``(B, C, *spatial)``.

    Forward:
        ``(B, C, *spatial)`` float -> ``(B, K, *spatial)`` float32 logits of
        ``mean_i sigmoid(member_i(x))``, clamped to ``[EPS, 1 - EPS]`` (|logit| <= 13.8).

    Inference cost grows linearly with the number of members.
    """

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.stride = getattr(members[0], "stride", 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        probabilities = torch.stack([torch.sigmoid(member(images).float()) for member in self.members]).mean(0)
        probabilities = probabilities.clamp(EPS, 1 - EPS)
        return torch.log(probabilities) - torch.log(1 - probabilities)

"""Deep supervision for training U-shaped networks: auxiliary outputs of the decoder at 1/2,
1/4, ... of the resolution, each scored by the run's loss against the target downsampled to it.

nnU-Net (Isensee et al. 2021, Nature Methods 18) trains every network this way: a 1x1
convolution turns each of the upper decoder stages' features into logits, the losses of the
outputs are summed with weights halving per level (``1, 1/2, 1/4, ...``, normalised to sum 1),
and only the full-resolution output is used at inference. Here the auxiliary heads belong to
the training wrapper, not to the network: the saved weights (``best`` / ``last``) are the
network's alone and load and run as any other; ``state.safetensors`` keeps the heads
(``heads.*``) so that ``--resume`` goes on with them.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..models.ushape import UShapedNet

Outputs = torch.Tensor | Sequence[torch.Tensor]  # full-resolution logits, then coarser ones


def supports_deep_supervision(network: nn.Module) -> int:
    """The most auxiliary outputs ``network`` can give: its decoder stages above the full-
    resolution one (``depth - 1``: 3 for the 4-level U-Net); 0 for networks that are not
    :class:`~gliomaseg.models.ushape.UShapedNet` (attention ResUNet, encoder U-Nets, 3D U-Net)."""
    return len(network.decoders) - 1 if isinstance(network, UShapedNet) else 0


class DeepSupervision(nn.Module):
    """A :class:`~gliomaseg.models.ushape.UShapedNet` with ``levels`` auxiliary 1x1 heads on the
    outputs of its decoder stages at 1/2, 1/4, ... of the input's resolution.

    Args:
        network: the network being trained (its own forward and weights are untouched; forward
            hooks on its decoder stages collect their features).
        levels: auxiliary outputs, 1 to :func:`supports_deep_supervision` of ``network``.

    Shapes:
        input ``(B, C, H, W)`` -> a list of logits ``(B, K, H, W)``, ``(B, K, H/2, W/2)``, ...,
        ``(B, K, H/2**levels, W/2**levels)``, float (bf16 under autocast).

    Raises:
        ValueError: ``network`` is not U-shaped or has fewer decoder stages than ``levels + 1``.
    """

    def __init__(self, network: nn.Module, levels: int):
        super().__init__()
        if not 1 <= levels <= supports_deep_supervision(network):
            raise ValueError(f"{type(network).__name__} gives at most {supports_deep_supervision(network)} "
                             f"deep-supervision output(s), not {levels}")
        self.network = network
        full = network.head.in_channels  # features of the full-resolution stage; doubled per level down
        out_channels = network.head.out_channels
        self.heads = nn.ModuleList(nn.Conv2d(full * 2**level, out_channels, 1) for level in range(1, levels + 1))
        self._features: dict[int, torch.Tensor] | None = None  # a dict only during this wrapper's forward
        stages = list(network.decoders)
        for level in range(1, levels + 1):  # decoders run from the coarsest stage to the full-resolution one
            stages[-1 - level].register_forward_hook(self._keeper(level))

    def _keeper(self, level: int):
        def keep(module: nn.Module, inputs, output: torch.Tensor) -> None:
            if self._features is not None:  # not when the network runs alone (validation)
                self._features[level] = output
        return keep

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self._features = {}
        try:
            logits = self.network(x)
            return [logits] + [head(self._features[level]) for level, head in enumerate(self.heads, start=1)]
        finally:
            self._features = None


def supervision_weights(levels: int) -> list[float]:
    """nnU-Net's loss weights for the full-resolution output and ``levels`` coarser ones:
    ``2**-i`` for output ``i``, normalised to sum 1 (``[1.0]`` for none; ``[4/7, 2/7, 1/7]``
    for 2)."""
    raw = [0.5**level for level in range(levels + 1)]
    return [w / sum(raw) for w in raw]


class SupervisedLoss(nn.Module):
    """A loss over one output or the outputs of :class:`DeepSupervision`.

    Each output is cast to float32 and scored by ``loss`` against the target, downsampled to
    the output's size by nearest-neighbour interpolation (the voxel at the even indices, as
    nnU-Net's order-0 resize of the segmentation); the scores are summed with
    :func:`supervision_weights`. A single tensor is scored as it is (the weight is 1).

    Args:
        loss: ``loss(logits, target)`` -> scalar, both ``(B, K, *spatial)`` float32.
        levels: auxiliary outputs expected (0: one tensor).

    Shapes:
        outputs: ``(B, K, H, W)`` or the list of :class:`DeepSupervision`; target
        ``(B, K, H, W)`` in {0, 1}. Returns a scalar.
    """

    def __init__(self, loss: nn.Module, levels: int = 0):
        super().__init__()
        self.loss = loss
        self.weights = supervision_weights(levels)

    def forward(self, outputs: Outputs, target: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            outputs = [outputs]
        total = 0.0
        for weight, logits in zip(self.weights, outputs, strict=True):
            scaled = target if logits.shape[2:] == target.shape[2:] else F.interpolate(target, size=logits.shape[2:], mode="nearest")
            total = total + weight * self.loss(logits.float(), scaled)
        return total

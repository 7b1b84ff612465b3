"""Segmentation losses, selected by name in the config (``train.loss``).

Dice and BCE + Dice are MONAI's (``monai.losses.DiceLoss`` and ``DiceCELoss`` with
``sigmoid=True``); the tests check them against the formulas. Dice is computed over the whole
batch (``batch=True``), so slices without tumor do not produce 0/0 terms:

    Dice loss = 1 - (2 * sum(p * g) + eps) / (sum(p) + sum(g) + eps)

and BCE + Dice = mean binary cross-entropy + Dice loss, each with weight 1.
"""

from __future__ import annotations

from typing import Callable

from monai.losses import DiceCELoss, DiceLoss
from torch import nn

from .errors import ConfigError

# MONAI's defaults for the smoothing terms (1e-5) keep the loss finite on empty batches.
LOSSES: dict[str, Callable[[], nn.Module]] = {
    "dice": lambda: DiceLoss(sigmoid=True, batch=True),
    "bce_dice": lambda: DiceCELoss(sigmoid=True, batch=True),
}


def create_loss(name: str) -> nn.Module:
    """Loss module taking ``(logits, target)``, both ``(B, 1, H, W)`` float32, target in {0, 1}.

    Raises:
        ConfigError: unknown name.
    """
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; available: {', '.join(sorted(LOSSES))}")
    return LOSSES[name]()

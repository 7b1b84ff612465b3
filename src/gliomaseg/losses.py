"""Segmentation losses for binary masks, selected by name in the config (``train.loss``).

Every loss takes ``(logits, target)``, both ``(B, K, *spatial)`` float32 (2D or 3D) with target
in {0, 1}, and returns a scalar. Channels are independent sigmoid outputs (BraTS regions overlap),
never a softmax. ``p = sigmoid(logits)``, ``g = target``; sums run over the whole batch
(``batch=True``) unless stated, so slices without tumor never give 0/0 terms; ``eps = 1e-5``
(MONAI's smoothing) in numerator and denominator.

- ``bce``: mean binary cross-entropy (``torch.nn.BCEWithLogitsLoss``).
- ``dice``: ``1 - (2 sum(p g) + eps) / (sum(p) + sum(g) + eps)`` (MONAI ``DiceLoss``).
- ``bce_dice``: ``bce + dice``, weight 1 each. Not MONAI ``DiceCELoss``: with more than one
  channel it takes a softmax cross-entropy, wrong for overlapping regions.
- ``bce_dice_per_sample``: ``bce`` plus the Dice loss of each sample and channel on its own
  (MONAI ``DiceLoss`` with ``batch=False``), averaged over the (sample, channel) pairs whose
  target holds foreground; 0 where none does. A batch-wise Dice is dominated by the large
  lesions of the batch; this one weighs a slice with a small lesion (or a lesion's first and
  last slices) like one with a large lesion, as per-patient Dice weighs small lesions. Samples
  without foreground are left to the cross-entropy: their own Dice would be about 1 with almost
  no gradient (the collapse of ``focal_tversky`` per sample, below).
  nnU-Net's ``batch_dice=False`` takes Dice per sample likewise, empty samples included.
  Measured (``docs/MODEL_CARD.md``, LGG row 46, BraTS row 29): it raises recall, but with false
  positives on tumor-free slices almost fourfold (LGG 0.820 against ``bce_dice``'s 0.835 by
  cross-validation), and its probabilities need thresholds of their own.
- ``focal``: mean of ``-(1 - p_t)^2 log(p_t)``, gamma 2 (Lin et al. 2017; MONAI ``FocalLoss``).
- ``dice_focal``: ``alpha * dice + (1 - alpha) * focal`` with ``alpha = 0.5``; here alpha weighs
  the Dice term (MONAI ``DiceFocalLoss`` with ``lambda_dice = alpha``, ``lambda_focal = 1 - alpha``).
- ``tversky``: ``1 - TI``, ``TI = (sum(p g) + eps) / (sum(p g) + 0.7 sum((1 - p) g) + 0.3 sum(p (1 - g)) + eps)``:
  0.7 on false negatives, 0.3 on false positives (Salehi et al. 2017). MONAI's ``TverskyLoss``
  names these the other way round (its alpha weighs false positives), hence alpha=0.3, beta=0.7.
- ``focal_tversky``: ``mean over channels of (1 - TI_channel)^0.75``, TI summed over the whole
  batch as in the authors' code (Abraham and Khan 2019, "A novel focal Tversky loss function",
  ISBI; their gamma = 4/3 gives the exponent 1/gamma = 0.75). MONAI has no such loss; this is
  ours. TI was once per sample: a tumor-free slice then scores TI near 0 (its
  loss near 1, with almost no gradient to remove false positives), and LGG training with half
  the slices tumor-free collapsed (mean per-patient Dice 0.08 on cross-validation fold 3).
"""

from __future__ import annotations

from typing import Callable

import torch
from monai.losses import DiceFocalLoss, DiceLoss, FocalLoss, TverskyLoss
from torch import nn

from .errors import ConfigError

EPS = 1e-5
TVERSKY_FN_WEIGHT = 0.7
TVERSKY_FP_WEIGHT = 0.3
FOCAL_GAMMA = 2.0
DICE_FOCAL_ALPHA = 0.5  # weight of the Dice term
FOCAL_TVERSKY_EXPONENT = 0.75


class BceDiceLoss(nn.Module):
    """Binary cross-entropy plus soft Dice (MONAI ``DiceLoss`` over the batch, per channel, then
    averaged), weight 1 each; both per-channel sigmoid, so it suits overlapping region outputs.

    Shapes:
        logits, target: ``(B, K, *spatial)``; returns a scalar.
    """

    def __init__(self):
        super().__init__()
        self.bce = nn.BCEWithLogitsLoss()
        self.dice = DiceLoss(sigmoid=True, batch=True)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.bce(logits, target) + self.dice(logits, target)


class BcePerSampleDiceLoss(nn.Module):
    """Binary cross-entropy plus soft Dice per sample and channel (MONAI ``DiceLoss``,
    ``batch=False``), averaged over the pairs whose target is not empty, weight 1 each.

    Shapes:
        logits, target: ``(B, K, *spatial)`` (2D or 3D, K independent sigmoid channels);
        returns a scalar. With no foreground in the batch the Dice term is 0.
    """

    def __init__(self):
        super().__init__()
        self.bce = nn.BCEWithLogitsLoss()
        self.dice = DiceLoss(sigmoid=True, batch=False, reduction="none")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        dice = self.dice(logits, target).reshape(logits.shape[:2])  # (B, K)
        present = target.flatten(2).amax(2) > 0
        return self.bce(logits, target) + (dice * present).sum() / present.sum().clamp(min=1)


class FocalTverskyLoss(nn.Module):
    """Focal Tversky loss (Abraham and Khan 2019): one Tversky index per channel with the soft
    counts summed over the batch and space, ``(1 - TI)^exponent``, then the mean over channels.

    Args:
        fn_weight: weight of false negatives in the Tversky index (0.7).
        fp_weight: weight of false positives (0.3).
        exponent: focal exponent applied to ``1 - TI`` (0.75).

    Shapes:
        logits, target: ``(B, K, *spatial)`` (2D or 3D, K independent sigmoid channels); returns a scalar.
    """

    def __init__(self, fn_weight: float = TVERSKY_FN_WEIGHT, fp_weight: float = TVERSKY_FP_WEIGHT,
                 exponent: float = FOCAL_TVERSKY_EXPONENT):
        super().__init__()
        self.fn_weight, self.fp_weight, self.exponent = fn_weight, fp_weight, exponent

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p, g = torch.sigmoid(logits), target
        dims = (0, *range(2, logits.ndim))  # batch and space: one index per channel
        tp = (p * g).sum(dims)
        fn = ((1 - p) * g).sum(dims)
        fp = (p * (1 - g)).sum(dims)
        tversky = (tp + EPS) / (tp + self.fn_weight * fn + self.fp_weight * fp + EPS)
        return (1 - tversky).clamp(min=0).pow(self.exponent).mean()


LOSSES: dict[str, Callable[[], nn.Module]] = {
    "bce": nn.BCEWithLogitsLoss,
    "dice": lambda: DiceLoss(sigmoid=True, batch=True),
    "bce_dice": BceDiceLoss,
    "bce_dice_per_sample": BcePerSampleDiceLoss,
    "focal": lambda: FocalLoss(gamma=FOCAL_GAMMA),
    "dice_focal": lambda: DiceFocalLoss(sigmoid=True, batch=True, gamma=FOCAL_GAMMA,
                                        lambda_dice=DICE_FOCAL_ALPHA, lambda_focal=1 - DICE_FOCAL_ALPHA),
    "tversky": lambda: TverskyLoss(sigmoid=True, batch=True, alpha=TVERSKY_FP_WEIGHT, beta=TVERSKY_FN_WEIGHT),
    "focal_tversky": FocalTverskyLoss,
}


def create_loss(name: str) -> nn.Module:
    """The loss called ``name`` (a key of :data:`LOSSES`).

    Raises:
        ConfigError: unknown name.
    """
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; available: {', '.join(sorted(LOSSES))}")
    return LOSSES[name]()

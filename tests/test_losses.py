"""Losses against the formulas of the losses.py docstring, computed by hand in torch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gliomaseg.errors import ConfigError
from gliomaseg.losses import create_loss

EPS = 1e-5  # smoothing in numerator and denominator


def hand_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - (2 sum(p g) + eps) / (sum(p) + sum(g) + eps), sums over the whole batch."""
    p = torch.sigmoid(logits.double())
    g = target.double()
    return 1 - (2 * (p * g).sum() + EPS) / (p.sum() + g.sum() + EPS)


def hand_bce_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy on logits plus the Dice loss, weight 1 each."""
    bce = F.binary_cross_entropy_with_logits(logits.double(), target.double())
    return bce + hand_dice_loss(logits, target)


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    """(3, 1, 6, 6) logits and {0, 1} targets; the second sample has no tumor."""
    generator = torch.Generator().manual_seed(42)
    logits = torch.randn(3, 1, 6, 6, generator=generator) * 3
    target = torch.zeros(3, 1, 6, 6)
    target[0, 0, 1:4, 2:5] = 1  # 9 tumor pixels
    target[2, 0, 3:6, 0:2] = 1  # 6 tumor pixels
    return logits, target


def test_dice_loss_matches_formula():
    """create_loss('dice') equals the batch-wise Dice loss with smoothing 1e-5."""
    logits, target = _batch()
    got = create_loss("dice")(logits, target)
    assert got.ndim == 0
    assert got.item() == pytest.approx(hand_dice_loss(logits, target).item(), rel=1e-5)


def test_dice_loss_is_batch_wise_not_per_sample():
    """The Dice loss pools the batch; the mean of per-sample losses (empty sample included) differs."""
    logits, target = _batch()
    got = create_loss("dice")(logits, target).item()
    per_sample = torch.stack([hand_dice_loss(logits[i:i + 1], target[i:i + 1]) for i in range(3)]).mean().item()
    assert abs(got - per_sample) > 1e-3


def test_bce_dice_loss_matches_formula():
    """create_loss('bce_dice') equals mean BCE with logits plus the batch-wise Dice loss."""
    logits, target = _batch()
    got = create_loss("bce_dice")(logits, target)
    assert got.ndim == 0
    assert got.item() == pytest.approx(hand_bce_dice_loss(logits, target).item(), rel=1e-5)
    # both terms matter: the total is neither term alone
    assert got.item() > hand_dice_loss(logits, target).item() + 1e-3


def test_hand_made_logits_exact_values():
    """A tiny batch with round logits gives the hand-computed Dice and BCE + Dice values."""
    logits = torch.tensor([[[[0.0, 2.0], [-2.0, 0.0]]], [[[4.0, -4.0], [0.0, 0.0]]]])
    target = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]], [[[1.0, 0.0], [0.0, 1.0]]]])
    s = lambda x: 1 / (1 + torch.exp(-torch.tensor(x, dtype=torch.float64)))  # noqa: E731
    p = [s(0.0), s(2.0), s(-2.0), s(0.0), s(4.0), s(-4.0), s(0.0), s(0.0)]
    g = [1, 1, 0, 0, 1, 0, 0, 1]
    intersection = sum(pi * gi for pi, gi in zip(p, g))
    dice = 1 - (2 * intersection + EPS) / (sum(p) + sum(g) + EPS)
    bce = -sum(gi * torch.log(pi) + (1 - gi) * torch.log(1 - pi) for pi, gi in zip(p, g)) / len(p)
    assert create_loss("dice")(logits, target).item() == pytest.approx(dice.item(), rel=1e-5)
    assert create_loss("bce_dice")(logits, target).item() == pytest.approx((bce + dice).item(), rel=1e-5)


def test_empty_batch_is_finite():
    """A batch without any tumor gives a finite Dice loss near 1 (smoothing keeps 0/0 away) and finite gradients."""
    logits = torch.full((2, 1, 4, 4), -3.0, requires_grad=True)
    target = torch.zeros(2, 1, 4, 4)
    for name in ("dice", "bce_dice"):
        loss = create_loss(name)(logits, target)
        assert torch.isfinite(loss)
        assert loss.item() == pytest.approx(
            (hand_dice_loss(logits, target) if name == "dice" else hand_bce_dice_loss(logits, target)).item(), rel=1e-5)
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(grad).all()


def test_unknown_loss_raises_config_error():
    """An unknown loss name raises ConfigError naming it."""
    with pytest.raises(ConfigError, match="hinge"):
        create_loss("hinge")


def hand_focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of -(1 - p_t)^2 log(p_t), p_t the probability of the true class."""
    p = torch.sigmoid(logits.double())
    g = target.double()
    p_t = g * p + (1 - g) * (1 - p)
    return (-(1 - p_t) ** 2 * torch.log(p_t)).mean()


def hand_tversky_index(p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """(TP + eps) / (TP + 0.7 FN + 0.3 FP + eps) with soft counts summed over all of p and g."""
    tp, fn, fp = (p * g).sum(), ((1 - p) * g).sum(), (p * (1 - g)).sum()
    return (tp + EPS) / (tp + 0.7 * fn + 0.3 * fp + EPS)


def test_bce_loss_matches_formula():
    """create_loss('bce') equals the mean binary cross-entropy written out."""
    logits, target = _batch()
    p, g = torch.sigmoid(logits.double()), target.double()
    hand = -(g * torch.log(p) + (1 - g) * torch.log(1 - p)).mean()
    assert create_loss("bce")(logits, target).item() == pytest.approx(hand.item(), rel=1e-5)


def test_focal_loss_matches_formula():
    """create_loss('focal') equals the gamma-2 focal loss averaged over pixels."""
    logits, target = _batch()
    assert create_loss("focal")(logits, target).item() == pytest.approx(hand_focal_loss(logits, target).item(), rel=1e-4)


def test_dice_focal_weights_each_term_by_half():
    """create_loss('dice_focal') = 0.5 Dice + 0.5 focal (alpha weighs the Dice term)."""
    logits, target = _batch()
    hand = 0.5 * hand_dice_loss(logits, target) + 0.5 * hand_focal_loss(logits, target)
    assert create_loss("dice_focal")(logits, target).item() == pytest.approx(hand.item(), rel=1e-4)


def test_tversky_weighs_false_negatives_more():
    """create_loss('tversky') = 1 - TI(0.7 FN, 0.3 FP) over the batch; missing tumor costs more than extra."""
    logits, target = _batch()
    p = torch.sigmoid(logits.double())
    hand = 1 - hand_tversky_index(p, target.double())
    loss = create_loss("tversky")
    assert loss(logits, target).item() == pytest.approx(hand.item(), rel=1e-5)
    truth = torch.zeros(1, 1, 4, 4)
    truth[..., :2, :2] = 1
    missed = torch.where(truth > 0, -20.0, -20.0)  # predicts nothing: 4 FN
    extra = torch.where(truth > 0, 20.0, -20.0)
    extra[..., 2:, 2:] = 20.0  # predicts all tumor plus 4 FP
    assert loss(missed, truth).item() > loss(extra, truth).item()


def test_focal_tversky_pools_the_batch_per_channel():
    """create_loss('focal_tversky') = mean over channels of (1 - TI)^0.75, TI over the whole
    batch (the authors' code), not per sample: a tumor-free sample must not score TI ~ 0."""
    logits, target = _batch()
    p, g = torch.sigmoid(logits.double()), target.double()
    pooled = (1 - hand_tversky_index(p, g)) ** 0.75
    assert create_loss("focal_tversky")(logits, target).item() == pytest.approx(pooled.item(), rel=1e-5)
    per_sample = torch.stack([(1 - hand_tversky_index(p[i], g[i])) ** 0.75 for i in range(len(p))]).mean()
    assert abs(per_sample.item() - pooled.item()) > 1e-3
    regions = torch.cat([logits, -logits], dim=1), torch.cat([target, 1 - target], dim=1)  # 2 channels
    q, h = torch.sigmoid(regions[0].double()), regions[1].double()
    hand = torch.stack([(1 - hand_tversky_index(q[:, c], h[:, c])) ** 0.75 for c in range(2)]).mean()
    assert create_loss("focal_tversky")(*regions).item() == pytest.approx(hand.item(), rel=1e-5)


def test_bce_dice_on_overlapping_3d_regions_is_per_channel_sigmoid():
    """With 3 overlapping region channels (BraTS WT/TC/ET, 3D), bce_dice is the mean BCE plus the
    mean over channels of each channel's batch-wise Dice loss: no softmax across channels."""
    generator = torch.Generator().manual_seed(7)
    logits = torch.randn(2, 3, 4, 5, 6, generator=generator) * 2
    target = torch.zeros(2, 3, 4, 5, 6)
    target[:, 0, 1:4, 1:4, 1:5] = 1  # WT
    target[:, 1, 2:4, 2:4, 2:4] = 1  # TC inside WT
    target[0, 2, 2:3, 2:4, 2:3] = 1  # ET inside TC, first sample only
    bce = F.binary_cross_entropy_with_logits(logits.double(), target.double())
    dice = torch.stack([hand_dice_loss(logits[:, c:c + 1], target[:, c:c + 1]) for c in range(3)]).mean()
    assert create_loss("bce_dice")(logits, target).item() == pytest.approx((bce + dice).item(), rel=1e-5)


def test_bce_dice_per_sample_averages_the_dice_of_samples_with_tumor():
    """bce_dice_per_sample is the mean BCE plus the mean of the per-sample Dice losses of the
    samples with tumor (samples 0 and 2 of the batch), the tumor-free sample left out."""
    logits, target = _batch()
    got = create_loss("bce_dice_per_sample")(logits, target)
    bce = F.binary_cross_entropy_with_logits(logits.double(), target.double())
    dice = (hand_dice_loss(logits[0:1], target[0:1]) + hand_dice_loss(logits[2:3], target[2:3])) / 2
    assert got.ndim == 0
    assert got.item() == pytest.approx((bce + dice).item(), rel=1e-5)
    # not the batch-wise form, and not the mean over all three samples
    assert abs(got.item() - hand_bce_dice_loss(logits, target).item()) > 1e-3
    all_three = torch.stack([hand_dice_loss(logits[i:i + 1], target[i:i + 1]) for i in range(3)]).mean()
    assert abs(got.item() - (bce + all_three).item()) > 1e-3


def test_bce_dice_per_sample_weighs_a_small_lesion_like_a_large_one():
    """The gradient on a small lesion's pixels, relative to a large lesion's, is larger than
    under the batch-wise Dice (the point of the loss)."""
    target = torch.zeros(2, 1, 16, 16)
    target[0, 0, :12, :12] = 1  # 144 pixels
    target[1, 0, 5:7, 5:7] = 1  # 4 pixels

    def small_over_large(name: str) -> float:
        logits = torch.zeros(2, 1, 16, 16, requires_grad=True)
        create_loss(name)(logits, target).backward()
        return (logits.grad[1, 0, 5, 5] / logits.grad[0, 0, 5, 5]).item()

    assert small_over_large("bce_dice") == pytest.approx(1.0)  # a pixel is a pixel, whatever its lesion
    assert small_over_large("bce_dice_per_sample") > 1.5


def test_bce_dice_per_sample_on_3d_regions_and_a_tumor_free_batch():
    """Per (sample, region) on 3D regions; a batch without tumor gives the BCE alone."""
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 4, 5, 6, generator=generator)
    target = torch.zeros(2, 3, 4, 5, 6)
    target[0, 0, 1:3, 1:4, 2:5] = 1
    target[1, 1, 0:2, 0:2, 0:2] = 1
    got = create_loss("bce_dice_per_sample")(logits, target).item()
    bce = F.binary_cross_entropy_with_logits(logits.double(), target.double())
    dice = (hand_dice_loss(logits[0, 0], target[0, 0]) + hand_dice_loss(logits[1, 1], target[1, 1])) / 2
    assert got == pytest.approx((bce + dice).item(), rel=1e-5)
    empty = torch.zeros_like(target)
    assert create_loss("bce_dice_per_sample")(logits, empty).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(logits, empty).item(), rel=1e-6)

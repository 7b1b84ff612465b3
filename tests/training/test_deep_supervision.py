"""Deep supervision: auxiliary outputs at 1/2, 1/4, ... of the resolution on the decoder of a
U-shaped network, their losses weighted as nnU-Net's, the network itself untouched."""

from __future__ import annotations

import pytest
import torch

from gliomaseg.losses import create_loss
from gliomaseg.models.attention_resunet import AttentionResUNet
from gliomaseg.models.registry import MODELS
from gliomaseg.models.resunet import ResUNet
from gliomaseg.models.unet import UNet
from gliomaseg.training.deep_supervision import DeepSupervision, SupervisedLoss, supports_deep_supervision


@pytest.mark.parametrize("network", [UNet(4, 3, 4), ResUNet(4, 3, 4)])
def test_auxiliary_outputs_halve_the_resolution_and_leave_the_network_alone(network):
    """Three auxiliary outputs of a 4-level network: 1/2, 1/4 and 1/8 of 64 pixels, K channels
    each; the first output is the network's own, its weights hold no head, and the network
    run alone (as validation and inference run it) keeps no decoder features."""
    torch.manual_seed(0)
    network.eval()
    wrapped = DeepSupervision(network, 3).eval()
    x = torch.randn(2, 4, 64, 64)
    outputs = wrapped(x)
    assert [tuple(o.shape) for o in outputs] == [(2, 3, 64, 64), (2, 3, 32, 32), (2, 3, 16, 16), (2, 3, 8, 8)]
    assert torch.equal(outputs[0], network(x))
    assert wrapped._features is None
    assert not any("heads" in key for key in network.state_dict())
    assert set(wrapped.state_dict()) == {f"network.{k}" for k in network.state_dict()} | {
        f"heads.{k}" for k in wrapped.heads.state_dict()}


def test_only_u_shaped_networks_and_their_levels_are_supervised():
    """The U-shaped networks give depth - 1 auxiliary outputs; the others none, and asking for
    more than a network gives is a ValueError naming it."""
    assert supports_deep_supervision(UNet(4, 1, 4)) == 3
    assert supports_deep_supervision(MODELS["residual_inception_unet"].builder(3, 1, 8)) == 3
    assert supports_deep_supervision(AttentionResUNet(3, 1, 8)) == 0
    with pytest.raises(ValueError, match="UNet gives at most 3"):
        DeepSupervision(UNet(4, 1, 4), 4)
    with pytest.raises(ValueError, match="AttentionResUNet gives at most 0"):
        DeepSupervision(AttentionResUNet(3, 1, 8), 1)


def test_the_loss_weights_halve_per_level_and_targets_are_subsampled():
    """nnU-Net's sum: weights 4/7, 2/7, 1/7 for the outputs at 1, 1/2 and 1/4 of the size, each
    against the target's pixels at indices divisible by 2 and 4; one tensor scores as the loss
    alone."""
    generator = torch.Generator().manual_seed(3)
    target = (torch.rand(2, 3, 16, 16, generator=generator) > 0.7).float()
    outputs = [torch.randn(2, 3, 16 // 2**i, 16 // 2**i, generator=generator) for i in range(3)]
    loss = create_loss("bce_dice")
    expected = (4 * loss(outputs[0], target) + 2 * loss(outputs[1], target[..., ::2, ::2])
                + loss(outputs[2], target[..., ::4, ::4])) / 7
    assert SupervisedLoss(loss, 2)(outputs, target).item() == pytest.approx(expected.item(), rel=1e-6)
    assert SupervisedLoss(loss)(outputs[0], target).item() == loss(outputs[0], target).item()
    with pytest.raises(ValueError):  # two outputs for a loss expecting three
        SupervisedLoss(loss, 2)(outputs[:2], target)

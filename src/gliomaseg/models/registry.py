"""Name -> network builder registry, with one factory signature for every network.

Modelled on segmentation_models_pytorch: every network is built as
``builder(in_channels, out_channels, width)`` and returns logits ``(B, out_channels, H, W)``
(``(B, out_channels, X, Y, Z)`` for 3D networks), and states in ``stride`` the multiple its
input sides must be (:func:`~.base.require_stride`). Builders import heavy dependencies (MONAI)
themselves, so the registry knows every network without importing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError

Builder = Callable[[int, int, int], nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    """A registered network: its builder, the width of its published configuration, and whether
    it takes 2D slices or 3D volumes."""

    builder: Builder
    reference_width: int
    spatial_dims: int = 2


MODELS: dict[str, ModelSpec] = {}


def register(name: str, reference_width: int, spatial_dims: int = 2) -> Callable[[Builder], Builder]:
    """Decorator adding ``builder`` to :data:`MODELS` under ``name``.

    Args:
        name: the ``model.name`` of configs.
        reference_width: ``width`` of the configuration described in the network's paper.
        spatial_dims: 2 for slice networks, 3 for volume networks.
    """

    def add(builder: Builder) -> Builder:
        if name in MODELS:
            raise ValueError(f"network {name!r} is registered twice")
        MODELS[name] = ModelSpec(builder, reference_width, spatial_dims)
        return builder

    return add


def create_model(config: ModelConfig) -> nn.Module:
    """Build the network named in ``config``; with ``config.members`` above 1, an
    :class:`~.ensemble.Ensemble` of that many such networks (at ``config.member_sizes``).

    Raises:
        ConfigError: unknown name.
    """
    from .ensemble import Ensemble

    spec = _spec(config.name)
    members = [spec.builder(config.in_channels, config.out_channels, config.width) for _ in range(config.members)]
    return members[0] if config.members == 1 else Ensemble(members, config.member_sizes)


def load_encoder_weights(model: nn.Module, path: str) -> None:
    """Load a local pretrained state dict into ``model.encoder``.

    Raises:
        ConfigError: the network has no pretrainable encoder.
        InputError: the file is unreadable or does not fit the encoder.
    """
    encoder = getattr(model, "encoder", None)
    if encoder is None or not hasattr(encoder, "load_pretrained"):
        raise ConfigError(f"model.encoder_weights is set, but {type(model).__name__} has no pretrainable encoder")
    encoder.load_pretrained(path)


def spatial_dims(name: str) -> int:
    """2 or 3: whether the network called ``name`` segments slices or volumes.

    Raises:
        ConfigError: unknown name.
    """
    return _spec(name).spatial_dims


def _spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ConfigError(f"unknown network {name!r}; registered: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def complexity(name: str, width: int, in_channels: int = 3, size: int = 256) -> tuple[int, float]:
    """(parameters, forward GFLOPs for one ``size x size`` slice, or ``size^3`` volume for 3D
    networks) of a registered network.

    FLOPs are counted by ``torch.utils.flop_counter`` (2 per multiply-add, convolutions and
    matrix products only) on meta tensors, so nothing is computed or allocated.

    Raises:
        InputSizeError: ``size`` is not a multiple of the network's stride.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = MODELS[name].builder(in_channels, 1, width)
        example = torch.zeros(1, in_channels, *[size] * MODELS[name].spatial_dims)
    parameters = sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as counter:
        model(example)
    return parameters, counter.get_total_flops() / 1e9

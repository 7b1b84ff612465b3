"""Name -> network builder registry, with one factory signature for every network.

Modelled on segmentation_models_pytorch: every network is built as
``builder(in_channels, out_channels, width)`` and returns logits ``(B, out_channels, H, W)``.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError

Builder = Callable[[int, int, int], nn.Module]
MODELS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator adding ``builder`` to :data:`MODELS` under ``name``."""

    def add(builder: Builder) -> Builder:
        if name in MODELS:
            raise ValueError(f"network {name!r} is registered twice")
        MODELS[name] = builder
        return builder

    return add


def create_model(config: ModelConfig) -> nn.Module:
    """Build the network named in ``config``.

    Raises:
        ConfigError: unknown name.
    """
    if config.name not in MODELS:
        raise ConfigError(f"unknown network {config.name!r}; registered: {', '.join(sorted(MODELS))}")
    return MODELS[config.name](config.in_channels, config.out_channels, config.width)

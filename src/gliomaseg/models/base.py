"""The input stride every network states and checks.

A network that pools ``d`` times and concatenates skip features needs every side of its input
to halve exactly ``d`` times, so to be a multiple of its stride ``2**d``; any other size would
fail deep inside the network with a tensor-shape error. :func:`require_stride` records the
stride as ``network.stride`` and checks each input before the network runs.
"""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import nn

from ..errors import GliomasegError

Network = TypeVar("Network", bound=nn.Module)


class InputSizeError(GliomasegError, ValueError):
    """An input whose spatial sides are not multiples of the network's stride."""


def require_stride(network: Network, stride: int) -> Network:
    """Set ``network.stride`` and check, before every forward, that the spatial sides of the
    input ``(B, C, *sides)`` are multiples of it; returns ``network``.

    The forward then raises :class:`InputSizeError`, e.g. "input of 250x250 pixels: this network
    needs sides divisible by 16".
    """
    network.stride = stride
    network.register_forward_pre_hook(_check_input)
    return network


def _check_input(network: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
    sides = tuple(inputs[0].shape[2:])
    if any(side % network.stride for side in sides):
        unit = "pixels" if len(sides) == 2 else "voxels"
        raise InputSizeError(f"input of {'x'.join(map(str, sides))} {unit}: "
                             f"this network needs sides divisible by {network.stride}")

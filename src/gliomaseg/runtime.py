"""CPU runtime settings shared by training and inference: threads and bfloat16 autocast."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

import torch


def set_threads(threads: int = 0) -> None:
    """Use ``threads`` intra-op threads (0: one per core)."""
    torch.set_num_threads(threads or os.cpu_count() or 1)


def bf16_supported() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # older torch without the probes
        return False


def autocast(enabled: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on the CPU when ``enabled`` and the CPU supports it, else a no-op."""
    if enabled and bf16_supported():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(channels_last: bool, spatial_dims: int = 2) -> torch.memory_format:
    """``torch.channels_last`` (``channels_last_3d`` for 3D networks; faster convolutions with
    oneDNN on the CPU) or the default."""
    if not channels_last:
        return torch.contiguous_format
    return torch.channels_last_3d if spatial_dims == 3 else torch.channels_last


def describe_machine() -> str:
    """One line naming the CPU, core count, torch version and threads, and bf16 support."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor())
    return (f"{cpu}; {os.cpu_count()} cores; torch {torch.__version__}, {torch.get_num_threads()} threads; "
            f"bf16 {'yes' if bf16_supported() else 'no'}")

"""Runtime settings shared by training and inference (the config's ``runtime`` section):
device, CPU threads, bfloat16 autocast and memory format; and the C heap's handling of large
blocks (kept while training, and while 3D networks segment)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
from pathlib import Path

import torch

from .errors import ConfigError


def set_threads(threads: int = 0) -> None:
    """Use ``threads`` intra-op threads (0: one per core available to this process)."""
    torch.set_num_threads(threads or available_cores())


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where unknown)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_INT_MAX = 2**31 - 1


def keep_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed memory for reuse in this process: no block is
    mapped on its own (``M_MMAP_MAX`` 0) and up to 2 GiB of free heap is kept, not returned
    to the system (``M_TRIM_THRESHOLD``). Process-wide and not undone.

    Why: glibc maps every block of 32 MiB or more on its own and unmaps it when freed, so the
    activations of a 3D network (one 64^3 x 16-channel bf16 tensor of a batch of 4 is 32 MiB)
    are new pages at every step, each touched page a fault. On a 2-core AMD EPYC (AVX-512
    bf16) a third of a 3D training step was such system time; keeping the
    memory trains the 3D recipe 1.54x to 1.64x faster (full steps with sampling and
    augmentation; two runs) for 1.2x the peak resident memory, segments a whole BraTS case with
    it 1.13x faster, and trains the 2.5D recipe, with fewer and smaller such blocks, 1.13x
    (1.01x and 1.25x in two pairs of runs) for 0.98x (``python benchmarks/allocator.py``).
    Training applies it for every network, inference for 3D networks.
    The same effect as ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=...`` in the environment or
    preloading jemalloc/tcmalloc, which must be set before Python starts; ``mallopt`` (glibc
    manual, "Malloc Tunable Parameters") sets it from inside.

    Returns:
        Whether both parameters were set: ``False`` without glibc (macOS, Windows, musl),
        where the C heap is left as it is.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _INT_MAX))


def resolve_device(name: str = "cpu") -> torch.device:
    """``auto`` (CUDA if available, else MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Raises:
        ConfigError: the device is not available on this machine.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise ConfigError(f"runtime.device {name}: no such CUDA device on this machine (use cpu or auto)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"runtime.device {name}: MPS is not available on this machine (use cpu or auto)")
    return device


def bf16_supported(device: torch.device = torch.device("cpu")) -> bool:
    """Whether ``device`` has native bfloat16 arithmetic (CPU: AVX-512 BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # older torch without the probes
        return False


def autocast_dtype(enabled: bool, device: torch.device = torch.device("cpu")) -> torch.dtype | None:
    """The mixed-precision dtype on ``device`` when ``enabled``: bfloat16 where supported,
    float16 on CUDA devices without bfloat16 (train it with :func:`grad_scaler`), else ``None``
    (float32)."""
    if not enabled:
        return None
    if bf16_supported(device):
        return torch.bfloat16
    return torch.float16 if device.type == "cuda" else None


def autocast(enabled: bool, device: torch.device = torch.device("cpu")) -> contextlib.AbstractContextManager:
    """Autocast to :func:`autocast_dtype` on ``device``; a no-op where that is ``None``."""
    dtype = autocast_dtype(enabled, device)
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def grad_scaler(enabled: bool, device: torch.device = torch.device("cpu")) -> torch.amp.GradScaler:
    """A gradient scaler, active only where :func:`autocast_dtype` is float16 (small float16
    gradients underflow without loss scaling; bfloat16 has float32's range and needs none).
    Inactive, its ``scale``, ``step`` and ``update`` pass through."""
    active = autocast_dtype(enabled, device) == torch.float16
    return torch.amp.GradScaler(device.type if active else "cpu", enabled=active)


def memory_format(channels_last: bool, spatial_dims: int = 2) -> torch.memory_format:
    """``torch.channels_last`` (``channels_last_3d`` for 3D networks; faster convolutions with
    oneDNN on the CPU and cuDNN on GPUs) or the default."""
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

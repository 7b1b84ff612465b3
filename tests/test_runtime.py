"""The C heap setting of ``gliomaseg.runtime`` that training and 3D inference apply."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from gliomaseg import runtime

# Allocates a 64 MiB tensor and reports whether glibc mapped it as a block of its own
# (mallinfo2's hblkhd: bytes in such blocks), after keep_freed_memory or without it.
PROBE = """
import ctypes, sys, torch
from gliomaseg.runtime import keep_freed_memory
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
if sys.argv[1] == "predictor":  # a Predictor of the recipe argv[2]
    from gliomaseg.config import load_config
    from gliomaseg.inference.predictor import Predictor
    from gliomaseg.models.registry import create_model
    config = load_config(sys.argv[2])
    Predictor(create_model(config.model), config)
block = torch.ones(16 * 2**20)
print(kept, mallinfo2().hblkhd >= 64 * 2**20)
"""


GLIBC = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="mallopt and mallinfo2 are glibc's; elsewhere keep_freed_memory returns False (tested below)")


def probe(*args) -> list[str]:
    """PROBE's output in a fresh process (the heap setting is process-wide)."""
    command = [sys.executable, "-c", PROBE, *map(str, args)]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()


@GLIBC
def test_keep_freed_memory_serves_large_blocks_from_the_kept_heap():
    assert probe("default") == ["None", "True"]  # glibc's default: a 64 MiB block is mapped on its own
    assert probe("keep") == ["True", "False"]  # kept: it comes from the heap, which keeps it when freed


@GLIBC
def test_predictor_keeps_the_heap_for_3d_networks_only():
    configs = Path(__file__).resolve().parents[1] / "configs"
    assert probe("predictor", configs / "brats_unet3d.yaml") == ["None", "False"]
    assert probe("predictor", configs / "brats_unet2d.yaml") == ["None", "True"]


def test_keep_freed_memory_leaves_other_c_libraries_alone(monkeypatch):
    monkeypatch.setattr(runtime.platform, "libc_ver", lambda: ("", ""))
    assert runtime.keep_freed_memory() is False

"""The C heap setting of ``gliomaseg.runtime`` that training applies."""

from __future__ import annotations

import platform
import subprocess
import sys

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
block = torch.ones(16 * 2**20)
print(kept, mallinfo2().hblkhd >= 64 * 2**20)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt and mallinfo2 are glibc's; elsewhere keep_freed_memory returns False (tested below)")
def test_keep_freed_memory_serves_large_blocks_from_the_kept_heap():
    def probe(mode: str) -> str:
        return subprocess.run([sys.executable, "-c", PROBE, mode], check=True, capture_output=True, text=True).stdout.split()

    assert probe("default") == ["None", "True"]  # glibc's default: a 64 MiB block is mapped on its own
    assert probe("keep") == ["True", "False"]  # kept: it comes from the heap, which keeps it when freed


def test_keep_freed_memory_leaves_other_c_libraries_alone(monkeypatch):
    monkeypatch.setattr(runtime.platform, "libc_ver", lambda: ("", ""))
    assert runtime.keep_freed_memory() is False

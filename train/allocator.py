"""Keep freed memory in the process: the scripts' large tensors are made and freed thousands of times.

glibc's malloc hands a block of more than 128 KiB (a threshold it raises as such blocks are freed, up to
32 MiB) straight to the system when it is freed, and trims the heap's free top above twice that; the next
tensor of that size then takes every page back one page fault at a time. The discriminator's training
step makes and frees tens of such buffers (activations, gradients, the bf16 copies of the weights): the
bf16 step took 7,700 page faults and 1.4x its time without the setting (bench/bench_allocator.py).
Fixing both thresholds high keeps those blocks in the heap for the next step. Only the scripts do this
(it is a setting of the whole process); elsewhere than glibc it does nothing, and
SEQGAN_KEEP_FREED_MEMORY=0 in the environment leaves glibc's own behaviour in place.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
MMAP_THRESHOLD = 32 * 2**20  # the largest glibc takes: blocks up to 32 MiB come from the heap
TRIM_THRESHOLD = 512 * 2**20  # up to 512 MiB of free heap kept for the next step


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed blocks up to 32 MiB (and 512 MiB of free heap) in the process;
    True where it took the setting, False elsewhere (another C library, another system, or
    SEQGAN_KEEP_FREED_MEMORY=0)."""
    if os.environ.get("SEQGAN_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))

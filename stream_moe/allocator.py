"""The C allocator, tuned for torch on a CPU.

glibc maps every block of 128 KiB or more afresh and gives it back when freed, so a step that allocates a few MiB of
tensors (a liquid network's window over 1,000 links, the router's batch) faults all their pages in again at every
step; torch has no caching allocator on the CPU. Serving such blocks from the heap and keeping freed memory in the
process makes them reusable: it cost the 1,000-link forecaster step about a quarter of its time (pairs of
`benchmarks/forecast_speed.py --links 1000` runs with and without `--default-malloc`: 12.7-14.9 ms a step against
15.2-18.9).

>>> keep_freed_memory() in (True, False)  # False where the C library is not glibc
True
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
LARGEST = 32 << 20  # glibc's ceiling for the mmap threshold on 64-bit systems


def keep_freed_memory(threshold: int = LARGEST) -> bool:
    """Serve blocks of up to `threshold` bytes from the heap and keep up to twice that of freed memory; whether the
    C library took the settings."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2 * threshold))

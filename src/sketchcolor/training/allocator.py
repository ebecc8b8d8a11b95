"""glibc's allocator set up for a CPU training process: freed memory kept for the next step.

By default glibc serves every block over its mmap threshold (at most 32 MiB) with a fresh ``mmap``
and unmaps it on ``free``; a 256 px training step allocates and frees hundreds of activation
tensors that large, and the kernel zeroes every page of each one again at first touch. Keeping
freed memory in the heap (no mmap, no trimming) removes that work; the process's resident size
then stays at its peak, as a CUDA caching allocator's does. The same settings as the environment
variables ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=...`` that bench/README.md recommends, set
from inside the process with ``mallopt`` (glibc reads the variables only at start-up). torch has
no public switch for its CPU allocator, hence ctypes. Elsewhere (musl, macOS, Windows) nothing.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

# mallopt parameters, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4

TRIM_THRESHOLD = 2**31 - 1  # the largest an int parameter takes: free memory at the heap's top stays
TOP_PAD = 256 << 20  # grow the heap in steps of 256 MiB beyond the request (fewer brk calls)


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as above; True when it was done (Linux with glibc), else False."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = all(mallopt(p, v) == 1 for p, v in ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD)))
    if ok:
        log.info("glibc malloc: freed memory kept for reuse (M_MMAP_MAX=0, M_TRIM_THRESHOLD=%d)", TRIM_THRESHOLD)
    return ok

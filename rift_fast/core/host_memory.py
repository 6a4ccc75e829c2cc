"""Host memory kept between forward passes on a CPU: glibc's ``malloc`` told not to hand large freed
blocks back to the operating system.

By default glibc serves a large allocation (past a threshold that it raises as such blocks are freed, at
most 32 MiB on 64-bit) with a fresh ``mmap``, and returns the free top of its heap to the operating
system once it passes twice that threshold. A CPU forward pass allocates and frees its activations on
every call (about 170 MB for 8 rows of 512 tokens through MiniLM-L6), so when the process does other work
between calls (an attack's search), those blocks go back and the next call takes a page fault on every
4 KiB page it touches again: measured on an Intel Xeon with AVX-512, 42,000 faults a call and 7% of the
forward's time in PWWS on long reviews, where a bare loop of forwards takes none. With the trim threshold
raised and the mmap threshold fixed at glibc's own ceiling, freed blocks up to 32 MiB stay in the heap
and the next call reuses them.

A block over 32 MiB (16 rows of 512 tokens through MiniLM-L6 in float32 have 50 MB feed-forward
activations) is still mapped apart whenever the heap has no free block that large, which depends on what
else the process holds at that moment. Measured on the same CPU, PWWS on long reviews in float32 with
16-row calls then took about 110,000 faults a call and spent about 11% of its forward time in the kernel.
So by default no block is mapped apart (``M_MMAP_MAX`` = 0): every block comes from the heap and stays
there once freed.

The cost is resident memory: up to ``limit_bytes`` of freed memory stays with the process, and the
heap may hold a free large block beside the one in use (the benchmark ``benchmarks/bench_host_memory.py``
reports the peak resident memory of each setting). The setting changes no result (allocation only), is
process-wide and lasts for the life of the process. On a C library other than glibc (macOS, Windows,
musl) nothing is changed.
"""

from __future__ import annotations

import ctypes
import logging
import platform

LOGGER = logging.getLogger(__name__)

RETAINED_HOST_MEMORY_BYTES = 1 << 30  # 1 GiB: past the working set of a CPU forward at the token budgets used
HEAP_BLOCK_BYTES = 32 << 20  # glibc's largest dynamic mmap threshold on 64-bit: larger blocks are mmapped still
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
DEFAULT_SETTING, RETAINED, LARGE_BLOCKS_IN_HEAP = "default", "retained", "retained-large-in-heap"
_setting = DEFAULT_SETTING  # the setting glibc took in this process (one of the three above)


def retain_freed_host_memory(limit_bytes: int = RETAINED_HOST_MEMORY_BYTES, large_blocks_in_heap: bool = True) -> bool:
    """Keeps up to ``limit_bytes`` of freed memory in this process's heap instead of returning it to the
    operating system, so that repeated CPU forward passes reuse their memory without page faults (glibc
    ``mallopt``: ``M_TRIM_THRESHOLD`` set to ``limit_bytes``; ``M_MMAP_THRESHOLD`` fixed at
    ``HEAP_BLOCK_BYTES``, the largest value glibc's own adjustment reaches, so blocks up to it come from
    the heap from the start; ``M_MMAP_MAX`` = 0 unless ``large_blocks_in_heap`` is False, so that larger
    ones do too, instead of being mapped apart). Once taken, a setting lasts for the process's life: a
    later call without ``large_blocks_in_heap`` does not map large blocks apart again.

    Args:
        limit_bytes: bytes of free memory at the heap's top kept before it is returned to the operating
            system. Between 1 and 2**31 - 1 (a C int).
        large_blocks_in_heap: serve blocks larger than ``HEAP_BLOCK_BYTES`` from the heap too
            (``M_MMAP_MAX`` = 0: glibc maps no block apart), so that they too stay once freed.

    Returns:
        True when glibc took every setting; False on another C library or when glibc refused one (the
        process's allocator is then as it was, or has the settings it took).

    Raises:
        ValueError: ``limit_bytes`` is outside 1 to 2**31 - 1.
    """
    if not 0 < limit_bytes < 1 << 31:
        raise ValueError(f"limit_bytes must be between 1 and 2**31 - 1 bytes (a C int), got {limit_bytes}")
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    settings = [(_M_MMAP_THRESHOLD, HEAP_BLOCK_BYTES), (_M_TRIM_THRESHOLD, limit_bytes)]
    settings += [(_M_MMAP_MAX, 0)] if large_blocks_in_heap else []
    taken = all(libc.mallopt(parameter, value) == 1 for parameter, value in settings)
    if not taken:
        LOGGER.warning("glibc refused to keep freed host memory up to %d bytes (mallopt)", limit_bytes)
    global _setting
    if taken:
        _setting = LARGE_BLOCKS_IN_HEAP if large_blocks_in_heap or _setting == LARGE_BLOCKS_IN_HEAP else RETAINED
    return taken


def host_memory_setting() -> str:
    """The setting :func:`retain_freed_host_memory` took in this process (it lasts for the process's
    life): ``"default"`` (none), ``"retained"`` (freed blocks up to ``HEAP_BLOCK_BYTES`` kept) or
    ``"retained-large-in-heap"`` (every block from the heap, and kept)."""
    return _setting

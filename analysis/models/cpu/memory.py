"""Keep freed memory inside the process (Linux, glibc) so large CPU temporaries reuse warm pages.

A batched forward pass allocates and frees the same large temporaries layer after layer (a
32-row prefill of SmolLM2: several 7 MB activations per layer; decoding: the logits and KV
buffers). With glibc's default malloc settings many of these come from fresh ``mmap`` pages or
from heap memory that ``free`` has just handed back to the kernel, so each new buffer is
page-faulted in and zeroed again: a batched run spends a part of its time in the kernel on minor
page faults that one-prompt decoding does not have. Raising malloc's mmap threshold to its maximum
(32 MiB on 64-bit) and its trim threshold to 1 GiB keeps those buffers in the heap (measurements:
``docs/performance.md``). Only memory placement changes, never a number.

The cost: the process keeps up to its peak heap use (plus 1 GiB of free heap top) instead of
returning freed memory to the system. Elsewhere than glibc (macOS, musl) nothing is changed.

>>> keep_freed_memory() in (True, False)
True
"""

from __future__ import annotations

import ctypes
import functools
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD = 1024 * 1024 * 1024


@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's malloc thresholds for this process once (later calls return the first answer);
    return whether they are set (False where the C library is not glibc or refuses the values)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (glibc only: musl's mallopt ignores these)
    except (OSError, AttributeError):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )

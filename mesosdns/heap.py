"""Giving the C heap's free pages back to the system.

A large build frees as much as it keeps: the dicts' old hash tables as they
grew, the decoded document's temporaries, the frames of a whole version once
sent. glibc's allocator keeps those pages (only the top of its heap is ever
returned by itself), so the process stays as large as its peak. Worse, the
next large allocation that cannot use them (the next state document's
receive buffer is mapped apart) comes on top: at 100k tasks, the builder's
peak grew by the 180 MiB it held free. `trim` (glibc's ``malloc_trim``)
returns the free pages; it costs microseconds when there is nothing to give
back, about 10 ms for 180 MiB (ctypes lets go of the GIL during the call:
callers run it in a thread), and is a no-op where the C library has no
such call (musl).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    fn = getattr(libc, "malloc_trim", None)
    if fn is None:
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


def trim() -> None:
    """Return the heap's free pages to the system."""
    fn = _malloc_trim()
    if fn is not None:
        fn(0)

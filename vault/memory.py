"""A serving worker's memory: start-up objects kept out of the collector's way, freed pages given back.

glibc's malloc keeps the pages of freed blocks inside its heaps: after a burst (a large verification, a page of
the log, a batch of signatures) the process stays that size. `malloc_trim(0)` returns every free page of every
heap, which the maintenance loop asks for once a round in each worker. Elsewhere (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
from collections.abc import Callable

log = logging.getLogger("vault.memory")


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim this way
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def trim() -> bool:
    """Ask malloc to return its free pages; True if it could, False if it cannot here or failed (never raises)."""
    release = _malloc_trim()
    if release is None:
        return False
    try:
        release(0)
    except Exception:  # memory not returned is no reason to stop serving
        log.exception("malloc_trim failed")
        return False
    return True


def settle() -> None:
    """Freeze what start-up built (modules, schema, catalogues: half a million objects that live as long as the
    process) out of the cyclic collector's generations. A full collection then looks only at what requests made
    since, and runs whenever that has grown by a quarter, rather than once the garbage of many requests exceeds a
    quarter of the start-up heap. The collection after the freeze is what makes the collector count from there."""
    gc.collect()
    gc.freeze()
    gc.collect()

"""A serving worker's memory: one malloc heap, start-up objects kept out of the collector's way, freed pages given back.

glibc's malloc gives each thread that allocates a heap of its own (up to eight per core), and a worker's pool
threads each leave theirs fragmented: `one_heap` asks for a single heap before the worker starts any thread.
glibc also keeps the pages of freed blocks inside its heaps: after a burst (a large verification, a page of the
log, a batch of signatures) the process stays that size. `malloc_trim(0)` returns every free page of every heap,
which the maintenance loop asks for once a round in each worker. Elsewhere (musl, macOS) both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
from collections.abc import Callable

log = logging.getLogger("vault.memory")


M_ARENA_MAX = -8  # glibc's mallopt parameter: the most heaps its threads may spread over


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:  # not glibc: nothing to trim this way
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def one_heap() -> bool:
    """Have every thread allocate from malloc's main heap; True if glibc took it. Call it before the process starts a
    thread: glibc fixes the number of heaps when a second thread first allocates. The pool threads run Python and hold
    the GIL most of the time, so they seldom wait for each other on the heap's lock (see docs/reliability.md for the
    measurements: free fragments in the heaps 8 MB against 1 MB after 80 s of load)."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, 1))


YOUNG_COLLECTION = 20_000  # allocations between collections of the youngest generation (see settle)


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
    quarter of the start-up heap. The collection after the freeze is what makes the collector count from there.

    The youngest generation is collected every YOUNG_COLLECTION allocations rather than Python's 700: a read
    allocates thousands of short-lived containers, nearly all freed by reference counting, so the default ran
    several collections per request for almost nothing (3-5 % of the read's throughput, bench/graphql_read.py);
    what a collection then finds is at most that many objects more."""
    gc.collect()
    gc.freeze()
    gc.collect()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION, middle, oldest)

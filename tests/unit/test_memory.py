"""Returning freed memory: the trim gives free pages back, and a trim that cannot run or fails is harmless."""

from __future__ import annotations

import asyncio
import ctypes
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vault import maintenance, memory
from vault.config import PROJECT_ROOT

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")


def _rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


@glibc
def test_trim_returns_freed_pages_that_malloc_keeps() -> None:
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(4096) for _ in range(16_384)]  # 64 MiB in blocks below malloc's mmap threshold
    for block in blocks:
        ctypes.memset(block, 1, 4096)
    for block in blocks[:-1]:  # the last one pins the heap's top: free alone does not shrink it
        libc.free(block)
    held = _rss()
    assert memory.trim()
    assert held - _rss() > 32 * 2**20
    libc.free(blocks[-1])


def test_a_failing_trim_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    def broken(_pad: int) -> int:
        raise OSError("no")

    monkeypatch.setattr(memory, "_malloc_trim", lambda: broken)
    assert memory.trim() is False
    assert "malloc_trim failed" in caplog.text


def test_without_malloc_trim_nothing_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    assert memory.trim() is False


class _Follower:
    """Leadership another worker holds: this worker never runs a round."""

    held = False

    def try_acquire(self) -> bool:
        return False


def test_every_worker_trims_each_round_leader_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    rounds: list[int] = []

    def trim() -> bool:
        rounds.append(len(rounds))
        return False

    monkeypatch.setattr(memory, "trim", trim)

    async def three_rounds() -> None:
        task = asyncio.create_task(maintenance.loop(None, 0.01, _Follower()))  # type: ignore[arg-type]
        while len(rounds) < 3:
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(asyncio.wait_for(three_rounds(), 10))
    assert rounds[:3] == [0, 1, 2]


def test_after_settling_full_collections_follow_the_garbage_of_requests() -> None:
    program = """
import gc
from vault import memory

start_up = [[i] for i in range(300_000)]
memory.settle()
before = gc.get_stats()[2]["collections"]
for _ in range(1_500_000):  # the cyclic garbage of requests: 3,000,000 containers, past the oldest's threshold
    a = []
    a.append([a])
print(gc.get_freeze_count() >= 300_000, gc.get_stats()[2]["collections"] - before)
"""
    ran = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True)
    frozen, full_collections = ran.stdout.split()
    assert frozen == "True" and int(full_collections) >= 1


def test_after_settling_the_youngest_generation_waits_for_many_allocations() -> None:
    """A request's thousands of short-lived containers no longer set off several collections each, and cyclic
    garbage is still collected: a run of cycles leaves at most about one threshold's worth behind."""
    program = """
import gc
from vault import memory

memory.settle()
before = gc.get_stats()[0]["collections"]
for _ in range(100_000):
    a = []
    a.append([a])
print(gc.get_threshold()[0], gc.get_stats()[0]["collections"] - before, len(gc.get_objects(0)))
"""
    ran = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True)
    threshold, young_collections, left = map(int, ran.stdout.split())
    assert threshold == memory.YOUNG_COLLECTION > 700
    assert 0 < young_collections <= 200_000 // memory.YOUNG_COLLECTION + 1  # 200,000 containers allocated
    assert left <= memory.YOUNG_COLLECTION


@glibc
@pytest.mark.parametrize(("one_heap", "heaps"), [(True, 1), (False, 5)])
def test_with_one_heap_every_thread_allocates_from_the_main_heap(one_heap: bool, heaps: int) -> None:
    program = f"""
import ctypes, threading
from vault import memory

if {one_heap}:
    assert memory.one_heap()
together = threading.Barrier(4)

def allocate():
    held = [ctypes.create_string_buffer(1000) for _ in range(100)]
    together.wait()  # all four threads allocate at once, each holding its blocks

threads = [threading.Thread(target=allocate) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ctypes.CDLL("libc.so.6").malloc_stats()  # one "Arena n:" paragraph per heap, on stderr
"""
    ran = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=PROJECT_ROOT, check=True)
    assert ran.stderr.count("Arena ") == heaps

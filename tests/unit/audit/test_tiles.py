"""Tiles: a proof reads every tile it needs in one query, and the hashes come out as RFC 9162's."""

from __future__ import annotations

import hashlib
from collections.abc import Collection

import pytest

from vault.audit import merkle, tiles

LEAVES = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(70_000)]  # three levels of tiles


def _stored(size: int) -> dict[tuple[int, int], bytes]:
    stored: dict[tuple[int, int], bytes] = {}
    for first in range(0, size, 9_999):  # in batches, as the sequencer writes them
        batch = LEAVES[first : min(size, first + 9_999)]
        stored.update(tiles.append(lambda level, idx: stored.get((level, idx), b""), first, batch))
    return stored


class OneQuery:
    """Tiles only through `fetch`, counted, with the full tiles' subtree roots unless `roots` is False (a log from
    before they were stored); a tile read alone (a second round trip) fails the test."""

    def __init__(self, stored: dict[tuple[int, int], bytes], *, roots: bool = True) -> None:
        self.stored = stored
        self.roots = {key: tiles.subtree_roots(v) for key, v in stored.items() if roots and len(v) == tiles.FULL_TILE}
        self.fetches = 0

    def fetch(self, keys: Collection[tuple[int, int]]) -> dict[tuple[int, int], tuple[bytes, bytes]]:
        self.fetches += 1
        return {key: (self.stored[key], self.roots.get(key, b"")) for key in keys if key in self.stored}

    def get(self, level: int, idx: int) -> bytes:
        raise AssertionError(f"tile {tiles.tile_path(level, idx)} was read outside the proof's one query")


@pytest.mark.parametrize("roots", [True, False], ids=["with roots", "without"])
@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 511, 65_535, 65_536, 65_537, 70_000])
def test_an_inclusion_proof_reads_its_tiles_in_one_query(size: int, roots: bool) -> None:
    store = OneQuery(_stored(size), roots=roots)
    for index in sorted({0, 1, size // 3, size // 2, size - 256, size - 2, size - 1} & set(range(size))):
        store.fetches = 0
        tree = tiles.TiledTree(store.get, size, fetch=store.fetch)
        assert tree.inclusion_proof(index, size) == merkle.inclusion_proof(LEAVES[:size], index)
        assert store.fetches <= 1  # none when the proof is empty


@pytest.mark.parametrize("roots", [True, False], ids=["with roots", "without"])
@pytest.mark.parametrize("size", [2, 256, 257, 65_536, 70_000])
def test_a_consistency_proof_reads_its_tiles_in_one_query(size: int, roots: bool) -> None:
    store = OneQuery(_stored(size), roots=roots)
    for old in sorted({1, 2, 255, 256, 257, size // 3, 65_535, 65_536, size - 1} & set(range(1, size))):
        store.fetches = 0
        tree = tiles.TiledTree(store.get, size, fetch=store.fetch)
        assert tree.consistency_proof(old, size) == merkle.consistency_proof(LEAVES[:size], old)
        assert store.fetches <= 1  # none when the proof is empty


@pytest.mark.parametrize("size", [1, 255, 256, 257, 65_536, 70_000])
def test_a_root_reads_its_tiles_in_one_query(size: int) -> None:
    store = OneQuery(_stored(size))
    assert tiles.TiledTree(store.get, size, fetch=store.fetch).root() == merkle.root(LEAVES[:size])
    assert store.fetches == 1


def test_subtree_roots_are_the_nodes_of_height_4() -> None:
    full = _stored(512)[(0, 1)]
    assert tiles.subtree_roots(full) == b"".join(merkle.root(LEAVES[256 + 16 * k : 272 + 16 * k]) for k in range(16))


def test_a_proof_from_full_tiles_hashes_only_a_few_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the stored roots, a proof in a full tile hashes the event's run of 16 and a few roots: not 255."""
    store = OneQuery(_stored(70_000))
    tiles.clear_cache()
    tiles.TiledTree(store.get, 70_000, fetch=store.fetch).root()  # the right edge's partial tiles, hashed up once
    expected = merkle.inclusion_proof(LEAVES, 1_000)
    hashed: list[int] = []
    real = merkle.parents
    monkeypatch.setattr(merkle, "parents", lambda row: hashed.append(len(row) // 64) or real(row))
    tree = tiles.TiledTree(store.get, 70_000, fetch=store.fetch)
    assert tree.inclusion_proof(1_000, 70_000) == expected
    assert sum(hashed) <= 2 * 2 * (1 + 3 + 7)  # tiles 0/003 and 1/000: siblings of height 1-3 and 5-7 in each


def test_a_rewritten_partial_tile_is_hashed_up_afresh() -> None:
    """The cache is keyed by a tile's content: the same position with more hashes is another entry."""
    store = OneQuery(_stored(300))
    tiles.TiledTree(store.get, 300, fetch=store.fetch).inclusion_proof(260, 300)
    store.stored = _stored(310)
    tree = tiles.TiledTree(store.get, 310, fetch=store.fetch)
    assert tree.inclusion_proof(260, 310) == merkle.inclusion_proof(LEAVES[:310], 260)
    assert tree.root() == merkle.root(LEAVES[:310])


@pytest.mark.parametrize("count", [0, 1, 2, 3, 7, 8, 255, 256])
def test_parents_are_the_node_hashes_of_each_pair(count: int) -> None:
    row = LEAVES[:count]
    expected = [hashlib.sha256(b"\x01" + row[i] + row[i + 1]).digest() for i in range(0, count - 1, 2)]
    assert merkle.parents(b"".join(row)) == b"".join(expected)

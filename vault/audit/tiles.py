"""The tree's hashes as C2SP tlog-tiles: level-L tile N holds up to 256 hashes of complete subtrees of 256**L leaves.

Only the bottom row of each 8-level tile is stored; the hashes between are recomputed (at most 255 per tile), so
any subtree root, the tree's root, an inclusion or a consistency proof reads O(log n) tiles, and appending a batch
rewrites only the tiles on the tree's right edge. Beside each full tile (which never changes) the roots of its 16
height-4 subtrees are stored, derived data: a node inside the tile then costs at most 15 hashes, not 255.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from vault.audit import merkle
from vault.audit.errors import TileError

HEIGHT = 8
WIDTH = 1 << HEIGHT
HASH_SIZE = 32
FULL_TILE = WIDTH * HASH_SIZE

TileGetter = Callable[[int, int], bytes]
"""(level, index) -> the stored tile's bytes (a partial tile is shorter), b"" when there is none."""

TilesGetter = Callable[[Collection[tuple[int, int]]], dict[tuple[int, int], tuple[bytes, bytes]]]
"""Many tiles at once: {(level, index): (hashes, subtree roots or b"")} for those of the keys that are stored (in
one query)."""

SUBTREE_HEIGHT = 4
SUBTREES = WIDTH >> SUBTREE_HEIGHT  # stored roots per full tile
ROOTS_SIZE = SUBTREES * HASH_SIZE

_PATH = re.compile(r"^(0|[1-9][0-9]?)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?$")


def tile_path(level: int, index: int, width: int = WIDTH) -> str:
    """`<L>/<N>[.p/<W>]` as tlog-tiles spells it: N in 3-digit groups, all but the last prefixed with x."""
    digits = f"{index:03d}"
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    name = "/".join([*("x" + g for g in groups[:-1]), groups[-1]])
    return f"{level}/{name}" + ("" if width == WIDTH else f".p/{width}")


def parse_tile_path(path: str) -> tuple[int, int, int]:
    """(level, index, width) of a tile path; raises ValueError naming what is wrong."""
    match = _PATH.match(path)
    if not match or int(match.group(1)) > 63:
        raise ValueError("a tile path is <level>/<index in x000/ groups>[.p/<width 1-255>]")
    width = int(match.group(3)) if match.group(3) else WIDTH
    if width >= WIDTH:
        raise ValueError("a partial tile is 1 to 255 hashes wide")
    return int(match.group(1)), int(match.group(2).replace("x", "").replace("/", "")), width


def hashes_up(row: Sequence[bytes]) -> bytes:
    """The root over a power-of-two row of hashes."""
    return _hash_rows(b"".join(row))[-1]


def split_hashes(data: bytes) -> list[bytes]:
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def subtree_roots(data: bytes) -> bytes:
    """The concatenated roots of a full tile's 16 height-4 subtrees (240 hashes), stored beside the tile."""
    for _ in range(SUBTREE_HEIGHT):
        data = merkle.parents(data)
    return data


def _run_root(row: bytes, at: int, count: int) -> bytes:
    """The root over `count` (a power of two) hashes of a concatenated row, from hash `at`."""
    data = row[at * HASH_SIZE : (at + count) * HASH_SIZE]
    while len(data) > HASH_SIZE:
        data = merkle.parents(data)
    return data


def _hash_rows(data: bytes) -> tuple[bytes, ...]:
    """Every complete node inside a tile: row r is the concatenated roots of its aligned runs of 2**r hashes."""
    rows = [data]
    while len(data) > HASH_SIZE:
        data = merkle.parents(data)
        rows.append(data)
    return tuple(rows)


_upper_rows = functools.lru_cache(maxsize=512)(_hash_rows)  # full tiles above level 0
_lower_rows = functools.lru_cache(maxsize=64)(_hash_rows)  # full level-0 tiles
_edge_rows = functools.lru_cache(maxsize=16)(_hash_rows)  # partial tiles: the right edge, rewritten every batch


def tile_rows(level: int, data: bytes) -> tuple[bytes, ...]:
    """`_hash_rows` of a tile, cached by its content (a pure function of it, so a rewritten tile is simply another
    key, never mistaken for the old one). Full tiles above level 0 — 512 of them cover 33 million events — the
    partial tiles of the right edge and the full level-0 tiles used last are hashed up once per process, so
    signing and proving cost about the same at 10^7 events as at 10^4; about 10 MB at most. A full tile read with
    its stored subtree roots is not hashed up at all (see TiledTree.node): this is for tiles without them."""
    if len(data) < FULL_TILE:
        return _edge_rows(data)
    return (_upper_rows if level else _lower_rows)(data)


def clear_cache(*, bottom_only: bool = False) -> None:
    """Forget the hashed-up tiles: all of them, or only the full level-0 tiles."""
    _lower_rows.cache_clear()
    if not bottom_only:
        _upper_rows.cache_clear()
        _edge_rows.cache_clear()


def tile_width(level: int, index: int, size: int) -> int:
    """How many hashes tile (level, index) holds in a tree of `size` leaves (0 when it does not exist yet)."""
    count = size >> (HEIGHT * level)
    return max(0, min(WIDTH, count - index * WIDTH))


def subtree_nodes(lo: int, hi: int) -> Iterator[tuple[int, int]]:
    """(height, index) of the complete subtrees that make up D[lo:hi], left to right: node(height, index) covers
    leaves index * 2**height up to (index + 1) * 2**height."""
    position = lo
    while position < hi:
        height = (hi - position).bit_length() - 1
        if position:
            height = min(height, (position & -position).bit_length() - 1)
        yield height, position >> height
        position += 1 << height


def tile_of(height: int, index: int) -> tuple[int, int]:
    """(level, index) of the tile whose hashes node(height, index) is computed from."""
    level, rest = divmod(height, HEIGHT)
    return level, (index << rest) >> HEIGHT


def tiles_for(proof: Callable[[merkle.SubtreeRoot], object]) -> set[tuple[int, int]]:
    """The tiles a proof reads: `proof` is run with a subtree function that only notes them, so the keys come
    from the same walk as the proof itself."""
    keys: set[tuple[int, int]] = set()

    def note(lo: int, hi: int) -> bytes:
        keys.update(tile_of(height, index) for height, index in subtree_nodes(lo, hi))
        return b""

    proof(note)
    return keys


class TiledTree:
    """Reads a tree of `size` leaves through its tiles, each tile fetched at most once per instance.

    With `fetch` (many tiles in one query), a proof reads all the tiles it needs in one round trip.
    """

    def __init__(self, get: TileGetter, size: int, *, fetch: TilesGetter | None = None) -> None:
        self._get = get
        self._fetch = fetch
        self.size = size
        self._cache: dict[tuple[int, int], bytes] = {}
        self._roots: dict[tuple[int, int], bytes] = {}

    def tile(self, level: int, index: int) -> bytes:
        key = (level, index)
        if key not in self._cache:
            self._cache[key] = self._get(level, index)
        return self._cache[key]

    def prefetch(self, keys: Iterable[tuple[int, int]]) -> None:
        """Read the tiles not read yet in one query (a missing tile is remembered as b"", as `tile` would)."""
        wanted = [key for key in keys if key not in self._cache]
        if self._fetch is None or not wanted:
            return
        found = self._fetch(wanted)
        for key in wanted:
            self._cache[key], roots = found.get(key, (b"", b""))
            if len(roots) == ROOTS_SIZE and len(self._cache[key]) == FULL_TILE:
                self._roots[key] = roots

    def node(self, height: int, index: int) -> bytes:
        """MTH of the complete subtree of 2**height leaves starting at leaf index * 2**height."""
        level, rest = divmod(height, HEIGHT)
        first = index << rest
        count = 1 << rest
        data = self.tile(level, first >> HEIGHT)
        offset = first & (WIDTH - 1)
        if len(data) < (offset + count) * HASH_SIZE:
            raise TileError(f"tile {tile_path(level, first >> HEIGHT)} is missing hashes the tree needs")
        roots = self._roots.get((level, first >> HEIGHT))
        if roots is not None:  # a full tile read with its stored subtree roots: at most 15 hashes, not 255
            if rest < SUBTREE_HEIGHT:
                return _run_root(data, offset, count)
            return _run_root(roots, offset >> SUBTREE_HEIGHT, count >> SUBTREE_HEIGHT)
        at = (offset >> rest) * HASH_SIZE
        return tile_rows(level, data)[rest][at : at + HASH_SIZE]

    def subtree(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) from the complete subtrees that make it up, joined from the right."""
        if lo == hi:
            return merkle.EMPTY_ROOT
        nodes = [self.node(height, index) for height, index in subtree_nodes(lo, hi)]
        acc = nodes[-1]
        for left in reversed(nodes[:-1]):
            acc = merkle.node_hash(left, acc)
        return acc

    def root(self, size: int | None = None) -> bytes:
        end = self.size if size is None else size
        if self._fetch is not None:
            self.prefetch(tiles_for(lambda subtree: subtree(0, end)))
        return self.subtree(0, end)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        if self._fetch is not None and 0 <= index < size:
            self.prefetch(tiles_for(lambda subtree: merkle.inclusion_proof_from(size, index, subtree)))
        return merkle.inclusion_proof_from(size, index, self.subtree)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        if self._fetch is not None and 0 <= old_size <= new_size:
            self.prefetch(tiles_for(lambda subtree: merkle.consistency_proof_from(new_size, old_size, subtree)))
        return merkle.consistency_proof_from(new_size, old_size, self.subtree)


def append(get: TileGetter, size: int, leaf_hashes: Iterable[bytes]) -> dict[tuple[int, int], bytes]:
    """The tiles that change when leaf_hashes are added to a tree of `size` leaves, with their new contents.

    A tile that fills up sends its root to the tile above, as tlog-tiles says: partial tiles are never hashed up.
    """
    changed: dict[tuple[int, int], bytearray] = {}
    incoming, level, start = list(leaf_hashes), 0, size
    while incoming:
        formed: list[bytes] = []
        position, taken = start, 0
        while taken < len(incoming):
            key = (level, position >> HEIGHT)
            if key not in changed:
                changed[key] = bytearray(get(*key))
            data, slot = changed[key], position & (WIDTH - 1)
            if len(data) != slot * HASH_SIZE:
                raise TileError(
                    f"tile {tile_path(*key)} holds {len(data) // HASH_SIZE} hashes, the tree's size needs {slot}"
                )
            count = min(WIDTH - slot, len(incoming) - taken)
            data += b"".join(incoming[taken : taken + count])
            taken, position = taken + count, position + count
            if len(data) == FULL_TILE:
                formed.append(hashes_up(split_hashes(bytes(data))))
        incoming, level, start = formed, level + 1, start >> HEIGHT
    return {key: bytes(value) for key, value in changed.items()}


@dataclass
class CompactRange:
    """The right frontier of a tree being rebuilt leaf by leaf: O(log n) roots, enough for the root at any size.

    `push` also reports (height, index, node) for each node it forms whose height is a multiple of 4: those of
    height 8L are the hashes of level-L tiles, those of height 8L + 4 the stored subtree roots of level-L tiles,
    so a verifier can compare both without hashing the tiles again.
    """

    size: int = 0
    nodes: list[bytes] = field(default_factory=list)  # roots of the complete subtrees in size's binary form

    def push(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        formed: list[tuple[int, int, bytes]] = []
        node, height, position = leaf, 0, self.size
        while position & 1:
            node = merkle.node_hash(self.nodes.pop(), node)
            height += 1
            position >>= 1
            if height % SUBTREE_HEIGHT == 0:
                formed.append((height, position, node))
        self.nodes.append(node)
        self.size += 1
        return formed

    def root(self) -> bytes:
        if not self.nodes:
            return merkle.EMPTY_ROOT
        acc = self.nodes[-1]
        for left in reversed(self.nodes[:-1]):
            acc = merkle.node_hash(left, acc)
        return acc

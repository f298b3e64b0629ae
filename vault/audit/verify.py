"""`vault audit verify`: stream the log from a read-only snapshot and check it against what the database cannot
change — the witnesses' cosigned checkpoints, the published checkpoint file, and the log's signing keys.

Memory stays bounded (a chunk of events, O(log n) frontier hashes, one hash per full tile formed, and one per 16
hashes of the upper tiles for their stored subtree roots); the server is never blocked (SQLite: a deferred read
transaction in WAL mode; PostgreSQL: a READ ONLY repeatable-read one).
Unless `full`, it starts from the frontier saved at the last checkpoint it verified, kept outside the database.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nacl.signing
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from vault.audit import merkle, note, tiles
from vault.audit.errors import NoteError, WitnessError
from vault.audit.witnessing import Transport, Witness, latest_of
from vault.crypto import jws
from vault.crypto.errors import JwsError
from vault.crypto.services import VAULT_SIGNING, KeyService

CHUNK = 16384  # a multiple of the tile width
STATE_FILE = "verified.json"


@dataclass(frozen=True)
class Problem:
    position: int
    what: str


@dataclass(frozen=True)
class VerifyReport:
    size: int
    checkpoints: int
    problem: Problem | None
    pending: int = 0
    start: int = 0
    anchors: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class Anchor:
    """A checkpoint held outside the database: (size, root) and who vouches for it."""

    size: int
    root: bytes
    source: str


class Failed(Exception):
    def __init__(self, position: int, what: str) -> None:
        super().__init__(what)
        self.problem = Problem(position, what)


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only, consistent view that takes no write lock."""
    if engine.dialect.name == "sqlite":
        reader = create_engine(engine.url, poolclass=NullPool, connect_args={"check_same_thread": False})
        try:
            with reader.connect() as conn:
                conn.connection.dbapi_connection.isolation_level = None  # type: ignore[union-attr]
                conn.exec_driver_sql("PRAGMA busy_timeout = 15000")
                conn.exec_driver_sql("PRAGMA query_only = ON")
                conn.exec_driver_sql("BEGIN")  # deferred: a WAL read snapshot, writers carry on
                try:
                    yield conn
                finally:
                    conn.exec_driver_sql("ROLLBACK")
        finally:
            reader.dispose()
        return
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            yield conn


@dataclass
class _Run:
    conn: Connection
    origin: str
    verifiers: list[note.Verifier]
    legacy_keys: dict[str, nacl.signing.VerifyKey]
    anchors: list[Anchor]
    frontier: tiles.CompactRange
    checked: int = 0
    saved: tiles.CompactRange | None = None
    upper: dict[tuple[int, int], bytes] = field(default_factory=dict)
    upper_roots: dict[tuple[int, int], bytes] = field(default_factory=dict)  # (level, node index): subtree root

    def tile(self, level: int, idx: int) -> bytes:
        value = self.conn.execute(
            text("SELECT hashes FROM audit_tiles WHERE level = :l AND idx = :i"), {"l": level, "i": idx}
        ).scalar()
        return bytes(value) if value is not None else b""

    def check_checkpoint(self, size: int, stored_root: bytes, signed: str) -> None:
        what = _checkpoint_problem(self, size, stored_root, signed)
        if what:
            raise Failed(size - 1, what)
        if stored_root != self.frontier.root():
            raise Failed(size - 1, f"events up to {size} do not hash to the checkpointed root")
        self.checked += 1
        self.saved = tiles.CompactRange(self.frontier.size, list(self.frontier.nodes))

    def check_anchor(self, anchor: Anchor) -> None:
        if anchor.root != self.frontier.root():
            raise Failed(
                anchor.size - 1,
                f"the first {anchor.size} events do not hash to the root {anchor.source} holds: the log was rewritten",
            )


def _checkpoint_problem(run: _Run, size: int, stored_root: bytes, signed: str) -> str | None:
    if signed.startswith("ey"):  # a compact JWS, from before checkpoints were notes
        return _legacy_problem(signed, size, stored_root, run.legacy_keys)
    try:
        parsed = note.parse_note(signed)
        body = note.parse_checkpoint(parsed.text)
        if not note.verified_by(parsed, run.verifiers):
            return f"checkpoint of size {size} is not signed by the log's key"
    except NoteError as error:
        return f"checkpoint of size {size}: {error}"
    if body.origin != run.origin or body.size != size or body.root != stored_root:
        return f"checkpoint of size {size} does not match its signed statement"
    return None


def _legacy_problem(signed: str, size: int, root: bytes, keys: dict[str, nacl.signing.VerifyKey]) -> str | None:
    try:
        key = keys.get(str(jws.decode_unverified(signed)[0].get("kid")))
        if key is None:
            return f"checkpoint of size {size} is signed by an unknown key"
        claims = json.loads(jws.verify_compact(signed, key)[1])
    except (JwsError, ValueError):
        return f"checkpoint of size {size} has a bad signature"
    if claims.get("size") != size or claims.get("root") != jws.b64url_encode(root):
        return f"checkpoint of size {size} does not match its signed statement"
    return None


def _anchor_from(
    signed: str, source: str, run_verifiers: list[note.Verifier], origin: str, cosigners: list[note.Verifier]
) -> Anchor:
    parsed = note.parse_note(signed)
    body = note.parse_checkpoint(parsed.text)
    if body.origin != origin:
        raise NoteError(f"{source} holds a checkpoint of another log ({body.origin})")
    if not note.verified_by(parsed, run_verifiers):
        raise NoteError(f"{source} holds a checkpoint not signed by the log's key")
    if cosigners and not note.verified_by(parsed, cosigners):
        raise NoteError(f"{source} holds a checkpoint without its witness's cosignature")
    return Anchor(body.size, body.root, source)


def _collect_anchors(
    verifiers: list[note.Verifier],
    origin: str,
    witnesses: tuple[Witness, ...],
    transport: Transport,
    data_dir: Path | None,
) -> tuple[list[Anchor], list[str]]:
    anchors, notes = [], []
    for witness in witnesses:
        try:
            signed = latest_of(transport, witness, origin)
        except WitnessError as error:
            notes.append(f"witness {witness.name} unreachable: {error}")
            continue
        if signed is None:
            notes.append(f"witness {witness.name} has cosigned nothing yet")
            continue
        try:
            anchors.append(_anchor_from(signed, f"witness {witness.name}", verifiers, origin, [witness.verifier]))
        except NoteError as error:
            raise Failed(0, str(error)) from None
    published = data_dir / "checkpoint" if data_dir else None
    if published is not None and published.exists():
        try:
            anchors.append(_anchor_from(published.read_text(), "the published checkpoint", verifiers, origin, []))
        except (NoteError, UnicodeDecodeError) as error:
            raise Failed(0, f"the published checkpoint: {error}") from None
    return sorted(anchors, key=lambda a: a.size), notes


def _load_state(data_dir: Path | None, origin: str) -> tiles.CompactRange:
    path = data_dir / STATE_FILE if data_dir else None
    if path is None or not path.exists():
        return tiles.CompactRange()
    try:
        state = json.loads(path.read_text())
        if state.get("origin") != origin:
            return tiles.CompactRange()
        nodes = [note.unb64(h, "a saved hash") for h in state["nodes"]]
        frontier = tiles.CompactRange(int(state["size"]), nodes)
    except (ValueError, KeyError, TypeError, NoteError):
        return tiles.CompactRange()
    return frontier if len(nodes) == bin(frontier.size).count("1") else tiles.CompactRange()


def _save_state(data_dir: Path | None, origin: str, frontier: tiles.CompactRange) -> None:
    if data_dir is None:
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / (STATE_FILE + ".tmp")
    state = {"origin": origin, "size": frontier.size, "nodes": [note.b64(h) for h in frontier.nodes]}
    tmp.write_text(json.dumps(state))
    os.replace(tmp, data_dir / STATE_FILE)


def _checkpoints(conn: Connection, after: int) -> Iterator[tuple[int, bytes, str]]:
    while True:
        rows = conn.execute(
            text(
                "SELECT tree_size, root, signed FROM audit_checkpoints WHERE tree_size > :a "
                "ORDER BY tree_size LIMIT 1000"
            ),
            {"a": after},
        ).all()
        if not rows:
            return
        for size, root, signed in rows:
            yield int(size), bytes(root), str(signed)
        after = int(rows[-1][0])


def _stream(run: _Run) -> None:
    checkpoints = _checkpoints(run.conn, run.frontier.size)
    next_checkpoint = next(checkpoints, None)
    anchors = [a for a in run.anchors if a.size > run.frontier.size]
    position = run.frontier.size
    while True:
        rows = run.conn.execute(
            text(
                "SELECT leaf_index, entry, leaf_hash FROM audit_events "
                "WHERE leaf_index >= :lo AND leaf_index < :hi ORDER BY leaf_index"
            ),
            {"lo": position, "hi": position + CHUNK},
        ).all()
        if not rows:
            break
        first_tile = position // tiles.WIDTH
        span = {"a": first_tile, "b": (position + CHUNK - 1) // tiles.WIDTH}
        level0 = {
            int(i): bytes(h)
            for i, h in run.conn.execute(
                text("SELECT idx, hashes FROM audit_tiles WHERE level = 0 AND idx >= :a AND idx <= :b"), span
            )
        }
        roots0 = {
            int(i): bytes(r)
            for i, r in run.conn.execute(
                text("SELECT idx, roots FROM audit_tile_roots WHERE level = 0 AND idx >= :a AND idx <= :b"), span
            )
        }
        for index, entry, stored in rows:
            expected = run.frontier.size
            if index != expected:
                raise Failed(expected, f"event {expected} is missing from the tree")
            leaf = merkle.leaf_hash(bytes(entry))
            if leaf != bytes(stored):
                raise Failed(expected, "entry does not match its leaf hash")
            offset = (expected % tiles.WIDTH) * tiles.HASH_SIZE
            if level0.get(expected // tiles.WIDTH, b"")[offset : offset + tiles.HASH_SIZE] != leaf:
                raise Failed(expected, f"tile 0/{expected // tiles.WIDTH} does not hold the event's hash")
            for height, idx, hashed in run.frontier.push(leaf):
                level, rest = divmod(height, tiles.HEIGHT)
                if not rest:
                    run.upper[(level, idx)] = hashed
                elif level:
                    run.upper_roots[(level, idx)] = hashed
                else:
                    _check_root(roots0.get(idx // tiles.SUBTREES), 0, idx, hashed)
            while next_checkpoint is not None and next_checkpoint[0] == run.frontier.size:
                run.check_checkpoint(*next_checkpoint)
                next_checkpoint = next(checkpoints, None)
            while anchors and anchors[0].size == run.frontier.size:
                run.check_anchor(anchors.pop(0))
        position += CHUNK
    if next_checkpoint is not None:
        raise Failed(run.frontier.size, f"checkpoint of size {next_checkpoint[0]} names missing events")
    if anchors:
        raise Failed(
            run.frontier.size,
            f"{anchors[-1].source} holds {anchors[-1].size} events, the database {run.frontier.size}: "
            "events were removed",
        )


def _check_root(stored: bytes | None, level: int, idx: int, hashed: bytes) -> None:
    """A stored subtree root (of tile `level`/idx // 16), when there is one, must be the node the events give."""
    tile_idx, slot = divmod(idx, tiles.SUBTREES)
    if stored is not None and stored[slot * tiles.HASH_SIZE : (slot + 1) * tiles.HASH_SIZE] != hashed:
        raise Failed(
            idx << (tiles.HEIGHT * level + tiles.SUBTREE_HEIGHT),
            f"the stored subtree roots of tile {tiles.tile_path(level, tile_idx)} do not match the tree",
        )


def _stored_roots(run: _Run, level: int, idx: int) -> bytes | None:
    value = run.conn.execute(
        text("SELECT roots FROM audit_tile_roots WHERE level = :l AND idx = :i"), {"l": level, "i": idx}
    ).scalar()
    return None if value is None else bytes(value)


def _check_tiles(run: _Run) -> None:
    by_tile: dict[tuple[int, int], list[tuple[int, bytes]]] = {}
    for (level, idx), hashed in run.upper.items():
        by_tile.setdefault((level, idx // tiles.WIDTH), []).append((idx % tiles.WIDTH, hashed))
    for (level, tile_idx), entries in sorted(by_tile.items()):
        data = run.tile(level, tile_idx)
        for slot, hashed in entries:
            if data[slot * tiles.HASH_SIZE : (slot + 1) * tiles.HASH_SIZE] != hashed:
                raise Failed(
                    (tile_idx * tiles.WIDTH + slot) << (tiles.HEIGHT * level),
                    f"tile {tiles.tile_path(level, tile_idx)} does not hold the tree's hashes",
                )
    stored: dict[tuple[int, int], bytes | None] = {}
    for (level, idx), hashed in sorted(run.upper_roots.items()):
        key = (level, idx // tiles.SUBTREES)
        if key not in stored:
            stored[key] = _stored_roots(run, *key)
        _check_root(stored[key], level, idx, hashed)
    size = run.frontier.size
    if size and tiles.TiledTree(run.tile, size).root() != run.frontier.root():
        raise Failed(size - 1, "the stored tiles do not give the tree's root")


def verify_log(
    engine: Engine,
    *,
    keys: KeyService,
    origin: str,
    witnesses: tuple[Witness, ...],
    transport: Transport,
    data_dir: Path | None,
    full: bool,
) -> VerifyReport:
    with snapshot(engine) as conn:
        session = Session(bind=conn)
        legacy = keys.trusted_public_keys(session, VAULT_SIGNING)
        verifiers = [note.Verifier(origin, note.ED25519, bytes(k)) for k in legacy.values()]
        frontier = tiles.CompactRange() if full else _load_state(data_dir, origin)
        start = frontier.size
        pending = int(conn.execute(text("SELECT count(*) FROM audit_events WHERE leaf_index IS NULL")).scalar() or 0)
        last = conn.execute(text("SELECT max(leaf_index) FROM audit_events")).scalar()
        db_size = 0 if last is None else int(last) + 1
        anchors: list[Anchor] = []
        notes: list[str] = []
        run = _Run(conn, origin, verifiers, legacy, anchors, frontier)
        try:
            anchors[:], notes[:] = _collect_anchors(verifiers, origin, witnesses, transport, data_dir)
            if db_size < start:
                raise Failed(db_size, f"the database holds {db_size} events, {start} were verified before")
            if start and tiles.TiledTree(run.tile, db_size).root(start) != frontier.root():
                raise Failed(start - 1, f"the first {start} events, verified before, no longer hash to their root")
            for anchor in (a for a in anchors if a.size <= start):
                if tiles.TiledTree(run.tile, db_size).root(anchor.size) != anchor.root:
                    raise Failed(anchor.size - 1, f"the tree no longer has the root {anchor.source} holds")
            _stream(run)
            _check_tiles(run)
            if run.frontier.size != db_size:
                raise Failed(run.frontier.size, f"event {run.frontier.size} is missing from the tree")
            _check_anchored_rows(conn, anchors)
        except Failed as failure:
            return VerifyReport(
                run.frontier.size,
                run.checked,
                failure.problem,
                pending,
                start,
                tuple(a.source for a in anchors),
                tuple(notes),
            )
    if run.saved is not None:
        _save_state(data_dir, origin, run.saved)
    return VerifyReport(
        run.frontier.size,
        run.checked,
        None,
        pending,
        start,
        tuple(f"{a.source} at {a.size}" for a in anchors),
        tuple(notes),
    )


def _check_anchored_rows(conn: Connection, anchors: list[Anchor]) -> None:
    """The checkpoints held outside must be in the database too: deleting or replacing their rows shows."""
    for anchor in anchors:
        root = conn.execute(
            text("SELECT root FROM audit_checkpoints WHERE tree_size = :s"), {"s": anchor.size}
        ).scalar()
        if root is None:
            raise Failed(
                anchor.size - 1, f"checkpoint {anchor.size}, held by {anchor.source}, is missing from the database"
            )
        if bytes(root) != anchor.root:
            raise Failed(anchor.size - 1, f"checkpoint {anchor.size} differs from the one {anchor.source} holds")

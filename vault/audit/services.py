"""The access log: append without a log-wide lock, sequence in batches, sign checkpoints as C2SP notes, prove.

Appends write the event in the caller's transaction (an action and its record commit together or not at all).
The sequencer (the leader, or the CLI) gives events their indexes and adds them to the tiles; checkpoints sign the
tree's size and root; witnesses cosign them (see witnessing.py); verify.py checks the database against them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, insert, text
from sqlalchemy.orm import Session
from sqlmodel import col, select

from vault.audit import merkle, note, sequencer, tiles
from vault.audit.errors import AuditError, NotIntegrated
from vault.audit.events import Event
from vault.audit.models import AuditCheckpoint, AuditCosignature, AuditEvent
from vault.audit.verify import VerifyReport, verify_log
from vault.audit.witnessing import Transport, Witness, http_transport
from vault.clock import utcnow
from vault.crypto import jws
from vault.crypto.services import VAULT_SIGNING, KeyService, Signer
from vault.db import InsertRows, insert_rows

SIGNER_TTL = 60.0
__all__ = ["AuditError", "AuditLog", "InclusionProof", "NotIntegrated", "VerifyReport"]


@dataclass(frozen=True)
class InclusionProof:
    """Everything an owner needs to check an event offline: entry, path, and the cosigned checkpoint note."""

    event_id: str
    leaf_index: int
    tree_size: int
    leaf_hash: str
    path: list[str]
    root: str
    checkpoint: str
    entry: str
    log_key: str
    witness_keys: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {"format": "consent-vault-inclusion-proof/2", **self.__dict__}


_PROOF_ROWS = text(
    "SELECT e.leaf_index, e.leaf_hash, e.entry, c.tree_size, c.root, c.signed, s.line FROM audit_events AS e "
    "LEFT JOIN audit_checkpoints AS c ON c.tree_size IN "
    "((SELECT max(tree_size) FROM audit_cosignatures), (SELECT max(tree_size) FROM audit_checkpoints)) "
    "LEFT JOIN audit_cosignatures AS s ON s.tree_size = c.tree_size "
    "WHERE e.id = :id ORDER BY c.tree_size, s.witness"
).bindparams(bindparam("id", type_=AuditEvent.__table__.c.id.type))  # type: ignore[attr-defined]
"""The event with the latest cosigned checkpoint and the latest checkpoint (one row when they are the same, none
when there is no checkpoint yet), a row per cosignature line: no rows when there is no such event."""


def _with_cosignatures(signed: str, lines: Sequence[str]) -> str:
    """A checkpoint note with its witnesses' cosignature lines (they follow the note's own signature lines)."""
    if not lines or not signed.endswith("\n"):
        return signed
    return signed + "".join(lines)


def origin_of(public_url: str) -> str:
    """The checkpoint origin: the log's URL prefix without its scheme, as tlog-tiles recommends."""
    return public_url.split("://", 1)[-1].rstrip("/") + "/log"


_EVENTS = AuditEvent.__table__  # type: ignore[attr-defined]
_APPEND = insert(_EVENTS).returning(_EVENTS.c.seq)


def _row(event: Event) -> dict[str, Any]:
    """An event's row, stamped now with a fresh id: its canonical JSON entry and that entry's RFC 9162 leaf hash."""
    event_id, at = uuid.uuid4(), utcnow()
    entry = jws.canonical_json(event.body(event_id=event_id, at=at))
    return {
        "id": event_id,
        "created_at": at,
        "owner_id": event.owner_id,
        "actor": event.actor,
        "action": event.action.value,
        "entry": entry,
        "leaf_hash": merkle.leaf_hash(entry),
    }


EVENT_COLUMNS = ("id", "created_at", "owner_id", "actor", "action", "entry", "leaf_hash")


@dataclass(frozen=True)
class Stamped:
    """Events' rows, each stamped with its time and a fresh id (`at`: (time, id) per event, in order)."""

    rows: InsertRows
    at: list[tuple[datetime, uuid.UUID]]


def stamp(events: Sequence[Event]) -> Stamped:
    """Stamp events now, ready for append_stamped: the canonical JSON entries and their leaf hashes are computed
    here, so a bulk issue does it in the processes that prepare its batches, not in the one holding the writer's
    lock."""
    rows = [_row(event) for event in events]
    return Stamped(
        InsertRows(str(_EVENTS.name), EVENT_COLUMNS, [tuple(row[c] for c in EVENT_COLUMNS) for row in rows]),
        [(row["created_at"], row["id"]) for row in rows],
    )


class AuditLog:
    """Appends events in the caller's transaction; the leader sequences, checkpoints, publishes and gets cosigned."""

    def __init__(
        self,
        keys: KeyService,
        log_id: str,
        *,
        origin: str | None = None,
        data_dir: Path | None = None,
        witnesses: tuple[Witness, ...] = (),
        transport: Transport = http_transport,
    ) -> None:
        self.keys = keys
        self.log_id = log_id
        self.origin = origin or origin_of(log_id.rsplit("/", 1)[0])
        self.data_dir = data_dir
        self.witnesses = witnesses
        self.transport = transport
        self._signer: tuple[float, Signer] | None = None
        # called inside the appending transaction (notifications written with the event that caused them)
        self.listeners: list[Callable[[Session, list[tuple[Event, datetime, uuid.UUID]]], None]] = []

    # writing

    def append(self, session: Session, event: Event) -> AuditEvent:
        """Record the event now; it has no index until the sequencer integrates it (within about a second)."""
        values = _row(event)
        # one prepared INSERT, not the ORM's unit of work: every read's transaction appends one
        seq = session.connection().execute(_APPEND, values).scalar_one()
        row = AuditEvent(seq=seq, **values)
        for listener in self.listeners:
            listener(session, [(event, values["created_at"], values["id"])])
        return row

    def append_many(self, session: Session, events: Sequence[Event]) -> list[uuid.UUID]:
        """append() for many events in one multi-row insert (bulk issuance, a group commit's batch of reads); the
        same entries, the same listeners."""
        return self.append_stamped(session, events, stamp(events))

    def append_stamped(self, session: Session, events: Sequence[Event], stamped: Stamped) -> list[uuid.UUID]:
        """append_many() for events stamped beforehand (stamp(), e.g. in a process that prepares a bulk issue)."""
        if not events:
            return []
        insert_rows(session.connection(), _EVENTS, stamped.rows)
        for listener in self.listeners:
            listener(session, [(event, at, event_id) for event, (at, event_id) in zip(events, stamped.at, strict=True)])
        return [event_id for _, event_id in stamped.at]

    def append_each(self, session: Session, stamped: Sequence[tuple[Event, Stamped]]) -> list[uuid.UUID]:
        """append_stamped() for events stamped one by one (a group commit's reads each stamp theirs in their own
        thread, so that its one writer thread only inserts them), in one insert."""
        if not stamped:
            return []
        rows = [row for _, one in stamped for row in one.rows.rows]
        together = Stamped(replace(stamped[0][1].rows, rows=rows), [at for _, one in stamped for at in one.at])
        return self.append_stamped(session, [event for event, _ in stamped], together)

    def integrate(self, session: Session, limit: int = sequencer.BATCH) -> int:
        return sequencer.integrate(session, limit)

    def sequence(self, session: Session, limit: int = sequencer.BATCH) -> tuple[int, AuditCheckpoint | None]:
        """One sequencer step: integrate a batch and sign the tree it makes, in one transaction."""
        count = self.integrate(session, limit)
        return count, self.checkpoint(session) if count else None

    def size(self, session: Session) -> int:
        return sequencer.tree_size(session)

    def pending(self, session: Session) -> int:
        return sequencer.pending_count(session)

    def tree(self, session: Session, size: int | None = None) -> tiles.TiledTree:
        return tiles.TiledTree(
            sequencer.tile_getter(session),
            self.size(session) if size is None else size,
            fetch=sequencer.tiles_getter(session),
        )

    # signing

    def verifiers(self, session: Session) -> list[note.Verifier]:
        """The log's note verifiers: every trusted signing key (derived from the wrapped secrets) under the origin."""
        return [
            note.Verifier(self.origin, note.ED25519, bytes(key))
            for key in self.keys.trusted_public_keys(session, VAULT_SIGNING).values()
        ]

    def _current_signer(self, session: Session) -> Signer:
        """The vault's signing key, unwrapped at most once a minute (a rotation shows within that minute)."""
        now = time.monotonic()
        if self._signer is None or now - self._signer[0] > SIGNER_TTL:
            self._signer = (now, self.keys.signer(session, VAULT_SIGNING))
        return self._signer[1]

    def log_key(self, session: Session) -> str:
        return note.verifier_of(self.origin, note.ED25519, self._current_signer(session).key).vkey

    def checkpoint(self, session: Session) -> AuditCheckpoint | None:
        """Sign the current tree; None when nothing was integrated since the last checkpoint.

        Refuses (AuditError) to sign a tree that no longer extends the last checkpoint: a truncated or rewritten
        log is never signed over. Costs O(log n): the root and the old root come from the tiles.
        """
        size = self.size(session)
        latest = self.latest_checkpoint(session)
        if latest is not None and size < latest.tree_size:
            raise AuditError(f"the tree has {size} events but checkpoint {latest.tree_size} signed more")
        if size == 0 or (latest is not None and latest.tree_size == size):
            return None
        tree = self.tree(session, size)
        if latest is not None and tree.root(latest.tree_size) != latest.root:
            raise AuditError(f"the tree no longer matches checkpoint {latest.tree_size}: it will not be signed")
        root = tree.root()
        body = note.Checkpoint(self.origin, size, root).text()
        signer = self._current_signer(session)
        signed = note.Note(body, (note.sign(body, self.origin, signer.key),)).render()
        row = AuditCheckpoint(tree_size=size, root=root, signed=signed, created_at=utcnow())
        session.add(row)
        session.flush()
        return row

    def latest_checkpoint(self, session: Session) -> AuditCheckpoint | None:
        return session.scalars(select(AuditCheckpoint).order_by(col(AuditCheckpoint.tree_size).desc()).limit(1)).first()

    def checkpoint_at(self, session: Session, size: int) -> AuditCheckpoint:
        row = session.get(AuditCheckpoint, size)
        if row is None:
            raise AuditError(f"there is no checkpoint of size {size}")
        return row

    def cosigned_note(self, session: Session, row: AuditCheckpoint) -> str:
        """The checkpoint note with the cosignatures the witnesses returned for it."""
        lines = session.scalars(
            select(AuditCosignature.line)
            .where(AuditCosignature.tree_size == row.tree_size)
            .order_by(col(AuditCosignature.witness))
        ).all()
        return _with_cosignatures(row.signed, lines)

    def latest_cosigned(self, session: Session) -> AuditCheckpoint | None:
        size = session.scalar(select(AuditCosignature.tree_size).order_by(col(AuditCosignature.tree_size).desc()))
        return None if size is None else session.get(AuditCheckpoint, size)

    # proving

    def prove(self, session: Session, event_id: uuid.UUID) -> InclusionProof:
        """The event's inclusion proof against the latest cosigned checkpoint that covers it (else the latest).

        Two queries whatever the log's size: the event with the two candidate checkpoints and their cosignatures,
        then the tiles the path needs; everything is read afresh from the session's database.
        """
        rows = session.connection().execute(_PROOF_ROWS, {"id": event_id}).all()
        if not rows:
            raise AuditError("no such event in the log")
        leaf_index, leaf_hash, entry = rows[0][:3]
        if leaf_index is None:
            raise NotIntegrated("the event is recorded; its place in the tree is given within seconds")
        # Of the latest cosigned checkpoint and the latest, the smaller that covers the event is the one named above.
        candidates: dict[int, tuple[bytes, str, list[str]]] = {}
        for *_, size, root, signed, line in rows:
            if size is None:
                continue
            _, _, lines = candidates.setdefault(int(size), (bytes(root), signed, []))
            if line is not None:
                lines.append(line)
        covering = [size for size in candidates if size > leaf_index]
        if not covering:
            raise NotIntegrated("the event is in the tree; the checkpoint that covers it is signed within seconds")
        tree_size = min(covering)
        root, signed, lines = candidates[tree_size]
        path = self.tree(session, tree_size).inclusion_proof(leaf_index, tree_size)
        return InclusionProof(
            event_id=str(event_id),
            leaf_index=leaf_index,
            tree_size=tree_size,
            leaf_hash=note.b64(bytes(leaf_hash)),
            path=[note.b64(h) for h in path],
            root=note.b64(root),
            checkpoint=_with_cosignatures(signed, lines),
            entry=bytes(entry).decode("utf-8"),
            log_key=self.log_key(session),
            witness_keys=[w.verifier.vkey for w in self.witnesses],
        )

    def consistency(self, session: Session, old_size: int, new_size: int) -> list[str]:
        self.checkpoint_at(session, old_size)
        self.checkpoint_at(session, new_size)
        if old_size > new_size:
            raise AuditError("the old checkpoint must not be larger than the new one")
        return [note.b64(h) for h in self.tree(session, new_size).consistency_proof(old_size, new_size)]

    # checking

    def verify(self, bind: Session | Engine, *, full: bool = False) -> VerifyReport:
        """Check the database against the witnesses, the published checkpoint and every signed checkpoint.

        Works from its own read-only snapshot (never the caller's transaction), streaming; incremental from the
        last verified checkpoint kept beside the published files unless `full`.
        """
        engine = bind.get_bind().engine if isinstance(bind, Session) else bind
        return verify_log(
            engine,
            keys=self.keys,
            origin=self.origin,
            witnesses=self.witnesses,
            transport=self.transport,
            data_dir=self.data_dir,
            full=full,
        )

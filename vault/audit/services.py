"""The access log: append under a lock, checkpoint, prove and verify (RFC 9162 hashing, Ed25519 signatures)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import nacl.signing
from sqlalchemy import func, text
from sqlalchemy.orm import Session
from sqlmodel import col, select

from vault.audit import merkle
from vault.audit.events import Event
from vault.audit.models import AuditCheckpoint, AuditEvent
from vault.clock import utcnow
from vault.crypto import jws
from vault.crypto.errors import JwsError
from vault.crypto.services import VAULT_SIGNING, KeyService

_PG_APPEND_LOCK = 0x7661756C74  # any constant; every appender takes the same advisory lock
CHECKPOINT_TYPE = "checkpoint+jwt"


class AuditError(Exception):
    """An event or checkpoint named does not exist, or a proof cannot be made."""


@dataclass(frozen=True)
class Problem:
    position: int
    what: str


@dataclass(frozen=True)
class VerifyReport:
    size: int
    checkpoints: int
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class InclusionProof:
    event_id: str
    leaf_index: int
    tree_size: int
    leaf_hash: str
    path: list[str]
    root: str
    checkpoint: str
    entry: str

    def as_json(self) -> dict[str, object]:
        return self.__dict__.copy()


def _b64(data: bytes) -> str:
    return jws.b64url_encode(data)


def verify_entries(
    rows: Sequence[tuple[int, bytes, bytes]],
    checkpoints: Sequence[tuple[int, bytes, str]],
    keys: dict[str, nacl.signing.VerifyKey],
) -> VerifyReport:
    """Check stored (index, entry, leaf_hash) rows and (size, root, signed) checkpoints; name the first fault.

    Each entry carries its own index and its predecessor's leaf hash, so an edit, deletion, insertion or
    reordering is caught at its position even when the attacker recomputes the stored leaf hashes.
    """
    hashes: list[bytes] = []
    prev = ""
    for position, (index, entry, stored_hash) in enumerate(rows):
        if index != position:
            return VerifyReport(len(rows), 0, Problem(position, f"expected event {position}, found {index}"))
        try:
            body = json.loads(entry)
        except ValueError:
            return VerifyReport(len(rows), 0, Problem(position, "entry is not valid JSON"))
        if body.get("index") != position:
            return VerifyReport(len(rows), 0, Problem(position, "entry was moved from another position"))
        if body.get("prev") != prev:
            return VerifyReport(len(rows), 0, Problem(position, "entry does not follow the one before it"))
        computed = merkle.leaf_hash(entry)
        if computed != stored_hash:
            return VerifyReport(len(rows), 0, Problem(position, "entry does not match its leaf hash"))
        hashes.append(computed)
        prev = _b64(computed)
    checked = 0
    for size, stored_root, signed in checkpoints:
        if size > len(hashes):
            return VerifyReport(
                len(rows), checked, Problem(len(hashes), f"checkpoint of size {size} names missing events")
            )
        problem = _check_checkpoint(signed, size, stored_root, merkle.root(hashes[:size]), keys)
        if problem:
            return VerifyReport(len(rows), checked, Problem(size - 1, problem))
        checked += 1
    return VerifyReport(len(rows), checked, None)


def _check_checkpoint(
    signed: str, size: int, stored_root: bytes, computed_root: bytes, keys: dict[str, nacl.signing.VerifyKey]
) -> str | None:
    try:
        header = jws.decode_unverified(signed)[0]
        key = keys.get(str(header.get("kid")))
        if key is None:
            return f"checkpoint of size {size} is signed by an unknown key"
        claims = json.loads(jws.verify_compact(signed, key)[1])
    except (JwsError, ValueError):
        return f"checkpoint of size {size} has a bad signature"
    if claims.get("size") != size or claims.get("root") != _b64(stored_root):
        return f"checkpoint of size {size} does not match its signed statement"
    if computed_root != stored_root:
        return f"events up to {size} do not hash to the checkpointed root"
    return None


class AuditLog:
    """Appends events in the caller's transaction, so an action and its record commit together or not at all."""

    def __init__(self, keys: KeyService, log_id: str) -> None:
        self.keys = keys
        self.log_id = log_id

    def _lock(self, session: Session) -> None:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_APPEND_LOCK})
        # SQLite: every transaction began with BEGIN IMMEDIATE, which already excludes other writers

    def append(self, session: Session, event: Event) -> AuditEvent:
        self._lock(session)
        last = session.execute(
            select(AuditEvent.leaf_index, AuditEvent.leaf_hash).order_by(col(AuditEvent.leaf_index).desc()).limit(1)
        ).first()
        index, prev = (0, "") if last is None else (last[0] + 1, _b64(last[1]))
        event_id, at = uuid.uuid4(), utcnow()
        entry = jws.canonical_json(event.body(event_id=event_id, index=index, prev=prev, at=at))
        row = AuditEvent(
            leaf_index=index,
            id=event_id,
            created_at=at,
            owner_id=event.owner_id,
            actor=event.actor,
            action=event.action.value,
            entry=entry,
            leaf_hash=merkle.leaf_hash(entry),
        )
        session.add(row)
        session.flush()
        return row

    def size(self, session: Session) -> int:
        return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)

    def _leaf_hashes(self, session: Session, upto: int | None = None) -> list[bytes]:
        query = select(AuditEvent.leaf_hash).order_by(col(AuditEvent.leaf_index))
        if upto is not None:
            query = query.where(col(AuditEvent.leaf_index) < upto)
        return list(session.scalars(query))

    def checkpoint(self, session: Session) -> AuditCheckpoint | None:
        """Sign the current size and root; None when nothing was appended since the last checkpoint."""
        self._lock(session)
        hashes = self._leaf_hashes(session)
        latest = self.latest_checkpoint(session)
        if not hashes or (latest is not None and latest.tree_size == len(hashes)):
            return None
        root = merkle.root(hashes)
        signer = self.keys.signer(session, VAULT_SIGNING)
        at = utcnow()
        claims = {"log": self.log_id, "size": len(hashes), "root": _b64(root), "iat": int(at.timestamp())}
        signed = jws.sign_compact({"alg": "EdDSA", "typ": CHECKPOINT_TYPE, "kid": signer.kid}, claims, signer.key)
        row = AuditCheckpoint(tree_size=len(hashes), root=root, signed=signed, created_at=at)
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

    def verify(self, session: Session) -> VerifyReport:
        rows = session.execute(
            select(AuditEvent.leaf_index, AuditEvent.entry, AuditEvent.leaf_hash).order_by(col(AuditEvent.leaf_index))
        ).all()
        checkpoints = session.execute(
            select(AuditCheckpoint.tree_size, AuditCheckpoint.root, AuditCheckpoint.signed).order_by(
                col(AuditCheckpoint.tree_size)
            )
        ).all()
        return verify_entries(
            [(int(i), bytes(e), bytes(h)) for i, e, h in rows],
            [(int(s), bytes(r), str(t)) for s, r, t in checkpoints],
            self.keys.trusted_public_keys(session, VAULT_SIGNING),
        )

    def prove(self, session: Session, event_id: uuid.UUID) -> InclusionProof:
        """An inclusion proof of the event against the latest checkpoint, making one if none covers it yet."""
        event = session.scalars(select(AuditEvent).where(AuditEvent.id == event_id)).first()
        if event is None:
            raise AuditError("no such event in the log")
        latest = self.latest_checkpoint(session)
        if latest is None or latest.tree_size <= event.leaf_index:
            latest = self.checkpoint(session) or self.latest_checkpoint(session)
        assert latest is not None
        hashes = self._leaf_hashes(session, latest.tree_size)
        return InclusionProof(
            event_id=str(event.id),
            leaf_index=event.leaf_index,
            tree_size=latest.tree_size,
            leaf_hash=_b64(event.leaf_hash),
            path=[_b64(h) for h in merkle.inclusion_proof(hashes, event.leaf_index)],
            root=_b64(latest.root),
            checkpoint=latest.signed,
            entry=event.entry.decode("utf-8"),
        )

    def consistency(self, session: Session, old_size: int, new_size: int) -> list[str]:
        self.checkpoint_at(session, old_size)
        self.checkpoint_at(session, new_size)
        if old_size > new_size:
            raise AuditError("the old checkpoint must not be larger than the new one")
        hashes = self._leaf_hashes(session, new_size)
        return [_b64(h) for h in merkle.consistency_proof(hashes, old_size)]

"""Issuers' status lists: random slot allocation, bit changes that take effect at once, signed list tokens."""

from __future__ import annotations

import secrets
import threading
import time
import uuid

from sqlalchemy import func, insert, update
from sqlalchemy.orm import Session
from sqlmodel import col, select

from vault.clock import utcnow
from vault.licences import status_list
from vault.licences.errors import StatusListFull
from vault.licences.issuers import IssuerRegistry
from vault.licences.models import StatusEntry

CAPACITY = 1 << 20  # slots per issuer: 256 KiB packed at 2 bits, a few hundred bytes compressed when sparse
TOKEN_TTL = 300  # seconds a relying party may cache a list; changes are published at once regardless
_ALLOCATION_TRIES = 64


class StatusLists:
    def __init__(self, issuers: IssuerRegistry, capacity: int = CAPACITY) -> None:
        self.issuers = issuers
        self.capacity = capacity
        self._tokens: dict[str, tuple[str, str, float]] = {}
        self._lock = threading.Lock()

    def uri(self, code: str) -> str:
        return f"{self.issuers.public_url}/status-lists/{self.issuers.check(code)}"

    def code_of(self, uri: str) -> str | None:
        prefix = f"{self.issuers.public_url}/status-lists/"
        return uri[len(prefix) :] if uri.startswith(prefix) and uri[len(prefix) :] in self.issuers.codes() else None

    def free_slot(self, session: Session, code: str) -> int:
        """A random free slot, so an index says nothing about when, or for whom, a licence was issued."""
        for _ in range(_ALLOCATION_TRIES):
            idx = secrets.randbelow(self.capacity)
            taken = session.execute(
                select(StatusEntry.idx).where(col(StatusEntry.issuer_code) == code, col(StatusEntry.idx) == idx)
            ).first()
            if taken is None:
                return idx
        raise StatusListFull(f"the status list of {code} has no free slot")

    def claim(self, session: Session, code: str, idx: int, version_id: uuid.UUID) -> None:
        """Take the slot for a version; the primary key makes a race for the same slot fail, never share."""
        session.execute(
            insert(StatusEntry).values(issuer_code=code, idx=idx, version_id=version_id, updated_at=utcnow())
        )

    def set(self, session: Session, code: str, idx: int, value: int) -> None:
        session.execute(
            update(StatusEntry)
            .where(col(StatusEntry.issuer_code) == code, col(StatusEntry.idx) == idx)
            .values(status=value, updated_at=utcnow())
        )
        with self._lock:
            self._tokens.pop(code, None)

    def status(self, session: Session, code: str, idx: int) -> int | None:
        entry = session.get(StatusEntry, (code, idx))
        return None if entry is None else entry.status

    def token(self, session: Session, code: str) -> str:
        """The signed Status List Token, re-signed as soon as any slot of the list changed, by any process."""
        now = time.time()
        changed = session.scalar(select(func.max(StatusEntry.updated_at)).where(col(StatusEntry.issuer_code) == code))
        fingerprint = changed.isoformat() if changed else ""
        with self._lock:
            cached = self._tokens.get(code)
        if cached is not None and cached[0] == fingerprint and now - cached[2] < TOKEN_TTL:
            return cached[1]
        rows = session.execute(
            select(StatusEntry.idx, StatusEntry.status).where(
                col(StatusEntry.issuer_code) == code, col(StatusEntry.status) != status_list.VALID
            )
        ).all()
        signer = self.issuers.signer(session, code)
        token = status_list.status_list_jwt(
            sub=self.uri(code),
            iss=self.issuers.issuer_id(code),
            kid=signer.kid,
            key=signer.key,
            packed=status_list.pack_sparse(self.capacity, {int(i): int(s) for i, s in rows}),
            iat=int(now),
            exp=int(now) + 24 * 3600,
            ttl=TOKEN_TTL,
        )
        with self._lock:
            self._tokens[code] = (fingerprint, token, now)
        return token

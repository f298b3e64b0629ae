"""Sign-in throttling: after five failures in fifteen minutes for one login name, or from one client address, 429.

Each attempt is written down as a failure *before* the password is checked, in its own committed transaction,
and only then are the failures counted: parallel guesses all see each other, so no more than five passwords are
ever checked per window. A success deletes that login name's rows (not the address's). Login names and addresses
are kept only as keyed blind indexes, of kinds distinct from the accounts' own index.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session
from sqlmodel import col, select

from vault import clock
from vault.config import Settings
from vault.crypto.blind_index import blind_index
from vault.web.models import LoginAttempt

WINDOW = timedelta(minutes=15)
MAX_FAILURES = 5
ACCOUNT = "account"
ADDRESS = "address"


def client_address(peer: str | None, forwarded_for: str | None, settings: Settings) -> str:
    """The address sign-ins are counted under: the direct peer, unless it is a trusted proxy (VAULT_TRUSTED_PROXIES).

    Behind trusted proxies, the right-most X-Forwarded-For entry that is not itself a trusted proxy: everything
    left of it was written by the client and proves nothing.
    """
    address = peer or "unknown"
    if not forwarded_for or not settings.trusts_proxy(peer):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        if not hop:
            break
        address = hop
        if not settings.trusts_proxy(hop):
            break
    return address


@dataclass(frozen=True)
class Attempt:
    """The rows one sign-in attempt wrote, and the digests they are counted under."""

    ids: tuple[uuid.UUID, ...]
    digests: dict[str, bytes]


def digests(index_key: bytes, login: str, address: str) -> dict[str, bytes]:
    return {
        ACCOUNT: blind_index(index_key, "login-throttle:account", login),
        ADDRESS: blind_index(index_key, "login-throttle:address", address),
    }


def record(db: Session, keyed: dict[str, bytes]) -> Attempt:
    """Write this attempt down (as a failure, until it succeeds); also forgets attempts older than the window."""
    now = clock.utcnow()
    db.execute(delete(LoginAttempt).where(col(LoginAttempt.attempted_at) < now - WINDOW))
    rows = [LoginAttempt(scope=scope, digest=digest, attempted_at=now) for scope, digest in keyed.items()]
    db.add_all(rows)
    db.flush()
    return Attempt(tuple(r.id for r in rows), dict(keyed))


def wait_seconds(db: Session, attempt: Attempt) -> int | None:
    """None if this attempt may go on; otherwise the seconds until it could, having forgotten this attempt."""
    now = clock.utcnow()
    waits: list[datetime] = []
    for scope, digest in attempt.digests.items():
        earlier = db.scalars(
            select(LoginAttempt.attempted_at)
            .where(
                LoginAttempt.scope == scope,
                LoginAttempt.digest == digest,
                col(LoginAttempt.attempted_at) >= now - WINDOW,
                col(LoginAttempt.id).not_in(attempt.ids),
            )
            .order_by(col(LoginAttempt.attempted_at).desc())
            .limit(MAX_FAILURES)
        ).all()
        if len(earlier) >= MAX_FAILURES:
            waits.append(earlier[-1] + WINDOW)  # when the oldest of the last five leaves the window
    if not waits:
        return None
    db.execute(delete(LoginAttempt).where(col(LoginAttempt.id).in_(attempt.ids)))  # a refused try is not counted
    return max(1, math.ceil((max(waits) - now).total_seconds()))


def succeeded(db: Session, attempt: Attempt) -> None:
    """The password was right: the login name starts afresh; the address keeps its failures."""
    db.execute(
        delete(LoginAttempt).where(
            col(LoginAttempt.scope) == ACCOUNT, col(LoginAttempt.digest) == attempt.digests[ACCOUNT]
        )
    )
    db.execute(delete(LoginAttempt).where(col(LoginAttempt.id).in_(attempt.ids)))

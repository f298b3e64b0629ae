"""Opaque tokens: issued hashed, introspected in-process, rotated, and revoked by grant, family or code."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import Session
from sqlmodel import col, select

from vault.clock import utcnow
from vault.db import Prepared
from vault.group_commit import Unfinished
from vault.oauth.models import Agency, Token

_TOKENS = Token.__table__  # type: ignore[attr-defined]
_AGENCIES = Agency.__table__  # type: ignore[attr-defined]
_INTROSPECT = Prepared(
    sa_select(
        *(
            _TOKENS.c[name]
            for name in (
                "id",
                "client_id",
                "scope",
                "grant_id",
                "owner_id",
                "authorization_details",
                "issued_at",
                "access_expires_at",
                "revoked_at",
                "jkt",
            )
        )
    ).where(_TOKENS.c.access_hash == bindparam("access_hash"))
)
# tokens still usable now: unrevoked, and their client not suspended (on PostgreSQL the tokens' and their agencies'
# rows are locked FOR SHARE until commit, so a revocation or a suspension either committed before or waits for the
# transaction that releases data; a suspension locks only its agency's row, so no cycle with the grant-then-tokens
# order of a revocation)
_LIVE_TOKENS = (
    sa_select(_TOKENS.c.id, _TOKENS.c.revoked_at, _AGENCIES.c.suspended_at)
    .join(_AGENCIES, _AGENCIES.c.client_id == _TOKENS.c.client_id)
    .where(_TOKENS.c.id.in_(bindparam("token_ids", expanding=True)))
    .order_by(_TOKENS.c.id)
)
_LIVE = Prepared(_LIVE_TOKENS)
_LIVE_FOR_SHARE = Prepared(_LIVE_TOKENS.with_for_update(read=True, of=[_TOKENS, _AGENCIES]))
REVOKED = "the access token was revoked"
SUSPENDED = "the client of this access token is suspended"
ACCESS_LIFETIME = timedelta(minutes=10)
INTROSPECTED_CACHE_SIZE = 4_096  # live tokens remembered per process (about 1 kB each); emptied when full
REFRESH_IDLE = timedelta(days=7)  # a refresh token unused this long dies even inside the grant's validity


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str | None
    expires_in: int
    row: Token

    def response(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "DPoP" if self.row.jkt else "Bearer",
            "expires_in": self.expires_in,
            "scope": self.row.scope,
        }
        if self.refresh_token:
            body["refresh_token"] = self.refresh_token
        if self.row.authorization_details:
            body["authorization_details"] = self.row.authorization_details
        return body


class TokenRevoked(Exception):
    """The access token was revoked after the request was authenticated: it releases nothing."""


@dataclass(frozen=True)
class TokenInfo:
    """What a valid access token grants; built only by introspecting an unexpired, unrevoked token."""

    token_id: uuid.UUID
    client_id: str
    scope: tuple[str, ...]
    grant_id: uuid.UUID | None
    owner_id: uuid.UUID | None
    authorization_details: list[dict[str, Any]] = field(default_factory=list)
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    jkt: str | None = None  # DPoP-bound: usable only with a proof signed by the key of this thumbprint

    def has_scope(self, scope: str) -> bool:
        return scope in self.scope


class TokenService:
    def __init__(self) -> None:
        self._introspected: dict[bytes, TokenInfo] = {}

    def issue(
        self,
        session: Session,
        *,
        client_id: str,
        scope: Sequence[str],
        grant_id: uuid.UUID | None,
        owner_id: uuid.UUID | None,
        authorization_details: list[dict[str, Any]],
        refresh_until: datetime | None,
        family_id: uuid.UUID | None = None,
        code_hash: bytes | None = None,
        jkt: str | None = None,
    ) -> IssuedTokens:
        """A new access token (10 minutes) and, when `refresh_until` is given, a refresh token in the family.

        With `jkt` (a DPoP key's thumbprint) both are bound to that key (RFC 9449)."""
        now = utcnow()
        access = secrets.token_urlsafe(32)
        refresh = secrets.token_urlsafe(32) if refresh_until else None
        row = Token(
            access_hash=digest(access),
            refresh_hash=digest(refresh) if refresh else None,
            family_id=family_id or uuid.uuid4(),
            client_id=client_id,
            grant_id=grant_id,
            owner_id=owner_id,
            code_hash=code_hash,
            scope=" ".join(scope),
            authorization_details=authorization_details,
            issued_at=now,
            access_expires_at=now + ACCESS_LIFETIME,
            refresh_expires_at=refresh_until,
            jkt=jkt,
        )
        session.add(row)
        session.flush()
        return IssuedTokens(access, refresh, int(ACCESS_LIFETIME.total_seconds()), row)

    def by_access(self, session: Session, access_token: str) -> Token | None:
        return session.scalars(select(Token).where(Token.access_hash == digest(access_token))).first()

    def by_refresh(self, session: Session, refresh_token: str) -> Token | None:
        return session.scalars(select(Token).where(Token.refresh_hash == digest(refresh_token))).first()

    def introspect(self, session: Session, access_token: str) -> TokenInfo | None:
        """The grant behind an active access token; None for unknown, expired or revoked tokens (the columns it
        needs only: every agency request asks)."""
        row = _INTROSPECT.first(session.connection(), {"access_hash": digest(access_token)})
        if row is None:
            return None
        token_id, client_id, scope, grant_id, owner_id, details, issued_at, expires_at, revoked_at, jkt = row
        if revoked_at is not None or expires_at <= utcnow():
            return None
        return TokenInfo(
            token_id=token_id,
            client_id=client_id,
            scope=tuple(scope.split()),
            grant_id=grant_id,
            owner_id=owner_id,
            authorization_details=list(details),
            issued_at=issued_at,
            expires_at=expires_at,
            jkt=jkt,
        )

    def introspect_remembered(self, session: Session, access_token: str) -> TokenInfo | None:
        """`introspect`, answered from this process's memory for a token found live before.

        What a token grants never changes and its expiry is checked here; only its revocation could be missed,
        so a caller that releases anything on it must call `require_unrevoked` in the transaction that records
        the release (ReadLedger.flush does): a revocation committed by any worker is then honoured by the very
        next request everywhere, which answers 401 with nothing released.
        """
        key = digest(access_token)
        info = self._introspected.get(key)
        if info is None:
            info = self.introspect(session, access_token)
            if info is None:
                return None
            if len(self._introspected) >= INTROSPECTED_CACHE_SIZE:
                self._introspected.clear()
            self._introspected[key] = info
        return info if info.expires_at is None or info.expires_at > utcnow() else None

    def require_unrevoked(self, session: Session, token_id: uuid.UUID) -> None:
        """Raise TokenRevoked unless the token is unrevoked and its client not suspended now, in this (write)
        transaction.

        On PostgreSQL the token's and its agency's rows are locked FOR SHARE until commit, so a revocation or a
        suspension either committed before (and is seen here) or waits for this transaction: whatever this
        transaction records happened before it.
        """
        found = self._live(session, [token_id])
        if not found or found[0][1] is not None:
            raise TokenRevoked(REVOKED)
        if found[0][2] is not None:
            raise TokenRevoked(SUSPENDED)

    def require_all_live(self, session: Session, token_ids: list[uuid.UUID]) -> None:
        """`require_unrevoked` for the tokens of a group commit's writes, in one statement at the batch's end; if any
        is revoked or its client suspended, the batch is rolled back and each write runs alone, checking its own
        token (so only its request is refused)."""
        wanted = set(token_ids)
        live = {row[0] for row in self._live(session, sorted(wanted)) if row[1] is None and row[2] is None}
        if live != wanted:
            raise Unfinished("a token of the batch was revoked, or its client suspended")

    @staticmethod
    def _live(session: Session, token_ids: list[uuid.UUID]) -> list[tuple[Any, ...]]:
        """(id, revoked_at, suspended_at) of each token found."""
        connection = session.connection()
        query = _LIVE_FOR_SHARE if connection.dialect.name == "postgresql" else _LIVE
        return query.all(connection, {"token_ids": token_ids})

    def refresh_usable(self, row: Token) -> bool:
        now = utcnow()
        return (
            row.revoked_at is None
            and row.refresh_used_at is None
            and row.refresh_expires_at is not None
            and row.refresh_expires_at > now
            and row.issued_at + REFRESH_IDLE > now
        )

    def revoke_family(self, session: Session, family_id: uuid.UUID) -> int:
        return self._revoke(session, col(Token.family_id) == family_id)

    def revoke_grant(self, session: Session, grant_id: uuid.UUID) -> int:
        """Every token ever issued under the grant, in the caller's transaction (a revocation listener)."""
        return self._revoke(session, col(Token.grant_id) == grant_id)

    def revoke_code(self, session: Session, code_hash: bytes) -> int:
        """Every token issued from this authorization code and its refresh descendants (code replay)."""
        families = session.scalars(select(Token.family_id).where(Token.code_hash == code_hash)).all()
        return sum(self.revoke_family(session, f) for f in set(families))

    def revoke_row(self, session: Session, row: Token) -> int:
        return self._revoke(session, col(Token.id) == row.id)

    def _revoke(self, session: Session, condition: Any) -> int:
        result = session.execute(
            update(Token).where(condition, col(Token.revoked_at).is_(None)).values(revoked_at=utcnow())
        )
        return int(getattr(result, "rowcount", 0) or 0)

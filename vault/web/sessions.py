"""Server-side web sessions and the cookies that carry them.

The session cookie holds a random token; the database keeps only SHA-256(token) as the row id, with the account,
whom the person is acting for, the CSRF token and the language. Sessions end after 30 idle minutes or 12 hours
whatever happens; signing in always starts a new session (the old row is deleted) and signing out deletes the row,
so a copied cookie is dead too.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import delete, or_
from sqlalchemy.orm import Session
from sqlmodel import col
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vault import clock
from vault.owners.models import Account, AccountRole
from vault.owners.services import OwnerService
from vault.web.errors import LoginRequired
from vault.web.models import WebSession
from vault.wiring import Vault

IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most once a minute, not on every request
LANG_COOKIE = "lang"
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600
_NOT_LOADED = object()


@dataclass(frozen=True)
class SignedIn:
    """The person behind a request, as the pages see them."""

    session_id: str
    account_id: uuid.UUID
    role: AccountRole
    person_id: uuid.UUID | None  # the account's own owner; None for staff
    acting_for: uuid.UUID | None  # an enterprise the person represents, when they chose to act for it
    csrf_token: str
    lang: str

    @property
    def owner_id(self) -> uuid.UUID | None:
        """Whose data space the pages show: the enterprise acted for, else the person themself."""
        return self.acting_for or self.person_id

    @property
    def is_staff(self) -> bool:
        return self.role is AccountRole.STAFF


def is_https(vault: Vault) -> bool:
    return vault.settings.secure_cookies  # https, or production mode (which requires https)


def session_cookie_name(vault: Vault) -> str:
    # A __Host- cookie must be Secure, and a browser drops Secure cookies over plain http, so the
    # development server on http://127.0.0.1 uses an unprefixed name.
    return "__Host-vault" if is_https(vault) else "vault_session"


def pre_session_cookie_name(vault: Vault) -> str:
    """The random cookie that forms shown before sign-in are bound to (see vault.web.csrf)."""
    return "__Host-vault-pre" if is_https(vault) else "vault_pre"


def session_id(token: str) -> str:
    """The row id of the session a cookie token names: hex SHA-256, so the database never holds a live token."""
    return hashlib.sha256(token.encode()).hexdigest()


def today() -> date:
    return clock.utcnow().astimezone().date()


# storage (synchronous, inside one unit of work)


def _expired(row: WebSession) -> bool:
    now = clock.utcnow()
    return now - row.last_seen_at > IDLE_TIMEOUT or now - row.created_at > ABSOLUTE_TIMEOUT


def create(db: Session, account: Account, *, lang: str, replacing: str | None) -> tuple[str, SignedIn]:
    """Start a session for `account`, deleting the one whose token is `replacing`; returns (cookie token, user)."""
    if replacing:
        destroy(db, replacing)
    token = secrets.token_urlsafe(32)
    now = clock.utcnow()
    row = WebSession(
        id=session_id(token),
        account_id=account.id,
        acting_for=None,
        csrf_token=secrets.token_urlsafe(32),
        lang=lang,
        created_at=now,
        last_seen_at=now,
    )
    db.add(row)
    db.flush()
    return token, _signed_in(row, account)


def load(db: Session, owners: OwnerService, token: str) -> SignedIn | None:
    """The session a cookie token names; None (and the row deleted) if unknown, timed out or its account disabled."""
    row = db.get(WebSession, session_id(token))
    if row is None:
        return None
    account = db.get(Account, row.account_id)
    if _expired(row) or account is None or account.disabled_at is not None:
        db.delete(row)
        return None
    if row.acting_for is not None and (
        account.owner_id is None or not owners.may_act_for(db, account.owner_id, row.acting_for, today())
    ):
        row.acting_for = None  # the representation ended since it was chosen
    now = clock.utcnow()
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return _signed_in(row, account)


def destroy(db: Session, token: str) -> None:
    db.execute(delete(WebSession).where(col(WebSession.id) == session_id(token)))


def set_acting_for(db: Session, user: SignedIn, enterprise_id: uuid.UUID | None) -> None:
    """Act for this enterprise from now on (None: for the person themself); the caller checks they may."""
    row = db.get(WebSession, user.session_id)
    if row is not None:
        row.acting_for = enterprise_id


def set_lang(db: Session, user: SignedIn, lang: str) -> None:
    row = db.get(WebSession, user.session_id)
    if row is not None:
        row.lang = lang


def purge_expired(db: Session) -> int:
    """Delete every timed-out session; returns how many."""
    now = clock.utcnow()
    result = db.execute(
        delete(WebSession).where(
            or_(col(WebSession.last_seen_at) < now - IDLE_TIMEOUT, col(WebSession.created_at) < now - ABSOLUTE_TIMEOUT)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _signed_in(row: WebSession, account: Account) -> SignedIn:
    return SignedIn(
        session_id=row.id,
        account_id=account.id,
        role=AccountRole(account.role),
        person_id=account.owner_id,
        acting_for=row.acting_for,
        csrf_token=row.csrf_token,
        lang=row.lang,
    )


# per request


def vault_of(request: Request) -> Vault:
    vault: Vault = request.app.state.vault
    return vault


def session_token(request: Request) -> str | None:
    return request.cookies.get(session_cookie_name(vault_of(request))) or None


async def current_user(request: Request) -> SignedIn | None:
    """The signed-in person, or None; loaded once per request. A dead session's cookie is cleared on the response."""
    cached = getattr(request.state, "vault_user", _NOT_LOADED)
    if cached is not _NOT_LOADED:
        return cached if isinstance(cached, SignedIn) else None
    token = session_token(request)
    user = None
    if token is not None:
        vault = vault_of(request)

        def run() -> SignedIn | None:
            with vault.db.session() as db:
                return load(db, vault.owners, token)

        user = await run_in_threadpool(run)
        if user is None:
            expire_cookie(request, session_cookie_name(vault))
    request.state.vault_user = user
    return user


async def require_user(request: Request) -> SignedIn:
    """The signed-in person; raises LoginRequired (a redirect to the sign-in page, back here after) otherwise."""
    user = await current_user(request)
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target if request.method == "GET" else None)
    return user


def set_current_user(request: Request, user: SignedIn | None) -> None:
    """Tell the rest of this request who is signed in now (after sign-in or sign-out)."""
    request.state.vault_user = user


# cookies: queued by handlers, written onto whatever response leaves the app


def set_cookie(request: Request, name: str, value: str, *, max_age: int | None = None) -> None:
    """Queue a Set-Cookie for this response: Path=/, HttpOnly, SameSite=Lax, and Secure when served over https."""
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if is_https(vault_of(request)):
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    queued: dict[str, str] = request.scope.setdefault("state", {}).setdefault("vault_cookies", {})
    queued.pop(name, None)  # the last word on a cookie wins, e.g. a new session after clearing a dead one
    queued[name] = "; ".join(parts)


def expire_cookie(request: Request, name: str) -> None:
    set_cookie(request, name, "", max_age=0)


class CookieMiddleware:
    """Pure ASGI: writes the cookies handlers queued with set_cookie onto the response, whoever built it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for cookie in state.get("vault_cookies", {}).values():
                    headers.append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_with_cookies)

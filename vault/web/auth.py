"""Signing in and out. An unknown login name and a wrong password get the same page, status and (about) time."""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vault.owners.accounts import MIN_PASSWORD, AccountService, Enrolments, hash_password
from vault.owners.errors import ActivationFailed
from vault.owners.models import Account
from vault.web import sessions, throttle
from vault.web.csrf import check_form_post, field, require_post
from vault.web.rendering import current_lang, redirect, render
from vault.web.sessions import SignedIn, current_user, vault_of
from vault.wiring import Vault

MAX_LOGIN = 64
MAX_NEXT = 2000


def safe_next(value: object) -> str | None:
    """`value` if it is a path on this site, else None.

    Refused: anything not starting with a single "/" ("//host", "https://…"), backslashes (browsers read "/\\host"
    as "//host"), whitespace and control characters, and anything urlsplit sees a scheme or host in.
    """
    if not isinstance(value, str) or not value.startswith("/") or len(value) > MAX_NEXT:
        return None
    if value.startswith("//") or "\\" in value:
        return None
    if any(c.isspace() or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value):
        return None
    parts = urlsplit(value)
    return None if parts.scheme or parts.netloc else value


def login_url(next_path: str | None) -> str:
    return "/login" + (f"?{urlencode({'next': next_path})}" if next_path and next_path != "/" else "")


def landing(user: SignedIn) -> str:
    return "/console" if user.is_staff else "/"


@dataclass(frozen=True)
class Outcome:
    token: str | None = None
    user: SignedIn | None = None
    wait_seconds: int | None = None


def sign_in(vault: Vault, login: str, password: str, address: str, old_token: str | None, lang: str) -> Outcome:
    """Throttle, check the password, and on success start a new session (deleting the old one)."""
    with vault.db.session() as db:
        attempt = throttle.record(db, throttle.digests(vault.keys.index_key(db), login, address))
    with vault.db.session() as db:
        wait = throttle.wait_seconds(db, attempt)
    if wait is not None:
        return Outcome(wait_seconds=wait)
    accounts = AccountService(vault.keys)
    with vault.db.read_session() as db:
        found = accounts.by_login(db, login)
    account = accounts.check_password(found, password)  # argon2 outside any transaction and the write lock
    if account is None:
        return Outcome()
    with vault.db.session() as db:
        current = db.get(Account, account.id)  # erased or disabled while the password was being checked?
        if current is None or current.disabled_at is not None:
            return Outcome()
        throttle.succeeded(db, attempt)
        sessions.purge_expired(db)
        token, user = sessions.create(db, current, lang=lang, replacing=old_token)
        return Outcome(token=token, user=user)


async def _login_form(
    request: Request, next_path: str | None, *, login: str = "", error: str | None = None, **extra: object
) -> Response:
    status = {"throttled": 429}.get(error or "", 200)
    headers = {"Retry-After": str(extra["retry_after"])} if error == "throttled" else None
    context = {"next_path": next_path or "", "login_name": login, "error": error, **extra}
    return await render(request, "login.html", context, status_code=status, headers=headers)


async def login_page(request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    user = await current_user(request)
    if user is not None:
        return redirect(next_path or landing(user))
    return await _login_form(request, next_path)


async def login_submit(request: Request) -> Response:
    await check_form_post(request)
    form = await request.form()
    login, password = field(form, "login", MAX_LOGIN).strip(), field(form, "password", 1024)
    next_path = safe_next(form.get("next"))
    if not login or not password:
        return await _login_form(request, next_path, login=login, error="missing")
    vault = vault_of(request)
    peer = request.client.host if request.client else None
    address = throttle.client_address(peer, request.headers.get("x-forwarded-for"), vault.settings)
    lang = current_lang(request, await current_user(request))
    old = sessions.session_token(request)
    outcome = await run_in_threadpool(sign_in, vault, login, password, address, old, lang)
    if outcome.wait_seconds is not None:
        minutes = math.ceil(outcome.wait_seconds / 60)
        return await _login_form(
            request, next_path, login=login, error="throttled", minutes=minutes, retry_after=outcome.wait_seconds
        )
    if outcome.user is None or outcome.token is None:
        return await _login_form(request, next_path, login=login, error="wrong")
    sessions.set_cookie(request, sessions.session_cookie_name(vault), outcome.token)
    sessions.set_current_user(request, outcome.user)
    return redirect(next_path or landing(outcome.user))


async def logout_page(request: Request) -> Response:
    if await current_user(request) is None:
        return redirect("/login")
    return await render(request, "logout.html")


async def logout_submit(request: Request) -> Response:
    await require_post(request)
    vault, token = vault_of(request), sessions.session_token(request)

    def run() -> None:
        with vault.db.session() as db:
            sessions.destroy(db, token or "")

    await run_in_threadpool(run)
    sessions.expire_cookie(request, sessions.session_cookie_name(vault))
    sessions.set_current_user(request, None)
    return redirect("/login")


# activation: a person an operator enrolled (`vault owners enrol`) sets their password with the one-time code

MAX_CODE = 40


def activate(vault: Vault, login: str, code: str, password: str, address: str) -> str | None:
    """Redeem the code (throttled like a sign-in); None on success, else the error the page shows."""
    with vault.db.session() as db:
        attempt = throttle.record(db, throttle.digests(vault.keys.index_key(db), login, address))
    with vault.db.session() as db:
        if throttle.wait_seconds(db, attempt) is not None:
            return "throttled"
    password_hash = hash_password(password)  # argon2 outside any transaction and the write lock
    try:
        with vault.db.session() as db:
            Enrolments(vault.keys, vault.audit).redeem(db, login=login, code=code, password_hash=password_hash)
            throttle.succeeded(db, attempt)
    except ActivationFailed:
        return "wrong"
    return None


async def activate_page(request: Request) -> Response:
    return await render(request, "activate.html", {"error": None, "login_name": "", "min_password": MIN_PASSWORD})


async def activate_submit(request: Request) -> Response:
    """POST /activate: login (resident ID number), code, password twice; 303 to sign-in once the password is set."""
    await check_form_post(request)
    form = await request.form()
    login, code = field(form, "login", MAX_LOGIN).strip(), field(form, "code", MAX_CODE).strip()
    password, again = field(form, "password", 1024), field(form, "password_again", 1024)
    error: str | None = None
    if not login or not code or not password:
        error = "missing"
    elif len(password) < MIN_PASSWORD:
        error = "short"
    elif password != again:
        error = "different"
    else:
        address = request.client.host if request.client else "unknown"
        error = await run_in_threadpool(activate, vault_of(request), login, code, password, address)
    if error is None:
        return redirect("/login?activated=1")
    context = {"error": error, "login_name": login, "min_password": MIN_PASSWORD}
    return await render(request, "activate.html", context, status_code=429 if error == "throttled" else 400)


routes = [
    Route("/activate", activate_page, methods=["GET"], name="activate"),
    Route("/activate", activate_submit, methods=["POST"]),
    Route("/login", login_page, methods=["GET"], name="login"),
    Route("/login", login_submit, methods=["POST"]),
    Route("/logout", logout_page, methods=["GET"], name="logout"),
    Route("/logout", logout_submit, methods=["POST"]),
]

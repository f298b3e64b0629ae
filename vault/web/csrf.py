"""CSRF defence for every state-changing POST: it must come from our own origin AND carry the form's token.

Signed in, the form token is the session's own, compared in constant time. Forms shown before sign-in (sign-in,
language) carry `<unix time>.<HMAC-SHA256(key, pre-session cookie, time)>` instead: bound to a random HttpOnly
cookie of this browser and valid for two hours, so another site can neither read nor forge one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request

from vault import clock
from vault.crypto.services import WEB_FORM_CSRF
from vault.web.errors import CsrfRejected
from vault.web.i18n import N_
from vault.web.sessions import (
    SignedIn,
    current_user,
    pre_session_cookie_name,
    require_user,
    set_cookie,
    vault_of,
)
from vault.wiring import Vault

FORM_FIELD = "csrf_token"
FORM_KEY_PURPOSE = WEB_FORM_CSRF
PRE_TOKEN_MAX_AGE = timedelta(hours=2)
CLOCK_SKEW = timedelta(minutes=1)
FOREIGN_ORIGIN = N_("This form was refused because it was not sent from a page of this site.")
BAD_TOKEN = N_("This form has expired or was not sent from this site. Go back, reload the page and try again.")
_DEFAULT_PORTS = {"http": 80, "https": 443}

log = logging.getLogger("vault.web.csrf")


def origin_of(url: str) -> str | None:
    """scheme://host[:port] of an absolute http(s) URL, lower-cased, default port left out; None if it has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != _DEFAULT_PORTS[scheme] else "")


def origin_problem(request: Request, expected: str) -> str | None:
    """Why this request does not come from `expected`, or None when it does (Origin, else Referer)."""
    origins = request.headers.getlist("origin")
    if len(origins) > 1:
        return "several Origin headers"
    if origins:
        if origins[0] == "null":
            # Our Referrer-Policy (no-referrer) makes browsers send "Origin: null" on the site's own form posts.
            # Sec-Fetch-Site is set only by the browser, never by a page, so "same-origin" there vouches instead.
            if request.headers.get("sec-fetch-site") == "same-origin":
                return None
            return "Origin null without Sec-Fetch-Site: same-origin"
        return None if origin_of(origins[0]) == expected else "foreign Origin"
    referer = request.headers.get("referer")
    if referer is None:
        return "neither Origin nor Referer"
    return None if origin_of(referer) == expected else "foreign Referer"


def _same(submitted: object, expected: str) -> bool:
    return isinstance(submitted, str) and hmac.compare_digest(submitted.encode(), expected.encode())


def _pre_mac(key: bytes, pre: str, issued: int) -> str:
    mac = hmac.new(key, f"pre-session-form\x00{pre}\x00{issued}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def make_pre_token(key: bytes, pre: str, now: datetime) -> str:
    issued = int(now.timestamp())
    return f"{issued}.{_pre_mac(key, pre, issued)}"


def pre_token_valid(key: bytes, pre: str, token: str, now: datetime) -> bool:
    """Whether `token` was made by make_pre_token for this cookie value less than two hours ago."""
    issued_text, _, mac = token.partition(".")
    if not (issued_text.isascii() and issued_text.isdigit() and len(issued_text) <= 12):
        return False
    issued = int(issued_text)
    age = now.timestamp() - issued
    if not -CLOCK_SKEW.total_seconds() <= age <= PRE_TOKEN_MAX_AGE.total_seconds():
        return False
    return hmac.compare_digest(mac.encode(), _pre_mac(key, pre, issued).encode())


def _form_key(vault: Vault) -> bytes:
    with vault.db.session() as db:
        return vault.keys.system_secret(db, FORM_KEY_PURPOSE)[1]


def _plausible_pre(value: str | None) -> bool:
    return value is not None and 32 <= len(value) <= 64 and value.isascii()


async def csrf_token(request: Request) -> str:
    """The token this response's forms must carry in a hidden `csrf_token` field (templates get it as csrf_token).

    The session's token when someone is signed in; otherwise a pre-session token, setting its cookie if needed.
    """
    user = await current_user(request)
    if user is not None:
        return user.csrf_token
    cached = getattr(request.state, "vault_pre_token", None)
    if isinstance(cached, str):
        return cached
    vault = vault_of(request)
    name = pre_session_cookie_name(vault)
    pre = request.cookies.get(name)
    if not _plausible_pre(pre):
        pre = secrets.token_urlsafe(32)
        set_cookie(request, name, pre)
    assert pre is not None
    token = make_pre_token(await run_in_threadpool(_form_key, vault), pre, clock.utcnow())
    request.state.vault_pre_token = token
    return token


def field(form: FormData, name: str, limit: int) -> str:
    """A text field of a parsed form, cut to `limit` characters; "" if absent or a file."""
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


async def _form(request: Request) -> FormData:
    # parsed once with these limits; the handler's own `await request.form()` gets the same, cached, result
    return await request.form(max_files=0, max_fields=50, max_part_size=64 * 1024)


def _check_origin(request: Request) -> None:
    vault = vault_of(request)
    problem = origin_problem(request, origin_of(vault.settings.public_url) or "")
    if problem is not None:
        log.warning("refused %s %s: %s", request.method, request.url.path, problem)
        raise CsrfRejected(FOREIGN_ORIGIN, problem)


def _reject_token(request: Request, reason: str) -> CsrfRejected:
    log.warning("refused %s %s: %s", request.method, request.url.path, reason)
    return CsrfRejected(BAD_TOKEN, reason)


async def require_post(request: Request) -> SignedIn:
    """Guard for a signed-in person's state-changing POST; call it first in the handler, use its result.

    Checks, in this order: the Origin (else Referer) is VAULT_PUBLIC_URL's origin, someone is signed in, and the
    form's `csrf_token` is their session's. Raises CsrfRejected (answered 403) or LoginRequired (a redirect to
    the sign-in page). Reads the form (at most 50 fields of 64 KiB, no files); `await request.form()` afterwards
    returns it again.
    """
    _check_origin(request)
    user = await require_user(request)
    form = await _form(request)
    if not _same(form.get(FORM_FIELD), user.csrf_token):
        raise _reject_token(request, "form token missing or not the session's")
    return user


async def check_form_post(request: Request) -> SignedIn | None:
    """Guard for a POST from a form anyone may see (sign-in, language): the signed-in person, or None.

    Same origin check as require_post; the token may be the session's or a valid pre-session token.
    """
    _check_origin(request)
    user = await current_user(request)
    submitted = (await _form(request)).get(FORM_FIELD)
    if user is not None and _same(submitted, user.csrf_token):
        return user
    vault = vault_of(request)
    pre = request.cookies.get(pre_session_cookie_name(vault))
    if isinstance(submitted, str) and pre and _plausible_pre(pre):
        key = await run_in_threadpool(_form_key, vault)
        if pre_token_valid(key, pre, submitted, clock.utcnow()):
            return user
    raise _reject_token(request, "pre-session form token missing, expired or not bound to this browser")

"""The web pages assembled for vault.web.app: routes, middleware, error pages and the language switch."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from vault.config import Settings
from vault.web import auth, citizen, console, home, i18n, sessions
from vault.web.csrf import check_form_post, field
from vault.web.errors import CsrfRejected, Forbidden, LoginRequired
from vault.web.failures import ErrorBoundary, correlation_id, internal_error_response, log_failure
from vault.web.i18n import N_
from vault.web.rendering import redirect, render
from vault.web.security import RefuseTokensInUrl, SecurityHeadersMiddleware, security_headers
from vault.web.sessions import CookieMiddleware, vault_of

NOT_FOUND = N_("There is no page at this address.")


async def switch_language(request: Request) -> Response:
    """POST /lang, fields `lang` (zh or en) and `next`: remembered in the session and in a `lang` cookie."""
    user = await check_form_post(request)
    form = await request.form()
    lang = i18n.language(field(form, "lang", 8))
    if lang is not None:
        sessions.set_cookie(request, sessions.LANG_COOKIE, lang, max_age=sessions.LANG_COOKIE_MAX_AGE)
        if user is not None:
            vault = vault_of(request)

            def run() -> None:
                with vault.db.session() as db:
                    sessions.set_lang(db, user, lang)

            await run_in_threadpool(run)
    return redirect(auth.safe_next(form.get("next")) or "/")


async def login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return redirect(auth.login_url(exc.next_path))


async def refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CsrfRejected | Forbidden)
    return await render(request, "error.html", {"message": exc.message}, status_code=403)


async def not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return await render(request, "error.html", {"message": NOT_FOUND}, status_code=404)


async def server_error(request: Request, exc: Exception) -> Response:
    # reached only when ErrorBoundary itself could not answer: outside every middleware, so it carries the
    # security headers itself, and touches nothing that might be what failed (database, templates)
    error_id = correlation_id()
    log_failure(request.scope, error_id, exc)
    response = internal_error_response(request.scope, error_id)
    nonce = getattr(request.state, "csp_nonce", "") or "none"
    response.headers.update(
        security_headers(nonce, https=request.app.state.vault.settings.public_url.startswith("https://"))
    )
    return response


routes: list[BaseRoute] = [
    *auth.routes,
    *home.routes,
    *citizen.routes,
    *console.routes,
    Route("/lang", switch_language, methods=["POST"], name="language"),
    Mount("/static", StaticFiles(directory=i18n.WEB_DIR / "static"), name="static"),
]

exception_handlers = {
    LoginRequired: login_required,
    CsrfRejected: refused,
    Forbidden: refused,
    404: not_found,
    500: server_error,
}


def middleware(settings: Settings) -> list[Middleware]:
    """Outermost first: security headers (and the CSP nonce), the error boundary, then cookies handlers queued."""
    https = settings.public_url.startswith("https://")
    return [
        Middleware(SecurityHeadersMiddleware, https=https),
        Middleware(ErrorBoundary),
        Middleware(RefuseTokensInUrl),
        Middleware(CookieMiddleware),
    ]

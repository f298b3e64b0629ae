"""Rendering a page: the visitor's language, the CSRF token and the CSP nonce handed to every template."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from vault import clock
from vault.web import i18n
from vault.web.csrf import csrf_token
from vault.web.sessions import LANG_COOKIE, SignedIn, current_user
from vault.web.timefmt import Clockface


def current_lang(request: Request, user: SignedIn | None) -> str:
    """The signed-in person's language, else the `lang` cookie's, else Chinese."""
    if user is not None and i18n.language(user.lang):
        return user.lang
    return i18n.language(request.cookies.get(LANG_COOKIE)) or i18n.DEFAULT_LANGUAGE


def current_path(request: Request) -> str:
    """Where the language switch returns to: this page for a GET, the home page after a POST."""
    if request.method != "GET":
        return "/"
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def clockface(request: Request, lang: str) -> Clockface:
    return Clockface(lang, request.app.state.vault.settings.timezone, clock.utcnow())


async def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Render vault/web/templates/<template> in the visitor's language.

    Besides `context`, every template sees: user (SignedIn or None), lang, html_lang, languages, csrf_token (put it
    in a hidden `csrf_token` field of every POST form), csp_nonce (for any inline <script nonce> or <style nonce>),
    current_path, `clock` (a Clockface: times in VAULT_TIMEZONE, labelled), unread_notifications (signed-in
    people), and `_` / `ngettext` for text.
    """
    user = await current_user(request)
    lang = current_lang(request, user)
    values: dict[str, Any] = {
        "user": user,
        "lang": lang,
        "html_lang": i18n.HTML_LANG[lang],
        "html_langs": i18n.HTML_LANG,
        "languages": i18n.LANGUAGES,
        "csrf_token": await csrf_token(request),
        "csp_nonce": getattr(request.state, "csp_nonce", ""),
        "current_path": current_path(request),
        "clock": clockface(request, lang),
    }
    if user is not None and not user.is_staff:
        from vault.web.notifications_pages import unread_count  # the pages module renders through here too

        values["unread_notifications"] = await run_in_threadpool(unread_count, request.app.state.vault, user)
    values.update(context or {})
    html = i18n.environment(lang).get_template(template).render(values)
    return HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))


def redirect(url: str) -> RedirectResponse:
    """303 See Other: after a POST the browser follows with a GET."""
    return RedirectResponse(url, status_code=303)

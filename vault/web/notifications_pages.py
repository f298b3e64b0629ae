"""The notification centre (/notifications), its settings, and the unread count the page header shows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vault.notifications.errors import BadPreference
from vault.notifications.models import Kind
from vault.notifications.quiet import format_hhmm, parse_hhmm
from vault.notifications.services import Preferences
from vault.web.csrf import field, require_post
from vault.web.dataspace import Space, space_of
from vault.web.errors import Forbidden
from vault.web.i18n import N_
from vault.web.rendering import current_lang, redirect, render
from vault.web.sessions import SignedIn, require_user, vault_of
from vault.wiring import Vault

KIND_LABELS = {
    Kind.REQUEST.value: N_("New requests, counter requests among them"),
    Kind.READ.value: N_("Reads of my data"),
    Kind.MANDATE_READ.value: N_("Reads under a law, once they may be shown"),
    Kind.GRANT_EXPIRING.value: N_("Consents about to end"),
    Kind.REPRESENTATIVE.value: N_("Changes of who may act for my company"),
}
CHANNEL_LABELS = {"email": N_("E-mail"), "webhook": N_("Webhook (signed HTTP POST)")}
PROBLEMS = {
    "email": N_("The e-mail address is not usable: give one like name@example.org, or untick e-mail."),
    "webhook": N_("The webhook address is not usable: it must be an https address on the internet."),
    "quiet": N_("Quiet hours need both a start and an end, as HH:MM."),
    "channels": N_("Choose only among the channels shown."),
    "lang": N_("Choose Chinese or English for messages."),
}
SAVED = N_("Your notification settings are saved.")
TIME_FORMAT = "%Y-%m-%d %H:%M"


@dataclass(frozen=True)
class NoticeView:
    id: uuid.UUID
    kind: str
    subject: str
    text: str
    link: str
    when: str  # local time with its offset, e.g. 2026-11-30 19:03 (UTC+08:00)
    unread: bool


def local_time(vault: Vault, at: datetime) -> str:
    local = at.astimezone(vault.notifications.config.timezone)
    offset = local.strftime("%z")
    return f"{local.strftime(TIME_FORMAT)} (UTC{offset[:3]}:{offset[3:]})"


def unread_count(vault: Vault, user: SignedIn) -> int:
    """The header's badge: unread notifications of the data space the person is in; 0 for staff."""
    if user.is_staff or user.owner_id is None:
        return 0
    with vault.db.session() as db:
        try:
            space = space_of(vault, db, user)
        except Forbidden:
            return 0
        return vault.notifications.unread(db, space.owner_id)


async def notifications(request: Request) -> Response:
    """GET /notifications: the data space's notifications, newest first, unread ones marked."""
    user = await require_user(request)
    vault, lang = vault_of(request), current_lang(request, user)

    def load() -> tuple[Space, list[NoticeView]]:
        with vault.db.session() as db:
            space = space_of(vault, db, user)
            views = []
            for note in vault.notifications.visible(db, space.owner_id):
                message = vault.outbox.renderer.render(db, note, lang)
                link = message.link.removeprefix(vault.settings.public_url)
                when = local_time(vault, note.visible_at)
                views.append(
                    NoticeView(note.id, note.kind, message.subject, message.text, link, when, note.read_at is None)
                )
            return space, views

    space, views = await run_in_threadpool(load)
    unread = sum(v.unread for v in views)
    return await render(request, "notifications.html", {"space": space, "notices": views, "unread_here": unread})


async def mark_read(request: Request) -> Response:
    """POST /notifications/read: every notification shown is marked read."""
    user = await require_post(request)
    vault = vault_of(request)

    def run() -> None:
        with vault.db.session() as db:
            vault.notifications.mark_read(db, space_of(vault, db, user).owner_id)

    await run_in_threadpool(run)
    return redirect("/notifications")


def _settings_context(vault: Vault, prefs: Preferences) -> dict[str, object]:
    return {
        "prefs": prefs,
        "quiet_start": format_hhmm(prefs.quiet_start),
        "quiet_end": format_hhmm(prefs.quiet_end),
        "kinds": KIND_LABELS,
        "channels": {c: CHANNEL_LABELS[c] for c in vault.notifications.offered_channels()},
        "timezone": str(vault.notifications.config.timezone),
        "operator_webhook": bool(vault.notifications.config.webhook_url),
    }


async def settings_page(request: Request) -> Response:
    """GET /notifications/settings: channels, what to be told of, and quiet hours."""
    user = await require_user(request)
    vault = vault_of(request)

    def load() -> tuple[Space, Preferences]:
        with vault.db.session() as db:
            space = space_of(vault, db, user)
            return space, vault.notifications.preferences(db, space.owner_id)

    space, prefs = await run_in_threadpool(load)
    context = {"space": space, **_settings_context(vault, prefs), "saved": request.query_params.get("saved") == "1"}
    return await render(request, "notification_settings.html", context)


def _parse(form: FormData, lang: str) -> Preferences:
    def text(name: str, limit: int) -> str | None:
        return (field(form, name, limit) or "").strip() or None

    quiet: list[int | None] = []
    for name in ("quiet_start", "quiet_end"):
        raw = text(name, 5)
        try:
            quiet.append(parse_hhmm(raw) if raw else None)
        except ValueError:
            raise BadPreference("quiet", "quiet hours are HH:MM") from None
    return Preferences(
        email=text("email", 254),
        webhook=text("webhook", 500),
        channels=frozenset(v for v in form.getlist("channel") if isinstance(v, str)),
        kinds=frozenset(v for v in form.getlist("kind") if isinstance(v, str)),
        quiet_start=quiet[0],
        quiet_end=quiet[1],
        lang=text("message_lang", 8) or lang,
    )


async def save_settings(request: Request) -> Response:
    """POST /notifications/settings: saved, or the form again with a 400 naming the setting at fault."""
    user = await require_post(request)
    vault, lang = vault_of(request), current_lang(request, user)
    form = await request.form()
    prefs: Preferences | None = None
    problem: str | None = None
    try:
        prefs = _parse(form, lang)
    except BadPreference as exc:
        problem = exc.field

    def run() -> tuple[Space, str | None]:
        with vault.db.session() as db:
            space = space_of(vault, db, user)
            if prefs is not None:
                try:
                    vault.notifications.save_preferences(db, space.owner_id, prefs)
                except BadPreference as exc:
                    return space, exc.field
            return space, problem

    space, problem = await run_in_threadpool(run)
    if problem is None:
        return redirect("/notifications/settings?saved=1")
    shown = prefs or Preferences(None, None, frozenset(), frozenset(), None, None, lang)
    context = {"space": space, **_settings_context(vault, shown), "saved": False, "problem": PROBLEMS[problem]}
    return await render(request, "notification_settings.html", context, status_code=400)


routes = [
    Route("/notifications", notifications, methods=["GET"]),
    Route("/notifications/read", mark_read, methods=["POST"]),
    Route("/notifications/settings", settings_page, methods=["GET"]),
    Route("/notifications/settings", save_settings, methods=["POST"]),
]

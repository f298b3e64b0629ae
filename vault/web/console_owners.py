"""The console's drill-down: look an owner up by identifier (the lookup is an access event, with its reason), and
see one owner's or one grant's grants, history and access events, from the flag that raised the question.

Nothing here decrypts: staff see the owner's pseudonymous id and kind, the grants and the events, never a name.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vault import clock
from vault.audit.events import Action, Event
from vault.audit.models import AuditEvent
from vault.consent.models import Grant, GrantEvent
from vault.owners.errors import InvalidIdentifier
from vault.owners.models import Owner, OwnerKind
from vault.web.console_grants import (
    FLAG_EXPLANATIONS,
    FLAG_LABELS,
    Flag,
    access_volumes,
    effective_state,
    grant_flags,
    local_day,
    require_staff,
    require_staff_post,
    staff_actor,
)
from vault.web.csrf import field
from vault.web.dataspace import Space
from vault.web.errors import Forbidden
from vault.web.explain import Explanation, explain
from vault.web.grants_pages import GrantView, grant_view
from vault.web.i18n import N_
from vault.web.rendering import current_lang, redirect, render
from vault.web.sessions import vault_of
from vault.web.usage import Describer, EventRow
from vault.wiring import Vault

EVENTS_SHOWN = 50
EVENTS_SCANNED = 2000  # a grant's events are found among the owner's newest events
NO_SUCH_OWNER = N_("No owner has this identifier.")
NO_SUCH_GRANT = N_("There is no such grant.")
NOT_AN_IDENTIFIER = N_("This is neither a valid resident ID number nor a valid unified social credit code.")
NEED_LOOKUP_REASON = N_("Give a reason for looking this owner up: it is written to the access log.")


@dataclass(frozen=True)
class GrantLine:
    view: GrantView
    flags: dict[Flag, dict[str, str]]
    effective: str


@dataclass(frozen=True)
class HistoryLine:
    at: datetime
    from_state: str | None
    to_state: str
    by: str  # msgid or agency name
    by_msgid: bool
    why: Explanation


def _describer(vault: Vault, db: Session, owner_id: uuid.UUID, lang: str) -> Describer:
    return Describer(vault, db, Space(owner_id, owner_id, for_enterprise=False), lang, staff=True)


def _grant_lines(vault: Vault, db: Session, grants: list[Grant], lang: str) -> list[GrantLine]:
    now = clock.utcnow()
    volumes = access_volumes(db, local_day(now))
    lines = []
    for grant in grants:
        item = vault.policy.catalogue.items.get(grant.service_item)
        lines.append(
            GrantLine(
                grant_view(vault, db, grant, lang), grant_flags(grant, item, now, volumes), effective_state(grant, now)
            )
        )
    return lines


async def lookup_form(request: Request) -> Response:
    await require_staff(request)
    return await render(request, "console_lookup.html", {"problem": None})


async def lookup(request: Request) -> Response:
    """POST /console/owners/lookup, fields `identifier` and `reason`: recorded, then the owner's page."""
    user = await require_staff_post(request)
    form = await request.form()
    identifier = field(form, "identifier", 40).strip().upper()
    reason = field(form, "reason", 500).strip()
    if not reason:
        return await render(request, "console_lookup.html", {"problem": NEED_LOOKUP_REASON}, status_code=400)
    vault = vault_of(request)

    def run() -> uuid.UUID | None:
        with vault.db.session() as db:
            owner = _find(vault, db, identifier)
            found = owner is not None and owner.erased_at is None
            vault.audit.append(
                db,
                Event(
                    Action.OWNER_LOOKED_UP,
                    staff_actor(user),
                    owner_id=owner.id if owner is not None and found else None,
                    decision="allow" if found else "deny",
                    reason=reason,
                ),
            )
            return owner.id if owner is not None and found else None

    try:
        owner_id = await run_in_threadpool(run)
    except InvalidIdentifier:
        return await render(request, "console_lookup.html", {"problem": NOT_AN_IDENTIFIER}, status_code=400)
    if owner_id is None:
        return await render(request, "console_lookup.html", {"problem": NO_SUCH_OWNER}, status_code=404)
    return redirect(f"/console/owners/{owner_id}")


def _find(vault: Vault, db: Session, identifier: str) -> Owner | None:
    """The owner with this resident ID number or credit code; raises InvalidIdentifier if it is neither."""
    for kind in (OwnerKind.PERSON, OwnerKind.ENTERPRISE):
        try:
            return vault.owners.find(db, kind, identifier)
        except InvalidIdentifier as error:
            last = error
    raise last


def _uuid(request: Request, name: str, message: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params[name])
    except ValueError:
        raise Forbidden(message) from None


async def owner_page(request: Request) -> Response:
    """GET /console/owners/{id}: the owner's grants (with flags) and newest access events."""
    user = await require_staff(request)
    vault, lang, owner_id = vault_of(request), current_lang(request, user), _uuid(request, "owner_id", NO_SUCH_OWNER)

    def load() -> tuple[str, list[GrantLine], list[EventRow]]:
        with vault.db.session() as db:
            owner = db.get(Owner, owner_id)
            if owner is None:
                raise Forbidden(NO_SUCH_OWNER)
            grants = list(
                db.scalars(select(Grant).where(Grant.owner_id == owner_id).order_by(col(Grant.created_at).desc()))
            )
            events = db.scalars(
                select(AuditEvent)
                .where(AuditEvent.owner_id == owner_id)
                .order_by(col(AuditEvent.seq).desc())
                .limit(EVENTS_SHOWN)
            ).all()
            describe = _describer(vault, db, owner_id, lang)
            return owner.kind, _grant_lines(vault, db, grants, lang), [describe.row(e) for e in events]

    kind, grants, events = await run_in_threadpool(load)
    context = {"owner_id": owner_id, "kind": kind, "grants": grants, "events": events, **_flag_help()}
    return await render(request, "console_owner.html", context)


def _flag_help() -> dict[str, object]:
    return {"flag_labels": FLAG_LABELS, "flag_explanations": FLAG_EXPLANATIONS}


async def grant_page(request: Request) -> Response:
    """GET /console/grants/{id}: one grant, why it is flagged, its history and the access events under it."""
    user = await require_staff(request)
    vault, lang, grant_id = vault_of(request), current_lang(request, user), _uuid(request, "grant_id", NO_SUCH_GRANT)

    def load() -> tuple[GrantLine, list[HistoryLine], list[EventRow]]:
        with vault.db.session() as db:
            grant = db.get(Grant, grant_id)
            if grant is None:
                raise Forbidden(NO_SUCH_GRANT)
            [line] = _grant_lines(vault, db, [grant], lang)
            describe = _describer(vault, db, grant.owner_id, lang)
            history = [
                HistoryLine(e.at, e.from_state, e.to_state, *_by(describe, e.actor), _why(e))
                for e in db.scalars(
                    select(GrantEvent).where(GrantEvent.grant_id == grant_id).order_by(col(GrantEvent.at))
                )
            ]
            scanned = db.scalars(
                select(AuditEvent)
                .where(AuditEvent.owner_id == grant.owner_id)
                .order_by(col(AuditEvent.seq).desc())
                .limit(EVENTS_SCANNED)
            ).all()
            mine = [e for e in scanned if json.loads(e.entry).get("grant") == str(grant_id)][:EVENTS_SHOWN]
            return line, history, [describe.row(e) for e in mine]

    line, history, events = await run_in_threadpool(load)
    context = {"grant": line, "history": history, "events": events, **_flag_help()}
    return await render(request, "console_grant.html", context)


def _why(event: GrantEvent) -> Explanation:
    return explain(event.reason, None, typed_by_person=event.actor.startswith(("staff:", "operator:")))


def _by(describe: Describer, actor: str) -> tuple[str, bool]:
    who = describe.who(actor)
    return who.value, who.msgid


routes = [
    Route("/console/owners", lookup_form, methods=["GET"]),
    Route("/console/owners/lookup", lookup, methods=["POST"]),
    Route("/console/owners/{owner_id}", owner_page, methods=["GET"]),
    Route("/console/grants/{grant_id}", grant_page, methods=["GET"]),
]

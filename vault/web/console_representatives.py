"""Console: who may act for an enterprise, found by its credit code; staff set the legal representative and end
any link. Looking is a staff view of the enterprise's data and is recorded; so is every change."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vault.audit.events import Action, Event
from vault.owners.errors import InvalidIdentifier, LinkAlreadyEnded, RepresentativeNotFound
from vault.owners.identifiers import mask_identifier
from vault.owners.models import OwnerKind
from vault.web.console_grants import require_staff, require_staff_post, staff_actor
from vault.web.csrf import field
from vault.web.i18n import N_
from vault.web.rendering import redirect, render
from vault.web.sessions import today, vault_of
from vault.wiring import Vault

NO_ENTERPRISE = N_("No enterprise in the vault has this unified social credit code.")
NO_PERSON = N_("No person in the vault has this resident ID number.")
NO_LINK = N_("There is no such representative link of this enterprise.")
ENDED_ALREADY = N_("This link had already ended.")
PROBLEMS = [NO_ENTERPRISE, NO_PERSON, NO_LINK, ENDED_ALREADY]


@dataclass(frozen=True)
class LinkRow:
    id: uuid.UUID
    person: str  # masked identifier only
    role: str
    valid_from: date
    valid_until: date | None
    state: str


def _find_enterprise(vault: Vault, db: Session, code: str) -> uuid.UUID | None:
    try:
        owner = vault.owners.find(db, OwnerKind.ENTERPRISE, code)
    except InvalidIdentifier:
        return None
    return None if owner is None or owner.erased_at is not None else owner.id


def links_view(vault: Vault, code: str, actor: str) -> tuple[uuid.UUID | None, list[LinkRow]]:
    """The enterprise's links, people shown by masked identifier; the look is recorded for the enterprise."""
    with vault.db.session() as db:
        enterprise = _find_enterprise(vault, db, code)
        if enterprise is None:
            return None, []
        rows = []
        for link in vault.owners.links(db, enterprise):
            try:
                person = mask_identifier(vault.owners.details(db, vault.owners.get(db, link.person_id)).identifier)
            except Exception:
                person = "(erased)"
            state = "ended" if link.ended_at else "in_force" if link.in_force(today()) else "not_in_force"
            rows.append(LinkRow(link.id, person, link.role, link.valid_from, link.valid_until, state))
        vault.audit.append(
            db, Event(Action.STAFF_VIEWED, actor, owner_id=enterprise, detail={"page": "representatives"})
        )
        return enterprise, rows


def _back(code: str, **extra: str) -> Response:
    return redirect("/console/representatives?" + urlencode({"enterprise": code, **extra}))


async def page(request: Request) -> Response:
    """GET /console/representatives?enterprise=<credit code>."""
    user = await require_staff(request)
    code = request.query_params.get("enterprise", "").strip()[:18]
    enterprise: uuid.UUID | None = None
    rows: list[LinkRow] = []
    if code:
        enterprise, rows = await run_in_threadpool(links_view, vault_of(request), code, staff_actor(user))
    problem = request.query_params.get("problem", "")
    context = {
        "code": code,
        "found": enterprise is not None,
        "links": rows,
        "problem": PROBLEMS[int(problem)] if problem.isdigit() and int(problem) < len(PROBLEMS) else None,
        "done": request.query_params.get("done") == "1",
    }
    return await render(
        request, "console_representatives.html", context, status_code=404 if code and not enterprise else 200
    )


async def set_legal(request: Request) -> Response:
    """POST /console/representatives/set-legal: enterprise (credit code), person (resident ID number)."""
    user = await require_staff_post(request)
    form = await request.form()
    code, person_id = field(form, "enterprise", 18).strip(), field(form, "person", 18).strip()
    vault = vault_of(request)

    def run() -> str | None:
        with vault.db.session() as db:
            enterprise = _find_enterprise(vault, db, code)
            if enterprise is None:
                return NO_ENTERPRISE
            try:
                person = vault.owners.find(db, OwnerKind.PERSON, person_id)
            except InvalidIdentifier:
                person = None
            if person is None or person.erased_at is not None:
                return NO_PERSON
            vault.owners.set_legal_representative(
                db, enterprise_id=enterprise, person_id=person.id, valid_from=today(), actor=staff_actor(user)
            )
        return None

    problem = await run_in_threadpool(run)
    return _back(code, **({"problem": str(PROBLEMS.index(problem))} if problem else {"done": "1"}))


async def end(request: Request) -> Response:
    """POST /console/representatives/{link}/end, enterprise: the link ends now."""
    user = await require_staff_post(request)
    code = field(await request.form(), "enterprise", 18).strip()
    vault = vault_of(request)

    def run() -> str | None:
        try:
            link_id = uuid.UUID(request.path_params["link_id"])
            with vault.db.session() as db:
                enterprise = _find_enterprise(vault, db, code)
                if enterprise is None:
                    return NO_ENTERPRISE
                vault.owners.end_representative(db, link_id, actor=staff_actor(user), enterprise_id=enterprise)
        except (ValueError, RepresentativeNotFound):
            return NO_LINK
        except LinkAlreadyEnded:
            return ENDED_ALREADY
        return None

    problem = await run_in_threadpool(run)
    return _back(code, **({"problem": str(PROBLEMS.index(problem))} if problem else {"done": "1"}))


routes = [
    Route("/console/representatives", page, methods=["GET"], name="console_representatives"),
    Route("/console/representatives/set-legal", set_legal, methods=["POST"]),
    Route("/console/representatives/{link_id}/end", end, methods=["POST"]),
]

"""Who may act for an enterprise, managed by its legal representative: appoint an authorised agent, limit them
in time, end them. Every change is claimed by a guarded UPDATE (or an insert) and recorded for the company."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vault.owners.errors import InvalidIdentifier, LinkAlreadyEnded, RepresentativeError, RepresentativeNotFound
from vault.owners.models import OwnerKind, RepresentativeRole
from vault.web.csrf import field, require_post
from vault.web.dataspace import Space, space_of
from vault.web.errors import Forbidden
from vault.web.i18n import N_
from vault.web.rendering import redirect
from vault.web.sessions import SignedIn, today, vault_of
from vault.wiring import Vault

LEGAL_ONLY = N_("Only the enterprise's legal representative may appoint or end its authorised agents.")
NO_SUCH_LINK = N_("There is no such authorised agent of this enterprise.")
NO_SUCH_PERSON = N_("No person in the vault has this resident ID number.")
BAD_ID_NUMBER = N_("This is not a valid resident ID number.")
BAD_DATE = N_("Write the last day as yyyy-mm-dd, today or later.")
ALREADY_ENDED = N_("This authorisation had already ended.")
AGENTS = frozenset({RepresentativeRole.AUTHORISED_AGENT})


def legal_space(vault: Vault, user: SignedIn) -> Space:
    """The enterprise space of a person who is its legal representative today; Forbidden otherwise."""
    with vault.db.session() as db:
        space = space_of(vault, db, user)
        if not space.for_enterprise or not is_legal_representative(vault, db, space):
            raise Forbidden(LEGAL_ONLY)
        return space


def is_legal_representative(vault: Vault, db: Session, space: Space) -> bool:
    links = vault.owners.represented_by(db, space.person_id, today())
    return any(k.owner_id == space.owner_id and k.role == RepresentativeRole.LEGAL_REPRESENTATIVE for k in links)


def _until(text: str) -> date | str | None:
    """The date given, None when blank, or the problem's msgid."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return BAD_DATE
    return day if day >= today() else BAD_DATE


def _done(problem: str | None) -> Response:
    return redirect("/representatives" + (f"?problem={PROBLEMS.index(problem)}" if problem else "?done=1"))


PROBLEMS = [LEGAL_ONLY, NO_SUCH_LINK, NO_SUCH_PERSON, BAD_ID_NUMBER, BAD_DATE, ALREADY_ENDED]


async def appoint(request: Request) -> Response:
    """POST /representatives/appoint: person (resident ID number), until (optional last day)."""
    user = await require_post(request)
    form = await request.form()
    vault = vault_of(request)
    space = await run_in_threadpool(legal_space, vault, user)
    until = _until(field(form, "until", 10).strip())
    if isinstance(until, str):
        return _done(until)
    identifier = field(form, "person", 18).strip()

    def run() -> str | None:
        with vault.db.session() as db:
            try:
                person = vault.owners.find(db, OwnerKind.PERSON, identifier)
            except InvalidIdentifier:
                return BAD_ID_NUMBER
            if person is None or person.erased_at is not None:
                return NO_SUCH_PERSON
            vault.owners.add_representative(
                db,
                enterprise_id=space.owner_id,
                person_id=person.id,
                role=RepresentativeRole.AUTHORISED_AGENT,
                valid_from=today(),
                valid_until=until,
                actor=space.actor,
            )
        return None

    return _done(await run_in_threadpool(run))


def _link_id(request: Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params["link_id"])
    except ValueError:
        raise Forbidden(NO_SUCH_LINK) from None


async def end(request: Request) -> Response:
    """POST /representatives/{link}/end: an authorised agent's link ends now."""
    user = await require_post(request)
    vault, link_id = vault_of(request), _link_id(request)
    space = await run_in_threadpool(legal_space, vault, user)

    def run() -> str | None:
        try:
            with vault.db.session() as db:
                vault.owners.end_representative(
                    db, link_id, actor=space.actor, enterprise_id=space.owner_id, roles=AGENTS
                )
        except RepresentativeNotFound:
            return NO_SUCH_LINK
        except LinkAlreadyEnded:
            return ALREADY_ENDED
        return None

    return _done(await run_in_threadpool(run))


async def limit(request: Request) -> Response:
    """POST /representatives/{link}/limit, until: the last day an authorised agent may act."""
    user = await require_post(request)
    form = await request.form()
    vault, link_id = vault_of(request), _link_id(request)
    space = await run_in_threadpool(legal_space, vault, user)
    until = _until(field(form, "until", 10).strip())
    if not isinstance(until, date):
        return _done(until if isinstance(until, str) else BAD_DATE)

    def run() -> str | None:
        try:
            with vault.db.session() as db:
                vault.owners.limit_representative(
                    db, link_id, until, actor=space.actor, enterprise_id=space.owner_id, roles=AGENTS
                )
        except RepresentativeNotFound:
            return NO_SUCH_LINK
        except LinkAlreadyEnded:
            return ALREADY_ENDED
        except RepresentativeError:
            return BAD_DATE
        return None

    return _done(await run_in_threadpool(run))


routes = [
    Route("/representatives/appoint", appoint, methods=["POST"]),
    Route("/representatives/{link_id}/end", end, methods=["POST"]),
    Route("/representatives/{link_id}/limit", limit, methods=["POST"]),
]

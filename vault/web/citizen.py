"""The citizen's pages beyond consent: licences, who used the data, and who may act for an enterprise."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from vault.owners.models import Representative
from vault.web.dataspace import Space, owner_name, space_of
from vault.web.errors import Forbidden
from vault.web.i18n import N_
from vault.web.licences_pages import routes as licence_routes
from vault.web.rendering import render
from vault.web.sessions import require_user, today, vault_of
from vault.web.usage import routes as usage_routes

ENTERPRISES_ONLY = N_("Switch to an enterprise you represent to see who may act for it.")


@dataclass(frozen=True)
class RepresentativeView:
    name: str | None  # None once the person was erased
    role: str
    valid_from: date
    valid_until: date | None
    state: str  # in_force, ended or not_yet
    is_you: bool


def _state(link: Representative, on: date) -> str:
    if link.in_force(on):
        return "in_force"
    return "not_yet" if on < link.valid_from else "ended"


async def representatives(request: Request) -> Response:
    """GET /representatives: who may act for the enterprise acted for; only its current representatives see it."""
    user = await require_user(request)
    vault = vault_of(request)

    def load() -> tuple[Space, list[RepresentativeView]]:
        with vault.db.session() as db:
            space = space_of(vault, db, user)
            if not space.for_enterprise:
                raise Forbidden(ENTERPRISES_ONLY)
            links = db.scalars(
                select(Representative)
                .where(Representative.owner_id == space.owner_id)
                .order_by(col(Representative.valid_from), col(Representative.created_at))
            ).all()
            on = today()
            return space, [
                RepresentativeView(
                    name=owner_name(vault, db, link.person_id),
                    role=link.role,
                    valid_from=link.valid_from,
                    valid_until=link.valid_until,
                    state=_state(link, on),
                    is_you=link.person_id == space.person_id,
                )
                for link in links
            ]

    space, views = await run_in_threadpool(load)
    return await render(request, "representatives.html", {"space": space, "representatives": views})


routes: list[BaseRoute] = [
    *licence_routes,
    *usage_routes,
    Route("/representatives", representatives, methods=["GET"]),
]

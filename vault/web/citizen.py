"""The citizen's pages beyond consent: licences, who used the data, and who may act for an enterprise."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from vault.owners.models import Representative
from vault.web.dataspace import Space, owner_name, space_of
from vault.web.errors import Forbidden
from vault.web.export_pages import routes as export_routes
from vault.web.i18n import N_
from vault.web.licences_pages import routes as licence_routes
from vault.web.notifications_pages import routes as notification_routes
from vault.web.rendering import render
from vault.web.representatives import PROBLEMS, is_legal_representative
from vault.web.representatives import routes as representative_routes
from vault.web.sessions import require_user, today, vault_of
from vault.web.usage import routes as usage_routes
from vault.web.verify_pages import routes as verify_routes

ENTERPRISES_ONLY = N_("Switch to an enterprise you represent to see who may act for it.")


@dataclass(frozen=True)
class RepresentativeView:
    id: uuid.UUID
    name: str | None  # None once the person was erased
    role: str
    valid_from: date
    valid_until: date | None
    state: str  # in_force, ended or not_yet
    is_you: bool


def _state(link: Representative, on: date) -> str:
    if link.ended_at is not None:
        return "ended"
    if link.in_force(on):
        return "in_force"
    return "not_yet" if on < link.valid_from else "ended"


async def representatives(request: Request) -> Response:
    """GET /representatives: who may act for the enterprise acted for; only its current representatives see it."""
    user = await require_user(request)
    vault = vault_of(request)

    def load() -> tuple[Space, list[RepresentativeView], bool]:
        with vault.db.session() as db:
            space = space_of(vault, db, user)
            if not space.for_enterprise:
                raise Forbidden(ENTERPRISES_ONLY)
            links = vault.owners.links(db, space.owner_id)
            on = today()
            return (
                space,
                [
                    RepresentativeView(
                        id=link.id,
                        name=owner_name(vault, db, link.person_id),
                        role=link.role,
                        valid_from=link.valid_from,
                        valid_until=link.valid_until,
                        state=_state(link, on),
                        is_you=link.person_id == space.person_id,
                    )
                    for link in links
                ],
                is_legal_representative(vault, db, space),
            )

    space, views, manages = await run_in_threadpool(load)
    problem = request.query_params.get("problem", "")
    context = {
        "space": space,
        "representatives": views,
        "manages": manages,
        "problem": PROBLEMS[int(problem)] if problem.isdigit() and int(problem) < len(PROBLEMS) else None,
        "done": request.query_params.get("done") == "1",
    }
    return await render(request, "representatives.html", context)


routes: list[BaseRoute] = [
    *licence_routes,
    *usage_routes,
    *notification_routes,
    *verify_routes,
    *export_routes,
    Route("/representatives", representatives, methods=["GET"]),
    *representative_routes,
]

"""The signed-in home page: who you are, and the enterprises you may act for, with the switch between them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vault.crypto.errors import KeyDestroyed
from vault.owners.models import Owner
from vault.web import sessions
from vault.web.auth import safe_next
from vault.web.csrf import field, require_post
from vault.web.errors import Forbidden
from vault.web.i18n import N_
from vault.web.rendering import redirect, render
from vault.web.sessions import SignedIn, require_user, vault_of
from vault.wiring import Vault

NOT_A_REPRESENTATIVE = N_("You may not act for that enterprise.")


@dataclass(frozen=True)
class Enterprise:
    id: uuid.UUID
    name: str | None  # None once the enterprise was erased
    role: str


@dataclass(frozen=True)
class HomeView:
    name: str | None
    enterprises: list[Enterprise]

    @property
    def acting_for(self) -> dict[uuid.UUID, Enterprise]:
        return {e.id: e for e in self.enterprises}


def _name(vault: Vault, db: Session, owner: Owner) -> str | None:
    try:
        return vault.owners.details(db, owner).name
    except KeyDestroyed:
        return None


def home_view(vault: Vault, user: SignedIn) -> HomeView:
    if user.person_id is None:
        return HomeView(None, [])
    with vault.db.session() as db:
        name = _name(vault, db, vault.owners.get(db, user.person_id))
        enterprises: dict[uuid.UUID, Enterprise] = {}
        for link in vault.owners.represented_by(db, user.person_id, sessions.today()):
            if link.owner_id not in enterprises:
                enterprise = vault.owners.get(db, link.owner_id)
                enterprises[link.owner_id] = Enterprise(link.owner_id, _name(vault, db, enterprise), link.role)
        return HomeView(name, list(enterprises.values()))


async def home(request: Request) -> Response:
    user = await require_user(request)
    view = await run_in_threadpool(home_view, vault_of(request), user)
    return await render(request, "home.html", {"view": view})


async def switch_acting_for(request: Request) -> Response:
    """POST /acting-for, field `owner`: an enterprise id the person represents today, or empty for themself;
    optional `next`, a path on this site to go on to (the consent page that offered the switch)."""
    user = await require_post(request)
    form = await request.form()
    raw = field(form, "owner", 100).strip()
    next_path = safe_next(form.get("next")) or "/"
    try:
        enterprise_id = uuid.UUID(raw) if raw else None
    except ValueError:
        raise Forbidden(NOT_A_REPRESENTATIVE) from None
    vault = vault_of(request)

    def run() -> bool:
        with vault.db.session() as db:
            if enterprise_id is not None and (
                user.person_id is None
                or not vault.owners.may_act_for(db, user.person_id, enterprise_id, sessions.today())
            ):
                return False
            sessions.set_acting_for(db, user, enterprise_id)
            return True

    if not await run_in_threadpool(run):
        raise Forbidden(NOT_A_REPRESENTATIVE)
    return redirect(next_path)


routes = [
    Route("/", home, methods=["GET"], name="home"),
    Route("/acting-for", switch_acting_for, methods=["POST"], name="acting_for"),
]

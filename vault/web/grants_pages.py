"""The owner's grants: what each agency may read, revoking one (asked once), withdrawing every consent given to an
agency in two taps (PIPL art. 15: as easy as consenting), and the signed receipts.

Revoking is not undone: it ends every token from the grant in the same transaction, so the agency's access stops
at once; giving it back is a new request from the agency, which the page says.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vault.consent.errors import GrantNotFound, IllegalGrantTransition
from vault.consent.lifecycle import GrantState
from vault.consent.models import Grant
from vault.web.consent import NOT_YOURS, FieldView, QuestionView, _decider, field_views, question_views
from vault.web.csrf import field, require_post
from vault.web.dataspace import SpaceChoice, reachable_spaces
from vault.web.errors import Forbidden
from vault.web.rendering import current_lang, redirect, render
from vault.web.sessions import require_user, vault_of
from vault.wiring import Vault

OWNER_REVOKED = "revoked by owner"
OWNER_WITHDREW = "consent withdrawn by owner"
LIVE = (GrantState.ACTIVE.value, GrantState.PENDING.value)


@dataclass(frozen=True)
class GrantView:
    id: uuid.UUID
    client_id: str
    agency: str
    item: str
    purpose: str
    fields: list[FieldView]
    state: str
    valid_from: datetime
    valid_until: datetime
    uses_left: int | None
    use_limit: int | None
    last_used_at: datetime | None
    questions: list[QuestionView] = dataclasses.field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.state in LIVE


@dataclass(frozen=True)
class AgencyGroup:
    client_id: str
    agency: str
    grants: list[GrantView]

    @property
    def live(self) -> list[GrantView]:
        return [g for g in self.grants if g.live]


def grant_view(vault: Vault, db: Session, grant: Grant, lang: str) -> GrantView:
    item = vault.policy.catalogue.items.get(grant.service_item)
    return GrantView(
        id=grant.id,
        client_id=grant.client_id,
        agency=vault.agencies.display_name(db, grant.client_id, lang),
        item=(item.name_en if lang == "en" else item.name_zh) if item else grant.service_item,
        purpose=(item.purpose_en if lang == "en" else item.purpose_zh) if item else "",
        fields=field_views(vault, grant.fields, lang, item),
        state=grant.state,
        valid_from=grant.valid_from,
        valid_until=grant.valid_until,
        uses_left=None if grant.use_limit is None else max(grant.use_limit - grant.uses, 0),
        use_limit=grant.use_limit,
        last_used_at=grant.last_used_at,
        questions=question_views(vault, grant.questions or {}, lang),
    )


def _groups(views: list[GrantView]) -> list[AgencyGroup]:
    """Grants by agency; agencies with a live grant first, each group newest first (as the service returns)."""
    groups: dict[str, AgencyGroup] = {}
    for view in views:
        groups.setdefault(view.client_id, AgencyGroup(view.client_id, view.agency, [])).grants.append(view)
    return sorted(groups.values(), key=lambda g: (not g.live, g.agency))


async def grants(request: Request) -> Response:
    """GET /grants?done=approved|revoked|withdrawn&grant=&agency=: the grants, with what just happened on top."""
    user = await require_user(request)
    vault, lang = vault_of(request), current_lang(request, user)

    def load() -> tuple[SpaceChoice | None, list[AgencyGroup]]:
        with vault.db.session() as db:
            decider = _decider(vault, db, user)
            views = [grant_view(vault, db, g, lang) for g in vault.consent.grants_of(db, decider.owner_id)]
            return reachable_spaces(vault, db, decider.person_id).get(decider.owner_id), _groups(views)

    here, groups = await run_in_threadpool(load)
    done = request.query_params.get("done", "")
    by_id = {str(g.id): g for group in groups for g in group.grants}
    by_agency = {group.client_id: group for group in groups}
    context = {
        "acting_in": here,
        "groups": groups,
        "done": done if done in ("approved", "revoked", "withdrawn") else None,
        "done_grant": by_id.get(request.query_params.get("grant", "")),
        "done_agency": by_agency.get(request.query_params.get("agency", "")),
        "done_count": request.query_params.get("count", ""),
    }
    return await render(request, "grants.html", context)


def _grant_id(request: Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params["grant_id"])
    except ValueError:
        raise Forbidden(NOT_YOURS) from None


async def revoke(request: Request) -> Response:
    """POST /grants/{id}/revoke: the grant and every token from it end now (the consent service does it)."""
    user = await require_post(request)
    vault, grant_id = vault_of(request), _grant_id(request)

    def run() -> None:
        with vault.db.session() as db:
            decider = _decider(vault, db, user)
            vault.consent.revoke(db, grant_id, actor=decider.actor, owner_id=decider.owner_id, reason=OWNER_REVOKED)

    try:
        await run_in_threadpool(run)
    except (GrantNotFound, IllegalGrantTransition):
        raise Forbidden(NOT_YOURS) from None
    return redirect(f"/grants?done=revoked&grant={grant_id}#grant-{grant_id}")


async def withdraw_all(request: Request) -> Response:
    """POST /grants/withdraw, field `agency`: every live grant this data space gave that agency ends now."""
    user = await require_post(request)
    client_id = field(await request.form(), "agency", 100).strip()
    vault = vault_of(request)

    def run() -> int:
        with vault.db.session() as db:
            decider = _decider(vault, db, user)
            live = [
                g for g in vault.consent.grants_of(db, decider.owner_id) if g.client_id == client_id and g.state in LIVE
            ]
            ended = 0
            for grant in live:
                try:
                    vault.consent.revoke(
                        db, grant.id, actor=decider.actor, owner_id=decider.owner_id, reason=OWNER_WITHDREW
                    )
                except IllegalGrantTransition:
                    continue  # ended a moment ago (expired, used up, or revoked in another tab)
                ended += 1
            return ended

    count = await run_in_threadpool(run)
    query = urlencode({"done": "withdrawn", "agency": client_id, "count": count})
    return redirect(f"/grants?{query}" if count else "/grants")


async def receipt(request: Request) -> Response:
    user = await require_user(request)
    vault, grant_id = vault_of(request), _grant_id(request)

    def load() -> str:
        with vault.db.session() as db:
            decider = _decider(vault, db, user)
            return vault.consent.grant(db, grant_id, decider.owner_id).receipt

    try:
        token = await run_in_threadpool(load)
    except GrantNotFound:
        raise Forbidden(NOT_YOURS) from None
    headers = {"Content-Disposition": f'attachment; filename="consent-receipt-{grant_id}.jwt"'}
    return Response(token, media_type="application/jwt", headers=headers)


routes = [
    Route("/grants", grants, methods=["GET"]),
    Route("/grants/withdraw", withdraw_all, methods=["POST"]),
    Route("/grants/{grant_id}/revoke", revoke, methods=["POST"]),
    Route("/grants/{grant_id}/receipt", receipt, methods=["GET"]),
]

"""The owner's consent pages: a request to approve (narrowed) or deny, the backchannel inbox, grants to revoke."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vault.consent.errors import (
    GrantNotFound,
    IllegalGrantTransition,
    InvalidAuthorizationDetails,
    NotAuthorisedToConsent,
    RequestNotFound,
)
from vault.consent.models import ConsentRequest, Grant
from vault.consent.services import Decider
from vault.oauth.adapter import unit_of_work
from vault.policy.catalogue import ServiceUse
from vault.web.csrf import origin_of, require_post
from vault.web.errors import Forbidden
from vault.web.i18n import N_
from vault.web.rendering import redirect, render
from vault.web.security import content_security_policy
from vault.web.sessions import SignedIn, require_user, today, vault_of
from vault.wiring import Vault

NOT_YOURS = N_("This request is not for you, or you may not decide for this owner.")
GONE = N_("This request no longer waits for a decision.")
NO_FIELD = N_("Tick at least one field, or deny the request.")
STAFF_CANNOT = N_("Compliance staff cannot give consent.")


@dataclass(frozen=True)
class FieldView:
    key: str  # "<licence type>/<field>", the checkbox value
    label: str
    type_name: str
    sensitivity: str


@dataclass(frozen=True)
class RequestView:
    id: uuid.UUID
    kind: str
    agency: str
    item: str
    purpose: str
    legal_basis: str
    fields: list[FieldView]
    max_days: int
    once: bool
    binding_message: str | None
    expires_at: datetime
    redirect_origin: str | None


@dataclass(frozen=True)
class GrantView:
    id: uuid.UUID
    agency: str
    item: str
    purpose: str
    fields: list[FieldView]
    state: str
    valid_from: datetime
    valid_until: datetime
    uses_left: int | None
    use_limit: int | None


def _decider(vault: Vault, db: Session, user: SignedIn) -> Decider:
    """Who decides: the person, for the owner they act for; representation is checked again here, today."""
    if user.is_staff or user.person_id is None:
        raise Forbidden(STAFF_CANNOT)
    owner_id = user.owner_id
    assert owner_id is not None
    if owner_id != user.person_id and not vault.owners.may_act_for(db, user.person_id, owner_id, today()):
        raise Forbidden(NOT_YOURS)
    return Decider(user.person_id, owner_id)


def _fields(vault: Vault, fields: dict[str, list[str]], lang: str) -> list[FieldView]:
    views = []
    for type_code, names in sorted(fields.items()):
        licence_type = vault.catalogue.type(type_code)
        type_name = licence_type.name_en if lang == "en" else licence_type.name_zh
        for name in names:
            field = licence_type.field(name)
            label = field.label_en if lang == "en" else field.label_zh
            views.append(FieldView(f"{type_code}/{name}", label, type_name, field.sensitivity.value))
    return views


def _request_view(vault: Vault, db: Session, request: ConsentRequest, lang: str) -> RequestView:
    item = vault.policy.catalogue.item(request.service_item)
    return RequestView(
        id=request.id,
        kind=request.kind,
        agency=vault.agencies.display_name(db, request.client_id, lang),
        item=item.name_en if lang == "en" else item.name_zh,
        purpose=item.purpose_en if lang == "en" else item.purpose_zh,
        legal_basis=item.legal_basis,
        fields=_fields(vault, request.fields, lang),
        max_days=item.max_grant_days,
        once=item.use is ServiceUse.ONCE,
        binding_message=request.binding_message,
        expires_at=request.expires_at,
        redirect_origin=origin_of(request.oauth["redirect_uri"]) if request.oauth.get("redirect_uri") else None,
    )


def _grant_view(vault: Vault, db: Session, grant: Grant, lang: str) -> GrantView:
    item = vault.policy.catalogue.item(grant.service_item)
    return GrantView(
        id=grant.id,
        agency=vault.agencies.display_name(db, grant.client_id, lang),
        item=item.name_en if lang == "en" else item.name_zh,
        purpose=item.purpose_en if lang == "en" else item.purpose_zh,
        fields=_fields(vault, grant.fields, lang),
        state=grant.state,
        valid_from=grant.valid_from,
        valid_until=grant.valid_until,
        uses_left=None if grant.use_limit is None else max(grant.use_limit - grant.uses, 0),
        use_limit=grant.use_limit,
    )


def _request_id(request: Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params["request_id"])
    except ValueError:
        raise Forbidden(GONE) from None


async def consent_page(request: Request) -> Response:
    user = await require_user(request)
    vault, request_id = vault_of(request), _request_id(request)

    def load() -> RequestView:
        with vault.db.session() as db:
            decider = _decider(vault, db, user)
            try:
                pending = vault.consent.pending_request(db, request_id)
            except RequestNotFound:
                raise Forbidden(GONE) from None
            if pending.owner_id is not None and pending.owner_id != decider.owner_id:
                raise Forbidden(NOT_YOURS)
            return _request_view(vault, db, pending, user.lang)

    view = await run_in_threadpool(load)
    context = {"request_view": view, "problem": None}
    return await render(request, "consent.html", context, headers=_form_action(request, view))


def _form_action(request: Request, view: RequestView) -> dict[str, str]:
    """Let this page's form be redirected on to the agency: form-action covers redirect targets in Chromium."""
    nonce = getattr(request.state, "csp_nonce", "")
    policy = content_security_policy(nonce)
    if view.redirect_origin:
        policy = policy.replace("form-action 'self'", f"form-action 'self' {view.redirect_origin}")
    return {"Content-Security-Policy": policy}


async def consent_decision(request: Request) -> Response:
    """POST /consent/{id}: `decision` approve|deny and the ticked `field` values; always answered with 303."""
    user = await require_post(request)
    form = await request.form()
    decision = form.get("decision")
    ticked = [v for v in form.getlist("field") if isinstance(v, str)]
    vault, request_id = vault_of(request), _request_id(request)

    def decide() -> str:
        with unit_of_work(vault.db) as db:
            decider = _decider(vault, db, user)
            try:
                pending = vault.consent.pending_request(db, request_id)
            except RequestNotFound:
                raise Forbidden(GONE) from None
            if decision == "deny":
                denied = vault.consent.deny(db, request_id, decider)
                return vault.oauth.denied(denied) if denied.kind == "redirect" else "/inbox"
            fields: dict[str, list[str]] = {}
            for value in ticked:
                type_code, _, name = value.partition("/")
                fields.setdefault(type_code, []).append(name)
            grant = vault.consent.approve(db, request_id, decider, fields)
            return vault.oauth.approved(pending, grant) if pending.kind == "redirect" else f"/grants#{grant.id}"

    try:
        location = await run_in_threadpool(decide)
    except NotAuthorisedToConsent:
        raise Forbidden(NOT_YOURS) from None
    except InvalidAuthorizationDetails:
        return await _again(request, request_id, user)
    return redirect(location)


async def _again(request: Request, request_id: uuid.UUID, user: SignedIn) -> Response:
    vault = vault_of(request)

    def load() -> RequestView:
        with vault.db.session() as db:
            return _request_view(vault, db, vault.consent.pending_request(db, request_id), user.lang)

    view = await run_in_threadpool(load)
    context = {"request_view": view, "problem": NO_FIELD}
    return await render(request, "consent.html", context, status_code=400, headers=_form_action(request, view))


async def inbox(request: Request) -> Response:
    user = await require_user(request)
    vault = vault_of(request)

    def load() -> list[RequestView]:
        with vault.db.session() as db:
            decider = _decider(vault, db, user)
            return [_request_view(vault, db, r, user.lang) for r in vault.consent.inbox(db, decider.owner_id)]

    return await render(request, "inbox.html", {"requests": await run_in_threadpool(load)})


async def grants(request: Request) -> Response:
    user = await require_user(request)
    vault = vault_of(request)

    def load() -> list[GrantView]:
        with vault.db.session() as db:
            decider = _decider(vault, db, user)
            return [_grant_view(vault, db, g, user.lang) for g in vault.consent.grants_of(db, decider.owner_id)]

    return await render(request, "grants.html", {"grants": await run_in_threadpool(load)})


async def revoke(request: Request) -> Response:
    user = await require_post(request)
    vault = vault_of(request)
    try:
        grant_id = uuid.UUID(request.path_params["grant_id"])
    except ValueError:
        raise Forbidden(NOT_YOURS) from None

    def run() -> None:
        with vault.db.session() as db:
            decider = _decider(vault, db, user)
            vault.consent.revoke(
                db, grant_id, actor=decider.actor, owner_id=decider.owner_id, reason="revoked by owner"
            )

    try:
        await run_in_threadpool(run)
    except (GrantNotFound, IllegalGrantTransition):
        raise Forbidden(NOT_YOURS) from None
    return redirect("/grants")


async def receipt(request: Request) -> Response:
    user = await require_user(request)
    vault = vault_of(request)
    try:
        grant_id = uuid.UUID(request.path_params["grant_id"])
    except ValueError:
        raise Forbidden(NOT_YOURS) from None

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
    Route("/consent/{request_id}", consent_page, methods=["GET"]),
    Route("/consent/{request_id}", consent_decision, methods=["POST"]),
    Route("/inbox", inbox, methods=["GET"]),
    Route("/grants", grants, methods=["GET"]),
    Route("/grants/{grant_id}/revoke", revoke, methods=["POST"]),
    Route("/grants/{grant_id}/receipt", receipt, methods=["GET"]),
]

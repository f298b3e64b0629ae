"""The owner's consent pages: a request to approve (narrowed) or deny, and the inbox of requests waiting.

No page here dead-ends: a request opened twice, expired or already decided says so and what to do next; one that
belongs to another of the person's data spaces (theirs, or an enterprise's they represent) offers to switch.
Grants, revoking and receipts are in grants_pages.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vault.consent import claims
from vault.consent.errors import InvalidAuthorizationDetails, NotAuthorisedToConsent, RequestNotFound
from vault.consent.lifecycle import RequestState
from vault.consent.models import ConsentRequest
from vault.consent.services import Decider
from vault.oauth.adapter import unit_of_work
from vault.oauth.server import binding_message
from vault.policy.catalogue import ServiceItem, ServiceUse
from vault.policy.errors import UnknownPredicate
from vault.web.csrf import require_post
from vault.web.dataspace import SpaceChoice, owner_name, reachable_spaces
from vault.web.errors import Forbidden
from vault.web.explain import goes_out_masked
from vault.web.i18n import N_
from vault.web.rendering import current_lang, redirect, render
from vault.web.sessions import SignedIn, require_user, today, vault_of
from vault.wiring import Vault

if TYPE_CHECKING:
    from vault.web.grants_pages import GrantView

NOT_YOURS = N_("This request is not for you, or you may not decide for this owner.")
GONE = N_("This request no longer waits for a decision.")
NO_FIELD = N_("Tick at least one field or question, or deny the request.")
NO_DECISION = N_("Choose to approve or to deny the request.")
DECISIONS = ("approve", "deny")
STAFF_CANNOT = N_("Compliance staff cannot give consent.")
CONTINUE_AFTER_SECONDS = 8  # on a redirect request's confirmation, before the browser goes back by itself
DONE = {
    "denied": N_("You refused the request. The agency was told; nothing was released."),
}


@dataclass(frozen=True)
class FieldView:
    key: str  # "<licence type>/<field>", the checkbox value
    label: str
    type_name: str
    sensitivity: str
    masked: bool = False


@dataclass(frozen=True)
class QuestionView:
    key: str  # the predicate id, the checkbox value
    question: str  # in the owner's language, with the parameters the service item fixes filled in
    type_name: str  # the licence type it looks at (no value of it leaves)


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
    owner_kinds: frozenset[str] = frozenset()
    space: SpaceChoice | None = None  # whose data space the decision is for, when known
    questions: list[QuestionView] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    """What the consent page shows: the request to decide, a switch to offer, or what happened to it."""

    view: RequestView | None = None
    here: SpaceChoice | None = None  # the data space the person acts in now
    switch_to: list[SpaceChoice] = field(default_factory=list)  # set: the request belongs elsewhere
    gone: str | None = None  # unknown, expired, approved, denied, no_longer (a representation that ended)
    former: str | None = None  # no_longer: the enterprise the person acted for, by name (None once erased)


def _decider(vault: Vault, db: Session, user: SignedIn) -> Decider:
    """Who decides: the person, for the owner they act for; representation is checked again here, today."""
    if user.is_staff or user.person_id is None:
        raise Forbidden(STAFF_CANNOT)
    owner_id = user.owner_id
    assert owner_id is not None
    if owner_id != user.person_id and not vault.owners.may_act_for(db, user.person_id, owner_id, today()):
        raise Forbidden(NOT_YOURS)
    return Decider(user.person_id, owner_id)


def field_views(
    vault: Vault, fields: dict[str, list[str]], lang: str, item: ServiceItem | None = None
) -> list[FieldView]:
    views = []
    for type_code, names in sorted(fields.items()):
        licence_type = vault.catalogue.type(type_code)
        type_name = licence_type.name_en if lang == "en" else licence_type.name_zh
        for name in names:
            definition = licence_type.field(name)
            label = definition.label_en if lang == "en" else definition.label_zh
            masked = goes_out_masked(item, licence_type, name)
            views.append(FieldView(f"{type_code}/{name}", label, type_name, definition.sensitivity.value, masked))
    return views


def question_views(vault: Vault, questions: dict[str, dict[str, object]], lang: str) -> list[QuestionView]:
    views = []
    for predicate_id, fixed in sorted(questions.items()):
        try:
            predicate = vault.policy.catalogue.predicate(predicate_id)
        except UnknownPredicate:
            continue  # retired from the catalogue: nothing can be asked under it any more
        licence_type = vault.catalogue.type(predicate.licence_type)
        type_name = licence_type.name_en if lang == "en" else licence_type.name_zh
        values = {k: v for k, v in fixed.items() if isinstance(v, str | int)}
        views.append(QuestionView(predicate_id, predicate.question(lang, values), type_name))
    return views


def request_view(
    vault: Vault, db: Session, request: ConsentRequest, lang: str, space: SpaceChoice | None = None
) -> RequestView:
    item = vault.policy.catalogue.item(request.service_item)
    return RequestView(
        id=request.id,
        kind=request.kind,
        agency=vault.agencies.display_name(db, request.client_id, lang),
        item=item.name_en if lang == "en" else item.name_zh,
        purpose=item.purpose_en if lang == "en" else item.purpose_zh,
        legal_basis=item.legal_basis,
        fields=field_views(vault, request.fields, lang, item),
        max_days=item.max_grant_days,
        once=item.use is ServiceUse.ONCE,
        binding_message=binding_message(vault.keys, db, request),
        expires_at=request.expires_at,
        owner_kinds=frozenset(k.value for k in item.owner_kinds),
        space=space,
        questions=question_views(vault, request.questions or {}, lang),
    )


def _request_id(request: Request) -> uuid.UUID | None:
    try:
        return uuid.UUID(request.path_params["request_id"])
    except ValueError:
        return None


def _outcome(vault: Vault, db: Session, user: SignedIn, request_id: uuid.UUID | None, lang: str) -> Outcome:
    """Decide what the consent page shows; claims an unbound redirect request for the space it is opened in."""
    decider = _decider(vault, db, user)
    spaces = reachable_spaces(vault, db, decider.person_id)
    here = spaces.get(decider.owner_id)
    pending = db.get(ConsentRequest, request_id) if request_id else None
    if pending is None:
        return Outcome(here=here, gone="unknown")
    vault.consent.expire_if_stale(db, pending)
    if pending.state != RequestState.PENDING:
        if pending.owner_id is not None and pending.owner_id not in spaces:
            return Outcome(here=here, gone="unknown")  # someone else's request: say no more than that
        return Outcome(here=here, gone=str(pending.state))
    kinds = {k.value for k in vault.policy.catalogue.item(pending.service_item).owner_kinds}
    if pending.owner_id is None:
        if here is not None and here.kind in kinds and claims.claim(db, pending.id, here.owner_id):
            return Outcome(view=request_view(vault, db, pending, lang, here), here=here)
        fitting = [s for s in spaces.values() if s.kind in kinds and s.owner_id != decider.owner_id]
        if not fitting:
            raise Forbidden(NOT_YOURS)
        return Outcome(view=request_view(vault, db, pending, lang), here=here, switch_to=fitting)
    if pending.owner_id == decider.owner_id:
        return Outcome(view=request_view(vault, db, pending, lang, here), here=here)
    if pending.owner_id in spaces:
        target = spaces[pending.owner_id]
        return Outcome(view=request_view(vault, db, pending, lang, target), here=here, switch_to=[target])
    if vault.owners.acted_for_until(db, decider.person_id, pending.owner_id, today()):
        # a former representative knows the enterprise: say that their part ended, rather than "not yours"
        return Outcome(here=here, gone="no_longer", former=owner_name(vault, db, pending.owner_id))
    raise Forbidden(NOT_YOURS)


async def _show(request: Request, outcome: Outcome, problem: str | None = None, status: int = 200) -> Response:
    if outcome.view is None:
        status = {"unknown": 404, "no_longer": 403}.get(outcome.gone or "", 410)
        what = {"gone": outcome.gone, "acting_in": outcome.here, "former": outcome.former}
        return await render(request, "consent_gone.html", what, status_code=status)
    context = {
        "request_view": outcome.view,
        "problem": problem,
        "acting_in": outcome.here,
        "switch_to": outcome.switch_to,
    }
    return await render(request, "consent.html", context, status_code=status)


async def consent_page(request: Request) -> Response:
    user = await require_user(request)
    vault, request_id, lang = vault_of(request), _request_id(request), current_lang(request, user)

    def load() -> Outcome:
        with vault.db.session() as db:
            return _outcome(vault, db, user, request_id, lang)

    return await _show(request, await run_in_threadpool(load))


@dataclass(frozen=True)
class Returning:
    """A decision on an agency's redirect request: confirmed in the vault, then the browser goes back to `location`
    (the client's redirect URI with code or error, state and iss). The page is the POST's own answer, never a URL of
    ours, so the one-time code is not in the vault's history or logs; HTML is never cached (SecurityHeaders)."""

    location: str
    approved: bool
    agency: str
    item: str
    space: SpaceChoice | None
    grant: GrantView | None = None  # what an approval gave


async def consent_decision(request: Request) -> Response:
    """POST /consent/{id}: `decision` approve|deny and the ticked `field` values.

    A backchannel decision is answered with 303 to My grants or Requests, which confirm it; a redirect request's with
    a confirmation page that links to the receipt and continues to the agency (button, or by itself after a few
    seconds).
    """
    user = await require_post(request)
    form = await request.form()
    decision = form.get("decision")
    ticked = [v for v in form.getlist("field") if isinstance(v, str)]
    asked = [v for v in form.getlist("question") if isinstance(v, str)]
    vault, request_id, lang = vault_of(request), _request_id(request), current_lang(request, user)
    if request_id is None:
        return redirect("/consent/unknown")
    if form.getlist("decision") != [decision] or decision not in DECISIONS:
        return await _again(request, request_id, user, NO_DECISION)  # deny by default: nothing else approves

    def decide() -> str | Returning:
        from vault.web.grants_pages import grant_view  # that module builds on this one

        with unit_of_work(vault.db) as db:
            decider = _decider(vault, db, user)
            try:
                pending = vault.consent.pending_request(db, request_id)
            except RequestNotFound:
                return f"/consent/{request_id}"  # the page says what happened to it
            item = vault.policy.catalogue.item(pending.service_item)
            agency = vault.agencies.display_name(db, pending.client_id, lang)
            item_name = item.name_en if lang == "en" else item.name_zh
            space = reachable_spaces(vault, db, decider.person_id).get(decider.owner_id)
            if decision == "deny":
                denied = vault.consent.deny(db, request_id, decider)
                if denied.kind != "redirect":
                    return "/inbox?done=denied"
                return Returning(vault.oauth.denied(denied), False, agency, item_name, space)
            fields: dict[str, list[str]] = {}
            for value in ticked:
                type_code, _, name = value.partition("/")
                fields.setdefault(type_code, []).append(name)
            grant = vault.consent.approve(db, request_id, decider, fields, asked)
            if pending.kind != "redirect":
                return f"/grants?done=approved&grant={grant.id}#grant-{grant.id}"
            view = grant_view(vault, db, grant, lang)
            return Returning(vault.oauth.approved(pending, grant), True, agency, item_name, space, view)

    try:
        outcome = await run_in_threadpool(decide)
    except (NotAuthorisedToConsent, RequestNotFound):
        # another space's request: the page explains and offers to switch; decided meanwhile: it says so
        return redirect(f"/consent/{request_id}")
    except InvalidAuthorizationDetails:
        return await _again(request, request_id, user)
    if isinstance(outcome, str):
        return redirect(outcome)
    return await render(request, "consent_done.html", {"done": outcome, "continue_after": CONTINUE_AFTER_SECONDS})


async def _again(request: Request, request_id: uuid.UUID, user: SignedIn, problem: str = NO_FIELD) -> Response:
    vault, lang = vault_of(request), current_lang(request, user)

    def load() -> Outcome:
        with vault.db.session() as db:
            return _outcome(vault, db, user, request_id, lang)

    return await _show(request, await run_in_threadpool(load), problem, status=400)


@dataclass(frozen=True)
class Waiting:
    view: RequestView
    space: SpaceChoice
    here: bool  # in the data space the person acts in now


async def inbox(request: Request) -> Response:
    """GET /inbox: requests waiting in this data space, then those waiting in the person's other spaces."""
    user = await require_user(request)
    vault, lang = vault_of(request), current_lang(request, user)

    def load() -> tuple[SpaceChoice | None, list[Waiting]]:
        with vault.db.session() as db:
            decider = _decider(vault, db, user)
            spaces = reachable_spaces(vault, db, decider.person_id)
            waiting = []
            for space in sorted(spaces.values(), key=lambda s: s.owner_id != decider.owner_id):
                for r in vault.consent.inbox(db, space.owner_id):
                    waiting.append(
                        Waiting(request_view(vault, db, r, lang, space), space, space.owner_id == decider.owner_id)
                    )
            return spaces.get(decider.owner_id), waiting

    here, waiting = await run_in_threadpool(load)
    done = DONE.get(request.query_params.get("done", ""))
    context = {"acting_in": here, "waiting": waiting, "done": done}
    return await render(request, "inbox.html", context)


routes = [
    Route("/consent/{request_id}", consent_page, methods=["GET"]),
    Route("/consent/{request_id}", consent_decision, methods=["POST"]),
    Route("/inbox", inbox, methods=["GET"]),
]

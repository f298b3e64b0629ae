"""The compliance console's grant review: filters, flags that say why a grant deserves a look, and the staff actions
(revoke a grant, suspend or reinstate an agency), each written to the access log by the service that performs it.

The staff guards and calendar helpers here serve the charts and audit pages too (console_charts, console_audit).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from urllib.parse import parse_qsl, urlencode, urlsplit

from sqlalchemy import and_, or_
from sqlalchemy.orm import Session
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vault import clock
from vault.audit.events import Action, Event
from vault.audit.models import AuditEvent
from vault.consent.errors import GrantNotFound, IllegalGrantTransition
from vault.consent.lifecycle import GrantState
from vault.consent.models import Grant
from vault.consent.services import ConsentService, field_names, question_names
from vault.licences.errors import UnknownLicenceField, UnknownLicenceType
from vault.oauth.errors import AgencyError
from vault.policy.catalogue import ServiceItem
from vault.web.auth import safe_next
from vault.web.csrf import field, require_post
from vault.web.errors import Forbidden
from vault.web.i18n import N_
from vault.web.rendering import current_lang, redirect, render
from vault.web.sessions import SignedIn, require_user, vault_of
from vault.wiring import Vault

STAFF_ONLY = N_("Only compliance staff may use the console.")
NEED_REASON = N_("Give a reason: it is written to the access log with the action.")
GRANT_NOT_LIVE = N_("There is no such grant, or it has already ended.")
NO_SUCH_AGENCY = N_("There is no such agency.")

ACCESS_ACTIONS = (Action.FIELDS_RELEASED.value, Action.FIELDS_DENIED.value)
AGENCY_ACTOR = "agency:"
DORMANT_AFTER = timedelta(days=90)
SPIKE_BASELINE_DAYS = 14
SPIKE_FACTOR = 3
SPIKE_MINIMUM = 20
ROW_LIMIT = 500
REASON_LIMIT = 500
MAX_AGE_DAYS = 100_000
DONE = {
    "revoked": N_("The grant was revoked."),
    "suspended": N_("The agency was suspended."),
    "reinstated": N_("The agency was reinstated."),
}


# staff guards, shared by every console page


async def require_staff(request: Request) -> SignedIn:
    """The signed-in staff member; LoginRequired for nobody, Forbidden (403) for anyone else."""
    user = await require_user(request)
    if not user.is_staff:
        raise Forbidden(STAFF_ONLY)
    return user


async def require_staff_post(request: Request) -> SignedIn:
    """require_post (origin, session, CSRF token), then the staff check."""
    user = await require_post(request)
    if not user.is_staff:
        raise Forbidden(STAFF_ONLY)
    return user


def staff_actor(user: SignedIn) -> str:
    return f"staff:{user.account_id}"


def local_day(moment: datetime) -> date:
    """The day a moment falls on where the vault runs, the same calendar sessions.today() uses."""
    return moment.astimezone().date()


def day_start(day: date) -> datetime:
    """Local midnight at the start of `day`, as an aware datetime."""
    return datetime.combine(day, time.min).astimezone()


def agency_of(actor: str) -> str | None:
    return actor.removeprefix(AGENCY_ACTOR) if actor.startswith(AGENCY_ACTOR) else None


# flags


class Flag(StrEnum):
    WIDER = "wider"
    LONGER = "longer"
    DORMANT = "dormant"
    SPIKE = "spike"


FLAG_LABELS = {
    Flag.WIDER: N_("wider than item"),
    Flag.LONGER: N_("longer than allowed"),
    Flag.DORMANT: N_("dormant"),
    Flag.SPIKE: N_("volume spike"),
}
FLAG_EXPLANATIONS = {
    Flag.WIDER: N_(
        "The grant covers fields its service item does not list (any more): the catalogue was narrowed after the "
        "owner consented, or the item was withdrawn."
    ),
    Flag.LONGER: N_("The grant is valid for longer than its service item allows (the item's maximum grant days)."),
    Flag.DORMANT: N_("The grant is active but the agency has not used it for 90 days (or never, since it was given)."),
    Flag.SPIKE: N_(
        "The agency's reads today (fields released or denied) are more than three times its average per day over the "
        "previous 14 days, and more than 20."
    ),
}


@dataclass(frozen=True)
class AgencyVolume:
    today: int
    average: float

    @property
    def spike(self) -> bool:
        return self.today > SPIKE_FACTOR * self.average and self.today > SPIKE_MINIMUM


def access_volumes(db: Session, today: date) -> dict[str, AgencyVolume]:
    """Each agency's reads today and its average per day over the SPIKE_BASELINE_DAYS days before."""
    start, end = day_start(today - timedelta(days=SPIKE_BASELINE_DAYS)), day_start(today + timedelta(days=1))
    rows = db.execute(
        select(AuditEvent.actor, AuditEvent.created_at).where(
            col(AuditEvent.action).in_(ACCESS_ACTIONS),
            col(AuditEvent.actor).startswith(AGENCY_ACTOR),
            col(AuditEvent.created_at) >= start,
            col(AuditEvent.created_at) < end,
        )
    ).all()
    todays: Counter[str] = Counter()
    before: Counter[str] = Counter()
    for actor, created_at in rows:
        client_id = agency_of(actor)
        if client_id is not None:
            (todays if local_day(created_at) == today else before)[client_id] += 1
    return {c: AgencyVolume(todays[c], before[c] / SPIKE_BASELINE_DAYS) for c in set(todays) | set(before)}


effective_state = ConsentService.effective_state


def grant_flags(
    grant: Grant, item: ServiceItem | None, now: datetime, volumes: Mapping[str, AgencyVolume]
) -> dict[Flag, dict[str, str]]:
    """Each flag that applies, with the details the page shows to make it concrete (extra fields, days, last use)."""
    flags: dict[Flag, dict[str, str]] = {}
    granted = set(field_names(grant.fields)) | set(question_names(grant.questions or {}))
    listed = set(field_names(item.fields)) | set(question_names(item.questions)) if item else set()
    extra = sorted(granted - listed)
    if extra:
        flags[Flag.WIDER] = {"fields": ", ".join(extra)}
    days = (grant.valid_until - grant.valid_from) / timedelta(days=1)
    if item is not None and days > item.max_grant_days:
        flags[Flag.LONGER] = {"days": f"{days:.0f}", "max": str(item.max_grant_days)}
    last = grant.last_used_at or grant.created_at
    if effective_state(grant, now) == GrantState.ACTIVE and now - last >= DORMANT_AFTER:
        flags[Flag.DORMANT] = {"date": local_day(last).isoformat(), "used": "yes" if grant.last_used_at else ""}
    volume = volumes.get(grant.client_id)
    if volume is not None and volume.spike:
        flags[Flag.SPIKE] = {"today": str(volume.today), "average": f"{volume.average:.1f}"}
    return flags


# the review page


@dataclass(frozen=True)
class Filters:
    agency: str = ""
    item: str = ""
    state: str = ""
    min_age: int | None = None
    max_age: int | None = None
    flag: str = ""

    @classmethod
    def parse(cls, params: QueryParams, agencies: Iterable[str], items: Iterable[str]) -> Filters:
        """Filters from the query string; a value that names nothing known is ignored rather than refused."""

        def choice(name: str, allowed: Iterable[str]) -> str:
            value = params.get(name, "")
            return value if value in set(allowed) else ""

        def days(name: str) -> int | None:
            value = params.get(name, "").strip()
            return int(value) if value.isascii() and value.isdigit() and int(value) <= MAX_AGE_DAYS else None

        return cls(
            agency=choice("agency", agencies),
            item=choice("item", items),
            state=choice("state", [s.value for s in GrantState]),
            min_age=days("min_age"),
            max_age=days("max_age"),
            flag=choice("flag", [f.value for f in Flag]),
        )

    def query(self, now: datetime) -> SelectOfScalar[Grant]:
        query = select(Grant).order_by(col(Grant.created_at).desc(), col(Grant.id))
        if self.agency:
            query = query.where(col(Grant.client_id) == self.agency)
        if self.item:
            query = query.where(col(Grant.service_item) == self.item)
        live = col(Grant.state).in_([GrantState.ACTIVE.value, GrantState.PENDING.value])
        if self.state == GrantState.EXPIRED:
            query = query.where(or_(col(Grant.state) == self.state, and_(live, col(Grant.valid_until) <= now)))
        elif self.state in (GrantState.ACTIVE, GrantState.PENDING):
            query = query.where(col(Grant.state) == self.state, col(Grant.valid_until) > now)
        elif self.state:
            query = query.where(col(Grant.state) == self.state)
        if self.min_age is not None:
            query = query.where(col(Grant.created_at) <= now - timedelta(days=self.min_age))
        if self.max_age is not None:
            query = query.where(col(Grant.created_at) > now - timedelta(days=self.max_age + 1))
        return query


@dataclass(frozen=True)
class Option:
    value: str
    label: str


@dataclass(frozen=True)
class GrantRow:
    id: uuid.UUID
    owner_id: uuid.UUID
    agency: str
    client_id: str
    item: str
    fields: list[str]
    state: str
    created: date
    age_days: int
    valid_from: date
    valid_until: date
    uses: int
    use_limit: int | None
    last_used: date | None
    flags: dict[Flag, dict[str, str]]

    @property
    def live(self) -> bool:
        return self.state in (GrantState.ACTIVE, GrantState.PENDING)


@dataclass(frozen=True)
class AgencyRow:
    client_id: str
    name: str
    suspended: date | None
    suspended_reason: str | None
    today: int
    average: float
    spike: bool


@dataclass(frozen=True)
class ReviewView:
    filters: Filters
    agencies: list[Option]
    items: list[Option]
    grants: list[GrantRow]
    truncated: bool
    agency_rows: list[AgencyRow]


def _item(vault: Vault, code: str) -> ServiceItem | None:
    return vault.policy.catalogue.items.get(code)


def _item_name(vault: Vault, code: str, lang: str) -> str:
    item = _item(vault, code)
    if item is None:
        return code
    return item.name_en if lang == "en" else item.name_zh


def field_labels(vault: Vault, ids: Iterable[str], lang: str) -> list[str]:
    """`<type>/<field>` ids as "label (licence type)" in `lang`; an id no type describes any more stays as it is."""
    labels = []
    for field_id in ids:
        if field_id.startswith("?"):  # a question (predicate) granted instead of values
            predicate = vault.policy.catalogue.predicates.get(field_id[1:])
            labels.append(predicate.question(lang, {}) if predicate else field_id)
            continue
        type_code, _, name = field_id.partition("/")
        try:
            licence_type = vault.catalogue.type(type_code)
            field_def = licence_type.field(name)
        except (UnknownLicenceType, UnknownLicenceField):
            labels.append(field_id)
            continue
        if lang == "en":
            labels.append(f"{field_def.label_en} ({licence_type.name_en})")
        else:
            labels.append(f"{field_def.label_zh}（{licence_type.name_zh}）")
    return labels


def review_view(vault: Vault, params: QueryParams, lang: str, actor: str) -> ReviewView:
    """The review page's grants and agencies; each owner whose grants it shows gets a record of the staff view."""
    now, today = clock.utcnow(), local_day(clock.utcnow())
    with vault.db.session() as db:
        agencies = vault.agencies.all(db)
        names = {a.client_id: (a.name_en if lang == "en" else a.name_zh) for a in agencies}
        codes = sorted(vault.policy.catalogue.items)
        filters = Filters.parse(params, names, codes)
        volumes = access_volumes(db, today)
        rows: list[GrantRow] = []
        truncated = False
        for grant in db.scalars(filters.query(now).execution_options(yield_per=200)):
            flags = grant_flags(grant, _item(vault, grant.service_item), now, volumes)
            if Flag.WIDER in flags:  # the page's language, not the catalogue's codes
                wider = flags[Flag.WIDER]["fields"].split(", ")
                flags[Flag.WIDER] = {"fields": ", ".join(field_labels(vault, wider, lang))}
            if filters.flag and filters.flag not in flags:
                continue
            if len(rows) == ROW_LIMIT:
                truncated = True
                break
            rows.append(
                GrantRow(
                    id=grant.id,
                    owner_id=grant.owner_id,
                    agency=names.get(grant.client_id, grant.client_id),
                    client_id=grant.client_id,
                    item=_item_name(vault, grant.service_item, lang),
                    fields=field_labels(vault, field_names(grant.fields) + question_names(grant.questions or {}), lang),
                    state=effective_state(grant, now),
                    created=local_day(grant.created_at),
                    age_days=(now - grant.created_at).days,
                    valid_from=local_day(grant.valid_from),
                    valid_until=local_day(grant.valid_until),
                    uses=grant.uses,
                    use_limit=grant.use_limit,
                    last_used=local_day(grant.last_used_at) if grant.last_used_at else None,
                    flags=flags,
                )
            )
        for owner_id in dict.fromkeys(r.owner_id for r in rows):
            vault.audit.append(db, Event(Action.STAFF_VIEWED, actor, owner_id=owner_id, detail={"page": "grants"}))
        agency_rows = []
        for agency in agencies:
            volume = volumes.get(agency.client_id, AgencyVolume(0, 0.0))
            agency_rows.append(
                AgencyRow(
                    client_id=agency.client_id,
                    name=names[agency.client_id],
                    suspended=local_day(agency.suspended_at) if agency.suspended_at else None,
                    suspended_reason=agency.suspended_reason,
                    today=volume.today,
                    average=volume.average,
                    spike=volume.spike,
                )
            )
    return ReviewView(
        filters=filters,
        agencies=[Option(c, n) for c, n in names.items()],
        items=[Option(c, _item_name(vault, c, lang)) for c in codes],
        grants=rows,
        truncated=truncated,
        agency_rows=agency_rows,
    )


async def review(request: Request) -> Response:
    user = await require_staff(request)
    lang = current_lang(request, user)
    view = await run_in_threadpool(review_view, vault_of(request), request.query_params, lang, staff_actor(user))
    done = DONE.get(request.query_params.get("done", ""))
    context = {"view": view, "done": done, "flag_labels": FLAG_LABELS, "flag_explanations": FLAG_EXPLANATIONS}
    return await render(request, "console.html", context)


# staff actions


def back_to(value: object, done: str) -> str:
    """The console page the form was on (same-origin, under /console), with `done` saying what happened."""
    path = safe_next(value) or "/console"
    parts = urlsplit(path)
    if parts.path != "/console":
        parts = urlsplit("/console")
    query: Mapping[str, str] = {k: v for k, v in parse_qsl(parts.query) if k != "done"}
    return f"{parts.path}?{urlencode({**query, 'done': done})}"


async def _reason(request: Request) -> str | None:
    reason = field(await request.form(), "reason", REASON_LIMIT).strip()
    return reason or None


async def _missing_reason(request: Request) -> Response:
    return await render(request, "error.html", {"message": NEED_REASON}, status_code=400)


async def revoke_grant(request: Request) -> Response:
    """POST /console/grants/{id}/revoke, field `reason`: the grant ends and every token from it dies at once."""
    user = await require_staff_post(request)
    reason = await _reason(request)
    if reason is None:
        return await _missing_reason(request)
    try:
        grant_id = uuid.UUID(request.path_params["grant_id"])
    except ValueError:
        raise Forbidden(GRANT_NOT_LIVE) from None
    vault = vault_of(request)

    def run() -> None:
        with vault.db.session() as db:
            vault.consent.revoke(db, grant_id, actor=staff_actor(user), owner_id=None, reason=reason)

    try:
        await run_in_threadpool(run)
    except (GrantNotFound, IllegalGrantTransition):
        raise Forbidden(GRANT_NOT_LIVE) from None
    return redirect(back_to((await request.form()).get("back"), "revoked"))


async def suspend_agency(request: Request) -> Response:
    """POST /console/agencies/{client_id}/suspend, field `reason`: the agency can no longer authenticate."""
    user = await require_staff_post(request)
    reason = await _reason(request)
    if reason is None:
        return await _missing_reason(request)
    vault, client_id = vault_of(request), request.path_params["client_id"]

    def run() -> None:
        with vault.db.session() as db:
            agency = vault.agencies.get(db, client_id)
            if agency is not None and agency.suspended_at is not None:
                return  # already suspended (a form sent twice): the first reason and date stand
            vault.agencies.suspend(db, client_id, actor=staff_actor(user), reason=reason)

    try:
        await run_in_threadpool(run)
    except AgencyError:
        raise Forbidden(NO_SUCH_AGENCY) from None
    return redirect(back_to((await request.form()).get("back"), "suspended"))


async def reinstate_agency(request: Request) -> Response:
    """POST /console/agencies/{client_id}/reinstate."""
    user = await require_staff_post(request)
    vault, client_id = vault_of(request), request.path_params["client_id"]

    def run() -> None:
        with vault.db.session() as db:
            agency = vault.agencies.get(db, client_id)
            if agency is not None and agency.suspended_at is None:
                return  # not suspended: nothing to reinstate, nothing to log
            vault.agencies.reinstate(db, client_id, actor=staff_actor(user))

    try:
        await run_in_threadpool(run)
    except AgencyError:
        raise Forbidden(NO_SUCH_AGENCY) from None
    return redirect(back_to((await request.form()).get("back"), "reinstated"))


routes = [
    Route("/console", review, methods=["GET"], name="console"),
    Route("/console/grants/{grant_id}/revoke", revoke_grant, methods=["POST"]),
    Route("/console/agencies/{client_id}/suspend", suspend_agency, methods=["POST"]),
    Route("/console/agencies/{client_id}/reinstate", reinstate_agency, methods=["POST"]),
]

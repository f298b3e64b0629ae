"""The agency read: an owner's licences, field by field, as policy releases them, each with its presentation.

One `licences` field is resolved in a fixed number of statements whatever the number of licences:
- the fields the query asks for are read off its selection, and policy decides each (licence type, field) once
  per request, in one Cedar batch, before any row is loaded;
- only licence types with something to release are loaded, for the one owner, in one statement (other owners
  never reach a resolver);
- the released fields' disclosures of every licence are fetched together by a per-request loader, and only they
  are decrypted.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import strawberry
from sqlalchemy import and_, bindparam, select
from sqlmodel import col
from strawberry.types import Info
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

from vault.api.context import Context
from vault.api.errors import BadUserInput, FieldForbidden, Forbidden
from vault.api.limits import MAX_FIELD_NAMES, MAX_LICENCES_PER_OWNER, MAX_TYPES, check_list
from vault.api.loaders import Opening
from vault.api.reads import NO_SUCH_OWNER, Authority, MandateRead, find_owner
from vault.db import Prepared
from vault.licences import sdjwt
from vault.licences.lifecycle import LicenceState
from vault.licences.models import Licence as LicenceRow
from vault.licences.models import LicenceHead, LicenceVersion, VersionHead
from vault.licences.services import presentation_of
from vault.licences.types import LicenceType
from vault.mandates.errors import CaseNotRegistered, MandateRefused
from vault.mandates.services import MandateService
from vault.oauth.scopes import Scope
from vault.owners.models import Owner, OwnerHead
from vault.policy.engine import FieldDecision
from vault.policy.errors import UnknownMandate

NOT_NAMED = "the mandate token does not name this owner"
ONE_OWNER = "a request under a mandate reads one owner only"

VALID_UNTIL = "valid_until"  # metadata that is also a field: released only as the field would be
LicenceStateEnum = strawberry.enum(LicenceState, name="LicenceState", description="Where a licence is in its life.")


@strawberry.type(description="The department that issued and signed a licence.")
class Issuer:
    code: str
    id: str = strawberry.field(description="The `iss` of its SD-JWTs: verify against this issuer's metadata.")
    metadata_url: str = strawberry.field(description="Its JWT VC issuer metadata: the public keys.")
    status_list_url: str = strawberry.field(description="Its status list: suspensions and revocations.")


@strawberry.type(description="One released field: in full, or masked as policy says.")
class LicenceField:
    name: str
    label_zh: str
    label_en: str
    value: str | None = strawberry.field(description="Null only when the licence has no value for this field.")
    masked: bool = strawberry.field(description="True when `value` is the masked form, not the value itself.")


@dataclass
class Wanted:
    """What a `licences` selection asks of each licence: named fields, all fields, a presentation."""

    names: set[str] = field(default_factory=set)
    every: bool = False
    fields: bool = False
    presentation: bool = False
    valid_until: bool = False


@dataclass
class TypePlan:
    """The request's decisions for one licence type of one owner, shared by every licence of that type."""

    licence_type: LicenceType
    named: tuple[str, ...]
    decided: tuple[str, ...]
    decisions: dict[str, FieldDecision]
    wanted: Wanted

    @property
    def allowed(self) -> list[str]:
        return [n for n in self.decided if self.decisions[n].read.allowed]

    @property
    def in_full(self) -> list[str]:
        return [n for n in self.allowed if not self.decisions[n].masked]

    def to_open(self) -> frozenset[str]:
        if self.wanted.fields:
            return frozenset(self.allowed)
        return frozenset(self.in_full if self.wanted.presentation else ())


@dataclass
class LicenceRead:
    row: LicenceHead
    version: VersionHead
    plan: TypePlan
    opening: Opening


@strawberry.type(description="One licence of the owner, as released to this agency for this request.")
class Licence:
    id: strawberry.ID
    type: str
    type_name_zh: str
    type_name_en: str
    state: LicenceStateEnum  # type: ignore[valid-type]
    version: int
    issuer: Issuer
    read: strawberry.Private[LicenceRead]

    @strawberry.field(description="Issued and neither suspended, revoked nor expired.")
    def in_force(self) -> bool:
        return self.read.row.state == LicenceState.ACTIVE

    @strawberry.field(
        description=(
            "The licence's field valid_until, under the same decision as its value in `fields`: null unless policy "
            'releases it to you in full (no error: ask `fields(names: ["valid_until"])` for the reason).'
        )
    )
    def valid_until(self, info: Info[Context, None]) -> date | None:
        row, plan = self.read.row, self.read.plan
        decision = plan.decisions.get(VALID_UNTIL)
        if row.valid_until is None or decision is None or not decision.read.allowed or decision.masked:
            return None
        info.context.reads.released(row.owner_id, [f"{row.type_code}/{VALID_UNTIL}"])
        return row.valid_until

    @strawberry.field(
        description=(
            "The fields named (all fields policy releases, when `names` is omitted), in the order asked. A field "
            "policy refuses is null, with an error whose extensions carry code FIELD_FORBIDDEN, field and reason."
        )
    )
    def fields(self, info: Info[Context, None], names: list[str] | None = None) -> list[LicenceField | None]:
        check_list("names", names, MAX_FIELD_NAMES)
        plan, licence_type = self.read.plan, self.read.plan.licence_type
        known = licence_type.field_names
        chosen = plan.allowed if names is None else [n for n in dict.fromkeys(names) if n in known]
        opened = info.context.loaders.disclosures.load(self.read.opening) or {}
        result: list[Any] = []
        released, masked = [], []
        for name in chosen:
            decision = plan.decisions.get(name)
            if decision is None or not decision.read.allowed:
                reason = decision.read.reason if decision else "not decided for this request"
                path = f"{licence_type.code}/{name}"
                # an exception as a list item: graphql-core makes the item null and reports it at its path
                result.append(FieldForbidden(f"{path} is not released: {reason}", field=path, reason=reason))
                continue
            definition = licence_type.field(name)
            disclosure = opened.get(name)
            value = None if disclosure is None else sdjwt.decode_disclosure(disclosure)[2]
            shown = None if value is None else definition.masked(value) if decision.masked else str(value)
            result.append(
                LicenceField(
                    name=name,
                    label_zh=definition.label_zh,
                    label_en=definition.label_en,
                    value=shown,
                    masked=decision.masked,
                )
            )
            if value is not None:
                released.append(f"{licence_type.code}/{name}")
                if decision.masked:
                    masked.append(f"{licence_type.code}/{name}")
        info.context.reads.released(self.read.row.owner_id, released, masked)
        return result

    @strawberry.field(
        description=(
            "The issuer-signed SD-JWT with exactly the fields released in full by this request disclosed (masked "
            "fields are never disclosed: a disclosure carries the whole value). Verify it offline against the "
            "issuer's metadata and status list."
        )
    )
    def presentation(self, info: Info[Context, None]) -> str:
        context, read = info.context, self.read
        opened = context.loaders.disclosures.load(read.opening) or {}
        names = [n for n in read.plan.in_full if n in opened]
        jwt = context.vault.licences.issuer_jwt(read.version, context.loaders.key(read.row.owner_id))
        context.reads.released(read.row.owner_id, (f"{read.row.type_code}/{n}" for n in names))
        return presentation_of(jwt, (opened[n] for n in names))


def _skipped(directives: dict[str, dict[str, Any]]) -> bool:
    return bool(directives.get("skip", {}).get("if")) or directives.get("include", {}).get("if") is False


def wanted_of(selections: Iterable[Selection], wanted: Wanted | None = None) -> Wanted:
    """Read off a `licences` selection (fragments included) which fields and whether a presentation it wants."""
    wanted = wanted or Wanted()
    for selection in selections:
        if _skipped(selection.directives):
            continue
        if isinstance(selection, SelectedField) and selection.name == "fields":
            names = selection.arguments.get("names")
            wanted.fields = True
            if names is None:
                wanted.every = True
            else:
                wanted.names.update(str(n) for n in names)
        elif isinstance(selection, SelectedField) and selection.name == "presentation":
            wanted.presentation = True
        elif isinstance(selection, SelectedField) and selection.name == "validUntil":
            wanted.valid_until = True
        elif isinstance(selection, FragmentSpread | InlineFragment):
            wanted_of(selection.selections, wanted)
    return wanted


def _decide(
    context: Context, authority: Authority, owner: Owner | OwnerHead, fields: dict[str, Sequence[str]]
) -> dict[str, dict[str, FieldDecision]]:
    """Decisions for (type, field) pairs, each made at most once per request, all missing ones in one batch."""
    missing = {t: [n for n in names if (owner.id, t, n) not in context.decisions] for t, names in fields.items()}
    missing = {t: names for t, names in missing.items() if names}
    if missing:
        made = context.vault.policy.decide_reads(
            context.agency,
            owner_id=str(owner.id),
            owner_kind=owner.kind,
            fields=missing,
            purpose=authority.purpose,
            now=context.now,
            **authority.policy_view(),  # type: ignore[arg-type]
        )
        for licence_type, by_name in made.items():
            for name, decision in by_name.items():
                context.decisions[(owner.id, licence_type, name)] = decision
    return {t: {n: context.decisions[(owner.id, t, n)] for n in names} for t, names in fields.items()}


def _metadata(licence_type: LicenceType, decided: tuple[str, ...], wanted: Wanted) -> tuple[str, ...]:
    """Fields decided only for metadata (validUntil): never opened or presented for it, refusal not a denial."""
    if wanted.valid_until and VALID_UNTIL in licence_type.field_names and VALID_UNTIL not in decided:
        return (VALID_UNTIL,)
    return ()


def _plans(
    context: Context, authority: Authority, owner: Owner | OwnerHead, types: list[LicenceType], wanted: Wanted
) -> list[TypePlan]:
    shapes = []
    for licence_type in types:
        named = tuple(n for n in licence_type.field_names if n in wanted.names)
        every = wanted.every or not wanted.fields  # a presentation alone, or no field at all: decide them all
        shapes.append((licence_type, named, licence_type.field_names if every else named))
    asked: dict[str, Sequence[str]] = {t.code: (*decided, *_metadata(t, decided, wanted)) for t, _, decided in shapes}
    decisions = _decide(context, authority, owner, asked)
    return [TypePlan(t, named, decided, decisions[t.code], wanted) for t, named, decided in shapes]


def _owner(
    context: Context, authority: Authority, identifier: str | None, asked: list[str]
) -> Owner | OwnerHead | None:
    if identifier is None:
        if authority.grant is None:
            raise BadUserInput("a read under a legal mandate names the owner", argument="owner")
        return context.session.get(Owner, authority.grant.owner_id)
    if authority.claim is not None:
        return _mandate_owner(context, authority, identifier, asked)
    return find_owner(context.vault, context.session, identifier)


def _mandate_owner(context: Context, authority: Authority, identifier: str, asked: list[str]) -> OwnerHead | None:
    """The owner a mandate token may read in this request; a refusal is recorded, for the owner if they exist."""
    claim, vault, session, ledger = authority.claim, context.vault, context.session, context.reads
    assert claim is not None
    try:
        mandate = vault.policy.catalogue.mandate(claim.mandate)
    except UnknownMandate:
        raise Forbidden(f"no legal mandate {claim.mandate!r} any more") from None
    service = MandateService(vault.keys, vault.audit, vault.policy.catalogue)
    try:
        kind, digest = service.identifier_digest(session, identifier)
    except MandateRefused as error:
        raise BadUserInput(error.message, argument="owner") from None
    owner = service.owner_by_digest(session, kind, digest)
    owner_id = owner.id if owner is not None else None
    if owner is not None:
        context.loaders.know(owner)
        ledger.choices[owner.id] = owner.chose
    if digest not in claim.owners:
        ledger.refuse(owner_id, NOT_NAMED, asked)
        raise Forbidden(NOT_NAMED, argument="owner")
    if ledger.mandate_owner not in (None, digest):
        ledger.refuse(owner_id, ONE_OWNER, asked)
        raise Forbidden(ONE_OWNER, argument="owner")
    ledger.mandate_owner = digest
    try:
        service.require_registered(session, mandate, claim, digest, context.now)
    except CaseNotRegistered as error:
        ledger.refuse(owner_id, str(error), asked)
        raise Forbidden(str(error), argument="owner") from None
    # counted when the events are written (this unit of work only reads): over a limit, nothing is returned
    ledger.mandate_read = MandateRead(mandate, claim, owner_id, tuple(asked), context.now)
    return owner


def read_licences(context: Context, wanted: Wanted, types: list[str] | None, owner_ref: str | None) -> list[Licence]:
    context.require(Scope.LICENCES_READ)
    authority = context.authority()
    check_list("types", types, MAX_TYPES)
    catalogue = context.vault.catalogue
    unknown_types = sorted(set(types or ()) - set(catalogue.types))
    if unknown_types:
        raise BadUserInput(f"no licence type {unknown_types[0]!r}", argument="types")
    licence_types = [
        catalogue.types[c] for c in (dict.fromkeys(types) if types is not None else sorted(catalogue.types))
    ]
    unknown_names = sorted(wanted.names - {n for t in licence_types for n in t.field_names})
    if unknown_names:
        raise BadUserInput(f"no licence type asked for has a field {unknown_names[0]!r}", argument="names")
    asked = [f"{t.code}/{n}" for t in licence_types for n in t.field_names if wanted.every or n in wanted.names]
    owner = _owner(context, authority, owner_ref, asked)
    if owner is None or owner.erased_at is not None:
        unknown = context.reads.owner(None)
        unknown.reasons.add(NO_SUCH_OWNER)
        unknown.denied.update(
            {f"{t.code}/{n}": NO_SUCH_OWNER for t in licence_types for n in t.field_names if n in wanted.names}
        )
        return []  # exactly what an owner this agency may not see gets
    plans = _plans(context, authority, owner, licence_types, wanted)
    record = context.reads.owner(owner.id)
    for plan in plans:
        for name in plan.decided:
            decision = plan.decisions[name].read
            if not decision.allowed and name in plan.named:
                record.denied[f"{plan.licence_type.code}/{name}"] = decision.reason
            elif decision.allowed:
                record.reasons.add(decision.reason)
    visible = {p.licence_type.code: p for p in plans if p.allowed}
    if not visible:
        return []
    return [
        _licence(context, row, version, visible[row.type_code])
        for row, version in _load(context, owner.id, list(visible))
    ]


_HEAD = (
    col(LicenceRow.id),
    col(LicenceRow.owner_id),
    col(LicenceRow.type_code),
    col(LicenceRow.issuer_code),
    col(LicenceRow.state),
    col(LicenceRow.current_version),
    col(LicenceRow.valid_until),
)
_VERSION_HEAD = (
    col(LicenceVersion.id),
    col(LicenceVersion.owner_id),
    col(LicenceVersion.version),
    col(LicenceVersion.valid_from),
    col(LicenceVersion.jwt_ct),
)
_CURRENT = Prepared(  # an owner's licences of some types with their current versions, as plain rows
    select(*_HEAD, *_VERSION_HEAD)
    .join(
        LicenceVersion,
        and_(
            col(LicenceVersion.licence_id) == col(LicenceRow.id),
            col(LicenceVersion.version) == col(LicenceRow.current_version),
        ),
    )
    .where(
        col(LicenceRow.owner_id) == bindparam("owner_id"),
        col(LicenceRow.type_code).in_(bindparam("codes", expanding=True)),
    )
    .order_by(col(LicenceRow.created_at), col(LicenceRow.id))
    .limit(MAX_LICENCES_PER_OWNER)
)


def _load(context: Context, owner_id: uuid.UUID, codes: list[str]) -> list[tuple[LicenceHead, VersionHead]]:
    """The owner's licences of these types with their current versions: one statement, Core rows (a read
    builds no ORM object: it changes nothing, and loading entities costs more than the statement)."""
    found = _CURRENT.all(context.session.connection(), {"owner_id": owner_id, "codes": codes})
    today, rows = context.now.date(), []
    for lid, owner, code, issuer, stored, current, until, vid, vowner, number, valid_from, jwt_ct in found:
        row = LicenceHead(lid, owner, code, issuer, stored, current, until)
        version = VersionHead(vid, vowner, number, valid_from, jwt_ct)
        state = context.vault.licences.effective_state(row, version, today)
        if state != row.state:  # shown as of today; a read writes nothing, the maintenance leader records the step
            row = row._replace(state=state.value)
        rows.append((row, version))
    return rows


def _licence(context: Context, row: LicenceHead, version: VersionHead, plan: TypePlan) -> Licence:
    vault = context.vault
    opening = Opening(version, version.id, row.owner_id, plan.to_open())
    if opening.names:
        context.loaders.disclosures.prime([opening])
    context.reads.owner(row.owner_id).licences.add(row.id)
    issuer = Issuer(
        code=row.issuer_code,
        id=vault.issuers.issuer_id(row.issuer_code),
        metadata_url=vault.issuers.metadata_url(row.issuer_code),
        status_list_url=vault.status_lists.uri(row.issuer_code),
    )
    return Licence(
        id=strawberry.ID(str(row.id)),
        type=row.type_code,
        type_name_zh=plan.licence_type.name_zh,
        type_name_en=plan.licence_type.name_en,
        state=LicenceState(row.state),
        version=row.current_version,
        issuer=issuer,
        read=LicenceRead(row, version, plan, opening),
    )


@strawberry.type
class LicenceQueries:
    @strawberry.field(
        description=(
            "The licences of the owner your grant covers, or under a legal mandate of the owner you name by resident "
            "ID number or unified social credit code. Needs licences:read. An owner you may not see, and one that "
            "does not exist, both give an empty list."
        )
    )
    def licences(
        self, info: Info[Context, None], types: list[str] | None = None, owner: str | None = None
    ) -> list[Licence]:
        return read_licences(info.context, wanted_of(_children(info.selected_fields)), types, owner)


def _children(selected: list[Selection]) -> list[Selection]:
    return [child for s in selected if isinstance(s, SelectedField) for child in s.selections]

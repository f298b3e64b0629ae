"""Issuer mutations: issue, renew, suspend, reinstate and revoke licences of the issuer's own types only.

An issuing department's client has the licences:issue scope and its department is the issuer: a licence type's
`issuer` must equal the client's department (compared here, and again by LicenceService). Expected failures
come back as union results with a message per field; each mutation's writes are undone together if it fails.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import date
from typing import Annotated

import strawberry
from strawberry.types import Info

from vault.api.context import Context
from vault.api.errors import BadUserInput, Forbidden
from vault.api.licences import LicenceStateEnum
from vault.api.limits import MAX_FIELD_NAMES, check_list
from vault.api.reads import NO_SUCH_OWNER, find_owner
from vault.licences import errors
from vault.licences.lifecycle import LicenceState, Step
from vault.licences.models import Licence as LicenceRow
from vault.licences.types import FieldType, LicenceType
from vault.oauth.scopes import Scope

MAX_REASON = 500
_INTEGER = re.compile(r"-?[0-9]{1,18}")


@strawberry.input(description="One field's value; integers and dates (yyyy-mm-dd) are written as strings.")
class FieldValueInput:
    name: str
    value: str


@strawberry.type(description="A licence as its issuer sees it after a change.")
class LicenceRecord:
    id: strawberry.ID
    type: str
    state: LicenceStateEnum  # type: ignore[valid-type]
    version: int
    valid_until: date | None


@strawberry.type(description="The change was made.")
class LicenceChanged:
    licence: LicenceRecord


@strawberry.type
class FieldProblem:
    field: str = strawberry.field(description="A licence field's name, or owner, type or reason.")
    message: str


@strawberry.type(description="Nothing was changed: the input breaks the rules named per field.")
class InvalidInput:
    message: str
    problems: list[FieldProblem]


@strawberry.type(name="IllegalTransition", description="Nothing was changed: the licence's state does not allow it.")
class IllegalTransitionResult:
    message: str
    state: LicenceStateEnum  # type: ignore[valid-type]


@strawberry.type(description="There is no licence with this id.")
class LicenceNotFound:
    message: str


IssueLicenceResult = Annotated[LicenceChanged | InvalidInput, strawberry.union("IssueLicenceResult")]
ChangeLicenceResult = Annotated[
    LicenceChanged | InvalidInput | IllegalTransitionResult | LicenceNotFound, strawberry.union("ChangeLicenceResult")
]


class _Invalid(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _department(context: Context) -> str:
    context.require(Scope.LICENCES_ISSUE)
    department = context.vault.catalogue.departments.get(context.agency.department)
    if department is None or not department.is_issuer:
        raise Forbidden("this client's department issues no licences")
    return department.code


def _own_type(context: Context, licence_type: LicenceType) -> str:
    department = _department(context)
    if licence_type.issuer != department:
        raise Forbidden(f"{department} does not issue {licence_type.code}; {licence_type.issuer} does")
    return department


def _values(licence_type: LicenceType, given: list[FieldValueInput]) -> dict[str, object]:
    check_list("values", given, MAX_FIELD_NAMES)
    values: dict[str, object] = {}
    for entry in given:
        if entry.name in values:
            raise _Invalid(entry.name, "given more than once")
        if entry.name not in licence_type.field_names:
            raise _Invalid(entry.name, f"{licence_type.code} has no field {entry.name!r}")
        if licence_type.field(entry.name).type is FieldType.INTEGER:
            if not _INTEGER.fullmatch(entry.value.strip()):
                raise _Invalid(entry.name, f"field {entry.name!r}: not an integer")
            values[entry.name] = int(entry.value)
        else:
            values[entry.name] = entry.value
    return values


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(message=message, problems=[FieldProblem(field=field, message=message)])


def _record(row: LicenceRow) -> LicenceChanged:
    return LicenceChanged(
        licence=LicenceRecord(
            id=strawberry.ID(str(row.id)),
            type=row.type_code,
            state=LicenceState(row.state),
            version=row.current_version,
            valid_until=row.valid_until,
        )
    )


def _atomic(
    context: Context, number_field: str, work: Callable[[], LicenceRow], existing: LicenceRow | None = None
) -> ChangeLicenceResult:
    """Run one change in a savepoint: an expected failure undoes it and becomes a union result."""
    try:
        with context.session.begin_nested():
            row = work()
    except _Invalid as problem:
        return _invalid(problem.field, problem.message)
    except errors.InvalidFieldValue as problem:
        return _invalid(problem.field, str(problem))
    except errors.DuplicateLicence as problem:
        return _invalid(number_field, str(problem))
    except errors.HolderNotAllowed as problem:
        return _invalid("owner", str(problem))
    except errors.IllegalTransition as problem:
        assert existing is not None  # only a change to an existing licence can be an illegal step
        return IllegalTransitionResult(message=str(problem), state=LicenceState(existing.state))
    except errors.NotTheIssuer as problem:
        raise Forbidden(str(problem)) from None
    return _record(row)


def _reason(reason: str | None, required: bool) -> str | None:
    text = (reason or "").strip()
    if required and not text:
        raise _Invalid("reason", "a reason is required")
    if len(text) > MAX_REASON:
        raise _Invalid("reason", f"at most {MAX_REASON} characters")
    return text or None


def _existing(context: Context, licence_id: strawberry.ID) -> LicenceRow | None:
    try:
        return context.session.get(LicenceRow, uuid.UUID(str(licence_id)))
    except ValueError:
        return None


def _change(
    context: Context, licence_id: strawberry.ID, step: Step, reason: str | None, official: str | None
) -> ChangeLicenceResult:
    row = _existing(context, licence_id)
    if row is None:
        _department(context)
        return LicenceNotFound(message="no licence with this id")
    licence_type = context.vault.catalogue.type(row.type_code)
    department = _own_type(context, licence_type)

    def work() -> LicenceRow:
        checked = _reason(reason, required=step is not Step.REINSTATE)
        return context.vault.licences.change(
            context.session, row.id, step, issuer_code=department, reason=checked, official=official
        )

    return _atomic(context, licence_type.number_field, work, row)


@strawberry.type
class IssuerMutations:
    @strawberry.mutation(description="Issue version 1 of a licence of one of your types to an owner.")
    def issue_licence(
        self,
        info: Info[Context, None],
        owner: str,
        type: str,
        values: list[FieldValueInput],
        official: str | None = None,
    ) -> IssueLicenceResult:
        context = info.context
        try:
            licence_type = context.vault.catalogue.type(type)
        except errors.UnknownLicenceType as problem:
            _department(context)
            return _invalid("type", str(problem))
        department = _own_type(context, licence_type)

        def work() -> LicenceRow:
            try:
                holder = find_owner(context.vault, context.session, owner)
            except BadUserInput as problem:
                raise _Invalid("owner", problem.message) from None
            if holder is None:
                raise _Invalid("owner", NO_SUCH_OWNER)
            return context.vault.licences.issue(
                context.session,
                issuer_code=department,
                owner_id=holder.id,
                type_code=licence_type.code,
                values=_values(licence_type, values),
                official=official,
            )

        result = _atomic(context, licence_type.number_field, work)
        assert isinstance(result, LicenceChanged | InvalidInput)
        return result

    @strawberry.mutation(description="A new signed version with the changes applied; the old one is superseded.")
    def renew_licence(
        self,
        info: Info[Context, None],
        id: strawberry.ID,
        changes: list[FieldValueInput],
        official: str | None = None,
    ) -> ChangeLicenceResult:
        context = info.context
        row = _existing(context, id)
        if row is None:
            _department(context)
            return LicenceNotFound(message="no licence with this id")
        licence_type = context.vault.catalogue.type(row.type_code)
        department = _own_type(context, licence_type)

        def work() -> LicenceRow:
            values = _values(licence_type, changes)
            if licence_type.number_field in values:
                raise _Invalid(licence_type.number_field, "renewal keeps the number: issue a new licence instead")
            return context.vault.licences.renew(
                context.session, row.id, issuer_code=department, changes=values, official=official
            )

        return _atomic(context, licence_type.number_field, work, row)

    @strawberry.mutation(description="Suspend an active licence (its status list says so at once).")
    def suspend_licence(
        self, info: Info[Context, None], id: strawberry.ID, reason: str, official: str | None = None
    ) -> ChangeLicenceResult:
        return _change(info.context, id, Step.SUSPEND, reason, official)

    @strawberry.mutation(description="Make a suspended licence active again.")
    def reinstate_licence(
        self, info: Info[Context, None], id: strawberry.ID, reason: str | None = None, official: str | None = None
    ) -> ChangeLicenceResult:
        return _change(info.context, id, Step.REINSTATE, reason, official)

    @strawberry.mutation(description="Revoke a licence for good.")
    def revoke_licence(
        self, info: Info[Context, None], id: strawberry.ID, reason: str, official: str | None = None
    ) -> ChangeLicenceResult:
        return _change(info.context, id, Step.REVOKE, reason, official)

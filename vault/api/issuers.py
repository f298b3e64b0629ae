"""Issuer mutations: issue, renew, suspend, reinstate and revoke licences of the issuer's own types only.

An issuing department's client has the licences:issue scope and its department is the issuer: a licence type's
`issuer` must equal the client's department (compared here, and again by LicenceService). Expected failures
come back as union results with a message per field; each mutation's writes are undone together if it fails.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from typing import Annotated

import strawberry
from strawberry.types import Info

from vault.api.context import Context
from vault.api.errors import BadUserInput, Forbidden
from vault.api.licences import LicenceStateEnum
from vault.api.limits import MAX_BULK_ROWS, MAX_FIELD_NAMES, check_list
from vault.api.reads import NO_SUCH_OWNER, find_owner
from vault.crypto.free_text import TextProblem, check_text
from vault.licences import errors
from vault.licences.bulk import BulkIssuer, BulkRow, RowOutcome, RowProblem, RowStatus, read_values
from vault.licences.lifecycle import LicenceState, Step
from vault.licences.models import Licence as LicenceRow
from vault.licences.types import LicenceType
from vault.oauth.scopes import Scope
from vault.owners.models import Owner, OwnerKind

MAX_REASON = 500
MAX_OFFICIAL = 100


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


class _Problems(Exception):
    """Every problem with the input, one per field, reported together."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(m for _, m in problems))
        self.problems = problems


def issuing_department(context: Context) -> str:
    context.require(Scope.LICENCES_ISSUE)
    department = context.vault.catalogue.departments.get(context.agency.department)
    if department is None or not department.is_issuer:
        raise Forbidden("this client's department issues no licences")
    return department.code


def own_type(context: Context, licence_type: LicenceType) -> str:
    department = issuing_department(context)
    if licence_type.issuer != department:
        raise Forbidden(f"{department} does not issue {licence_type.code}; {licence_type.issuer} does")
    return department


def _values(licence_type: LicenceType, given: list[FieldValueInput]) -> tuple[dict[str, object], list[tuple[str, str]]]:
    """The values given, by name, and a problem for each entry that cannot even be read as its field's type."""
    check_list("values", given, MAX_FIELD_NAMES)
    values, problems = read_values(licence_type, [(entry.name, entry.value) for entry in given])
    return values, [(p.field, str(p)) for p in problems]


def _checked(
    context: Context, holder: Owner | None, licence_type: LicenceType, given: list[FieldValueInput]
) -> dict[str, object]:
    """The parsed values if every check passes (holder identity included); else _Problems with all of them."""
    values, problems = _values(licence_type, given)
    reported = {field for field, _ in problems}
    checked, found = licence_type.check_values(values)
    if holder is not None:
        found += context.vault.licences.holder_problems(context.session, holder, licence_type, checked)
    problems += [(p.field, str(p)) for p in found if p.field not in reported]
    if problems:
        raise _Problems(problems)
    return values


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(message=message, problems=[FieldProblem(field=field, message=message)])


def _all_invalid(problems: list[tuple[str, str]]) -> InvalidInput:
    message = f"{len(problems)} problems: " + "; ".join(m for _, m in problems) if len(problems) > 1 else problems[0][1]
    return InvalidInput(message=message, problems=[FieldProblem(field=f, message=m) for f, m in problems])


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
    except _Problems as problems:
        return _all_invalid(problems.problems)
    except errors.InvalidValues as invalid:
        return _all_invalid([(p.field, str(p)) for p in invalid.problems])
    except errors.InvalidFieldValue as problem:
        return _invalid(problem.field, str(problem))
    except errors.HolderErased as problem:
        return _invalid("id", str(problem))
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


def _reason(reason: str | None, required: bool, problems: list[tuple[str, str]]) -> str | None:
    """The reason, checked (length, characters, NFC); a problem is added to `problems` instead of raised."""
    try:
        text = check_text(reason or "", max_length=MAX_REASON, multiline=True)
    except TextProblem as problem:
        problems.append(("reason", f"reason: {problem}"))
        return None
    if required and not text:
        problems.append(("reason", "a reason is required"))
    return text or None


def _official(official: str | None, problems: list[tuple[str, str]]) -> str | None:
    """The official's name or badge number, checked like any free text; added to `problems` if it breaks a rule."""
    try:
        return check_text(official or "", max_length=MAX_OFFICIAL) or None
    except TextProblem as problem:
        problems.append(("official", f"official: {problem}"))
        return None


def existing_licence(context: Context, licence_id: strawberry.ID) -> LicenceRow | None:
    try:
        return context.session.get(LicenceRow, uuid.UUID(str(licence_id)))
    except ValueError:
        return None


def _change(
    context: Context, licence_id: strawberry.ID, step: Step, reason: str | None, official: str | None
) -> ChangeLicenceResult:
    row = existing_licence(context, licence_id)
    if row is None:
        issuing_department(context)
        return LicenceNotFound(message="no licence with this id")
    licence_type = context.vault.catalogue.type(row.type_code)
    department = own_type(context, licence_type)

    def work() -> LicenceRow:
        problems: list[tuple[str, str]] = []
        checked = _reason(reason, step is not Step.REINSTATE, problems)
        official_text = _official(official, problems)
        if problems:
            raise _Problems(problems)
        return context.vault.licences.change(
            context.session, row.id, step, issuer_code=department, reason=checked, official=official_text
        )

    return _atomic(context, licence_type.number_field, work, row)


@strawberry.input(description="One licence of a bulk issuance: the owner's identifier, the type, the values.")
class LicenceInput:
    owner: str
    type: str
    values: list[FieldValueInput]


IssueRowStatus = strawberry.enum(RowStatus, name="IssueRowStatus", description="What became of one row.")


@strawberry.type(description="One row of a bulk issuance: its index in the input (from 0) and what became of it.")
class IssueRowResult:
    index: int
    status: IssueRowStatus  # type: ignore[valid-type]
    licence: LicenceRecord | None = strawberry.field(description="The licence issued (or before: ALREADY_ISSUED).")
    problems: list[FieldProblem] = strawberry.field(description="Why an INVALID row was not issued, per field.")


@strawberry.type(description="Valid rows were issued and committed together; invalid rows wrote nothing.")
class IssueLicencesResult:
    issued: int
    already_issued: int
    invalid: int
    rows: list[IssueRowResult]


def _row_result(outcome: RowOutcome, type_code: str) -> IssueRowResult:
    licence = None
    if outcome.licence_id is not None and outcome.state is not None:
        licence = LicenceRecord(
            id=strawberry.ID(str(outcome.licence_id)),
            type=type_code,
            state=outcome.state,
            version=1,
            valid_until=outcome.valid_until,
        )
    problems = [FieldProblem(field=p.field, message=p.message) for p in outcome.problems]
    return IssueRowResult(index=outcome.index, status=outcome.status, licence=licence, problems=problems)


def _bulk_row(entry: LicenceInput) -> BulkRow:
    return BulkRow(entry.owner, entry.type, [(value.name, value.value) for value in entry.values])


@strawberry.type
class IssuerMutations:
    @strawberry.mutation(
        description=f"Issue up to {MAX_BULK_ROWS} licences of your types: each row is checked as issueLicence checks"
        " it; the valid rows are issued and committed together, each invalid row is reported by index and writes"
        " nothing. A row whose number was already issued to the same owner is ALREADY_ISSUED, so a retry is safe."
    )
    def issue_licences(
        self, info: Info[Context, None], input: list[LicenceInput], official: str | None = None
    ) -> IssueLicencesResult:
        context = info.context
        department = issuing_department(context)
        check_list("input", input, MAX_BULK_ROWS)
        problems: list[tuple[str, str]] = []
        official_text = _official(official, problems)
        if problems:
            raise BadUserInput(problems[0][1], argument="official")
        too_long = {n for n, entry in enumerate(input) if len(entry.values) > MAX_FIELD_NAMES}
        rows = [BulkRow("", "", []) if n in too_long else _bulk_row(entry) for n, entry in enumerate(input)]
        outcomes = BulkIssuer(context.vault.licences).issue_batch(
            context.session, rows, issuer_code=department, official=official_text
        )
        for n in too_long:
            message = f"values takes at most {MAX_FIELD_NAMES} entries, got {len(input[n].values)}"
            outcomes[n] = RowOutcome(n, RowStatus.INVALID, problems=[RowProblem("values", message)])
        results = [_row_result(o, input[o.index].type) for o in outcomes]
        count = {status: sum(1 for o in outcomes if o.status is status) for status in RowStatus}
        return IssueLicencesResult(
            issued=count[RowStatus.ISSUED],
            already_issued=count[RowStatus.ALREADY_ISSUED],
            invalid=count[RowStatus.INVALID],
            rows=results,
        )

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
            issuing_department(context)
            return _invalid("type", str(problem))
        department = own_type(context, licence_type)

        def work() -> LicenceRow:
            holder, problems = None, []
            try:
                holder = find_owner(context.vault, context.session, owner)
            except BadUserInput as problem:
                problems.append(("owner", problem.message))
            else:
                if holder is None:
                    problems.append(("owner", NO_SUCH_OWNER))
                elif OwnerKind(holder.kind) not in licence_type.holders:
                    problems.append(("owner", f"a {holder.kind} cannot hold a {licence_type.code}"))
                    holder = None  # its identity is not compared with a licence it cannot hold
            try:
                checked = _checked(context, holder, licence_type, values)
            except _Problems as found:
                problems += found.problems
            official_text = _official(official, problems)
            if problems or holder is None:
                raise _Problems(problems)
            return context.vault.licences.issue(
                context.session,
                issuer_code=department,
                owner_id=holder.id,
                type_code=licence_type.code,
                values=checked,
                official=official_text,
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
        row = existing_licence(context, id)
        if row is None:
            issuing_department(context)
            return LicenceNotFound(message="no licence with this id")
        licence_type = context.vault.catalogue.type(row.type_code)
        department = own_type(context, licence_type)

        def work() -> LicenceRow:
            values, problems = _values(licence_type, changes)
            if licence_type.number_field in values:
                problems.append((licence_type.number_field, "renewal keeps the number: issue a new licence instead"))
            official_text = _official(official, problems)
            if problems:
                raise _Problems(problems)
            return context.vault.licences.renew(
                context.session, row.id, issuer_code=department, changes=values, official=official_text
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

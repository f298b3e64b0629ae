"""The case-management mutation: register a case under a legal mandate, with its owners and its validity.

A mandate with `requires_registered_case` issues tokens only for a registered case in force, and only for owners
the registration names. The client needs the cases:register scope and an agency the mandate admits.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

import strawberry
from strawberry.types import Info

from vault.api.context import Context
from vault.api.limits import check_list
from vault.mandates.errors import MandateRefused
from vault.mandates.services import MAX_CASE_OWNERS, MandateService, registration_end
from vault.oauth.scopes import Scope
from vault.policy.errors import UnknownMandate


@strawberry.type(description="The case is registered; agencies may now ask for mandate tokens for it.")
class CaseRegistered:
    id: strawberry.ID
    mandate: str
    owners: int = strawberry.field(description="How many owners the registration covers.")
    valid_until: date = strawberry.field(description="The last day the registration is in force (UTC).")


@strawberry.type(description="Nothing was registered; `field` names the argument at fault.")
class CaseRefused:
    field: str
    message: str


CaseRegistrationResult = Annotated[CaseRegistered | CaseRefused, strawberry.union("CaseRegistrationResult")]


@strawberry.type
class CaseMutations:
    @strawberry.mutation(
        description=(
            "Register (or re-register, replacing owners and validity) a case under a legal mandate. Needs "
            "cases:register and an agency the mandate admits. The case reference must match the mandate's format."
        )
    )
    def register_case(
        self,
        info: Info[Context, None],
        mandate: str,
        case_reference: str,
        owners: list[str],
        valid_until: date,
    ) -> CaseRegistrationResult:
        context = info.context
        context.require(Scope.CASES_REGISTER)
        check_list("owners", owners, MAX_CASE_OWNERS)
        catalogue = context.vault.policy.catalogue
        try:
            known = catalogue.mandate(mandate)
        except UnknownMandate:
            return CaseRefused(field="mandate", message=f"no legal mandate {mandate!r}")
        agency = context.agency
        if agency.category not in known.agency_categories or agency.department not in known.departments:
            return CaseRefused(field="mandate", message=f"this agency may not register cases under {mandate}")
        service = MandateService(context.vault.keys, context.vault.audit, catalogue)
        try:
            case = service.register_case(
                context.session,
                mandate=known,
                case_reference=case_reference,
                owners=owners,
                valid_until=registration_end(valid_until),
                actor=f"agency:{agency.client_id}",
                now=context.now,
            )
        except MandateRefused as error:
            return CaseRefused(field=_argument(error.field), message=error.message)
        return CaseRegistered(
            id=strawberry.ID(str(case.id)), mandate=case.mandate, owners=len(case.owners), valid_until=valid_until
        )


def _argument(field: str) -> str:
    return {"case_reference": "caseReference", "valid_until": "validUntil"}.get(field, field)

"""The issuer path for legal representatives: after a business-licence change names a new legal representative,
the issuing department (market regulation) makes that person the enterprise's legal representative in the vault.

The person must be the one the licence names (their name on record equals the licence's legal_representative
field), so an issuer cannot hand an enterprise to someone its own licence does not name.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import Annotated

import strawberry
from strawberry.types import Info

from vault.api.context import Context
from vault.api.errors import BadUserInput
from vault.api.issuers import (
    FieldProblem,
    InvalidInput,
    LicenceNotFound,
    existing_licence,
    issuing_department,
    own_type,
)
from vault.api.reads import NO_SUCH_OWNER, find_owner
from vault.clock import utcnow
from vault.crypto.errors import CryptoError
from vault.licences.lifecycle import LicenceState
from vault.owners.models import OwnerKind

LEGAL_REPRESENTATIVE_FIELD = "legal_representative"


@strawberry.type(description="The person is now the enterprise's legal representative; earlier ones were ended.")
class LegalRepresentativeSet:
    link: strawberry.ID
    valid_from: date


SetLegalRepresentativeResult = Annotated[
    LegalRepresentativeSet | InvalidInput | LicenceNotFound, strawberry.union("SetLegalRepresentativeResult")
]


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(message=message, problems=[FieldProblem(field=field, message=message)])


def _same_name(a: str, b: str) -> bool:
    return unicodedata.normalize("NFC", a).strip() == unicodedata.normalize("NFC", b).strip()


@strawberry.type
class RepresentativeMutations:
    @strawberry.mutation(
        description=(
            "Make the person the legal representative of the enterprise holding this licence (one of your types "
            "with a legal_representative field, in force, naming that person), ending every earlier legal "
            "representative. Recorded in the access log, where the enterprise sees it."
        )
    )
    def set_legal_representative(
        self, info: Info[Context, None], licence: strawberry.ID, person: str
    ) -> SetLegalRepresentativeResult:
        context = info.context
        row = existing_licence(context, licence)
        if row is None:
            issuing_department(context)  # only an issuer learns that an id names no licence
            return LicenceNotFound(message="no licence with this id")
        licence_type = context.vault.catalogue.type(row.type_code)
        department = own_type(context, licence_type)
        if LEGAL_REPRESENTATIVE_FIELD not in licence_type.field_names:
            return _invalid("licence", f"a {licence_type.code} names no legal representative")
        vault, session = context.vault, context.session
        current = vault.licences.get(session, row.id)
        if current.state != LicenceState.ACTIVE:
            return _invalid("licence", f"the licence is {current.state}: only a licence in force names one")
        try:
            holder = find_owner(vault, session, person)
        except BadUserInput as problem:
            return _invalid("person", problem.message)
        if holder is None or holder.kind != OwnerKind.PERSON:
            return _invalid("person", NO_SUCH_OWNER)
        try:
            named = vault.licences.values(session, current, [LEGAL_REPRESENTATIVE_FIELD]).get(
                LEGAL_REPRESENTATIVE_FIELD
            )
            name = vault.owners.details(session, holder).name
        except CryptoError:
            return _invalid("licence", "the enterprise or the person was erased")
        if not isinstance(named, str) or not _same_name(named, name):
            return _invalid("person", "is not the legal representative this licence names: renew the licence first")
        with session.begin_nested():
            link = vault.owners.set_legal_representative(
                session,
                enterprise_id=current.owner_id,
                person_id=holder.id,
                valid_from=utcnow().date(),
                actor=f"issuer:{department}",
            )
        return LegalRepresentativeSet(link=strawberry.ID(str(link.id)), valid_from=link.valid_from)

"""Verifying presented licences without consent: genuine and in force, or the precise reason it is not.

The answer holds only what the presentation itself carries (its issuer, type, expiry and disclosed fields) and
its status from the issuer's public status list; nothing is read from the owner's data.
"""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry
from strawberry.types import Info

from vault.api.context import Context
from vault.api.limits import MAX_PRESENTATIONS, check_list
from vault.licences.errors import UnknownLicenceType
from vault.licences.sdjwt import Verified
from vault.licences.verify import explain
from vault.oauth.scopes import Scope
from vault.wiring import Vault


@strawberry.type(description="A field the presentation discloses, exactly as it was signed.")
class DisclosedField:
    name: str
    value: str


@strawberry.type(description="The outcome of verifying one presentation.")
class Verification:
    valid: bool = strawberry.field(description="Genuine (issuer-signed, unaltered) and in force.")
    reason: str = strawberry.field(
        description=(
            "ok, malformed, wrong_type, unknown_issuer_or_key, bad_signature, digest_mismatch, "
            "duplicate_disclosure, expired, suspended, revoked or status_unavailable."
        )
    )
    explanation: str
    issuer: str | None = strawberry.field(description="Filled once the issuer's signature verified.")
    licence_type: str | None
    expires_at: datetime | None
    fields: list[DisclosedField] = strawberry.field(description="Empty unless valid.")


def _verification(vault: Vault, result: Verified) -> Verification:
    licence_type = None
    if result.vct is not None:
        try:
            licence_type = vault.catalogue.by_vct(result.vct).code
        except UnknownLicenceType:
            licence_type = None
    return Verification(
        valid=result.ok,
        reason=result.reason,
        explanation=explain(result),
        issuer=result.issuer,
        licence_type=licence_type,
        expires_at=datetime.fromtimestamp(result.exp, UTC) if result.exp is not None else None,
        fields=[DisclosedField(name=k, value=str(v)) for k, v in result.claims.items()],
    )


def verify(context: Context, presentations: list[str]) -> list[Verification]:
    context.require(Scope.LICENCES_VERIFY)
    results = context.vault.licences.verify_many(context.session, presentations)
    return [_verification(context.vault, result) for result in results]


@strawberry.type
class VerificationQueries:
    @strawberry.field(description="Verify one presented licence. Needs licences:verify; no consent is involved.")
    def verify_licence(self, info: Info[Context, None], presentation: str) -> Verification:
        return verify(info.context, [presentation])[0]

    @strawberry.field(
        description=f"Verify up to {MAX_PRESENTATIONS} presentations in one call (pass them as a variable)."
    )
    def verify_licences(self, info: Info[Context, None], presentations: list[str]) -> list[Verification]:
        check_list("presentations", presentations, MAX_PRESENTATIONS)
        return verify(info.context, presentations)

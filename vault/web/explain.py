"""The access log's reasons in words a person reads: which consent or law, allowed or refused and why.

The log records policy ids and short technical phrases; citizens see the sentences below instead, and staff see the
raw ids as well, in a details disclosure. A reason nothing here knows becomes a general sentence, never the raw text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vault.licences.types import LicenceType, Sensitivity
from vault.policy.catalogue import ServiceItem
from vault.web.i18n import N_

POLICIES: dict[str, str] = {
    "request-consent-for-own-item": N_("The agency performs this service, so it may ask for consent."),
    "consent-read": N_("Consent was given for this read."),
    "consent-ask": N_("Consent was given for this question."),
    "grant-question-not-asked-by-item": N_("The service does not ask this question."),
    "agency-suspended": N_("The agency is suspended."),
    "item-of-another-department": N_("The service belongs to another department."),
    "biometric-never-under-consent": N_("Photos and other biometric data never leave under consent."),
    "owner-cannot-hold-licence-type": N_("This kind of owner does not hold this kind of licence."),
    "grant-of-another-agency": N_("The consent was given to another agency."),
    "grant-of-another-owner": N_("The consent was given for someone else's data."),
    "grant-not-active": N_("The consent is no longer in force (withdrawn, ended or used up)."),
    "grant-outside-validity": N_("The consent's period of validity has ended."),
    "grant-exhausted": N_("The consent was already used as often as allowed."),
    "grant-purpose-mismatch": N_("The read was for another purpose than the one consented to."),
    "grant-item-not-performed": N_("The agency no longer performs this service."),
    "grant-field-not-needed-by-item": N_("The service does not need this field."),
    "grant-longer-than-item-allows": N_("The consent runs longer than the service allows."),
    "grant-reuse-of-one-time-item": N_("The service allows one read only, and it was made."),
    "mandate-read": N_("A law allows this agency to read these fields without consent."),
    "mandate-not-for-this-agency": N_("The law invoked does not cover this agency."),
    "mandate-case-reference-required": N_("The law requires a case reference, and none was given."),
    "police-read-needs-case-reference": N_("A police read needs a case reference, and none was given."),
    "full-ordinary-field-under-consent": N_("Ordinary fields go out in full under consent."),
    "masked-by-service-item": N_("The service asks for some fields masked."),
    "full-sensitive-field-needed-by-item": N_("The service needs some sensitive fields in full."),
    "full-under-mandate": N_("The fields the law names go out in full."),
}
PHRASES: dict[str, str] = {
    "owner consent": N_("The owner consented."),
    "owner denied": N_("The owner refused."),
    "request expired": N_("Nobody answered the request in time."),
    "revoked by owner": N_("The owner withdrew the consent."),
    "consent withdrawn by owner": N_("The owner withdrew every consent given to this agency."),
    "validity ended": N_("Its period of validity ended."),
    "use limit reached": N_("It was used as often as allowed."),
    "authorization code redeemed": N_("The agency collected its access after the consent."),
    "backchannel consent": N_("The agency collected its access after the consent given at its counter."),
    "refresh token rotated": N_("The agency renewed its access under the same consent."),
    "authorization code presented twice": N_(
        "A used one-time code was presented again, so the agency's access was cancelled to be safe."
    ),
    "rotated refresh token presented again: family revoked": N_(
        "An old access key was presented again, so the agency's access was cancelled to be safe."
    ),
}
PREFIXES: dict[str, str] = {
    "legal mandate ": N_("Access under a law, for a stated case."),
    "no field ": N_("The agency asked for a field that does not exist."),
    "no predicate ": N_("The agency asked a question that does not exist."),
    "a question is asked under": N_("A question is answered only under your consent."),
}
ALLOWED_BY_RULES = N_("Allowed by the vault's rules.")
REFUSED_BY_RULES = N_("Refused by the vault's rules.")
POLICY_ID = re.compile(r"\b[a-z][a-z0-9]*(?:-[a-z0-9]+)+\b")
_DECISION = re.compile(r"^(?:[\w./-]+: )?(permit|forbid): (.+)$")


@dataclass(frozen=True)
class Explanation:
    """Sentences (msgids) for the owner, and the policy ids behind them for staff."""

    sentences: tuple[str, ...]
    policy_ids: tuple[str, ...]
    free_text: str | None = None  # a reason a person typed (staff, an issuer), shown as they wrote it


def explain(reason: str | None, decision: str | None, *, typed_by_person: bool = False) -> Explanation:
    """The reason recorded with an event, explained; `typed_by_person` when staff or an issuer wrote it."""
    if not reason:
        return Explanation((), ())
    if typed_by_person and reason not in PHRASES:
        return Explanation((), (), free_text=reason)
    sentences: list[str] = []
    ids: list[str] = []
    for part in (p.strip() for p in reason.split(";")):
        if not part:
            continue
        matched = _DECISION.match(part)
        if matched:
            for policy in POLICY_ID.findall(matched.group(2)):
                ids.append(policy)
                sentences.append(POLICIES.get(policy, ALLOWED_BY_RULES if matched.group(1) == "permit" else ""))
            continue
        phrase = PHRASES.get(part) or next((m for p, m in PREFIXES.items() if part.startswith(p)), None)
        if phrase is None:
            phrase = REFUSED_BY_RULES if decision == "deny" else ALLOWED_BY_RULES
            ids.extend(POLICY_ID.findall(part))
        sentences.append(phrase)
    fallback = REFUSED_BY_RULES if decision == "deny" else ALLOWED_BY_RULES
    unique = tuple(dict.fromkeys(s or fallback for s in sentences))
    return Explanation(unique, tuple(dict.fromkeys(ids)))


def goes_out_masked(item: ServiceItem | None, licence_type: LicenceType, field: str) -> bool:
    """Whether a field released under consent for `item` leaves masked (masking.cedar, read for the owner)."""
    sensitivity = licence_type.field(field).sensitivity
    if item is None:
        return sensitivity is not Sensitivity.PUBLIC
    if sensitivity is Sensitivity.SENSITIVE:
        return field not in item.in_full.get(licence_type.code, ())
    return field in item.masked.get(licence_type.code, ())

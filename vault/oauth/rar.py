"""Rich Authorization Requests (RFC 9396): what an agency may put in `authorization_details`.

licence_access  {"type": "licence_access", "service_item": "<code>",
                 "fields": {"<licence type>": ["<field>", ...]},
                 "questions": ["<predicate id>", ...]}     both optional: default = the item's; questions only
                                                           (no fields member) asks for no values at all
legal_mandate   {"type": "legal_mandate", "mandate": "<id>", "case_reference": "<case no.>",
                 "owners": ["<resident ID number or credit code>", ...], "official": "<officer id>",
                 "official_name": "<name>", "sensitive_fields": ["<licence type>/<field>", ...]}
                 official_name and sensitive_fields optional; see docs/api.md for what is checked
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vault import jsonbounds
from vault.oauth.errors import InvalidAuthorizationDetailsError

LICENCE_ACCESS = "licence_access"
LEGAL_MANDATE = "legal_mandate"
TYPES = (LICENCE_ACCESS, LEGAL_MANDATE)


@dataclass(frozen=True)
class LicenceAccess:
    service_item: str
    fields: Mapping[str, list[str]] | None
    questions: list[str] | None = None


@dataclass(frozen=True)
class LegalMandate:
    """A mandate token request as sent: the text is checked against the mandate by vault.mandates.services."""

    mandate: str
    case_reference: object
    owners: tuple[object, ...]
    official: object
    official_name: object = None
    sensitive_fields: tuple[object, ...] = ()


_MANDATE_MEMBERS = {"type", "mandate", "case_reference", "owners", "official", "official_name", "sensitive_fields"}


def _parse(raw: str | None) -> dict[str, Any]:
    if not raw:
        raise InvalidAuthorizationDetailsError("authorization_details is required")
    try:
        details = jsonbounds.loads(raw)
    except jsonbounds.TooDeep as error:
        raise InvalidAuthorizationDetailsError(f"authorization_details: {error}") from None
    except ValueError:
        raise InvalidAuthorizationDetailsError("authorization_details is not valid JSON") from None
    if not isinstance(details, list) or len(details) != 1 or not isinstance(details[0], dict):
        raise InvalidAuthorizationDetailsError("authorization_details must be an array of exactly one object")
    detail: dict[str, Any] = details[0]
    if detail.get("type") not in TYPES:
        raise InvalidAuthorizationDetailsError(f"authorization_details type must be one of {', '.join(TYPES)}")
    return detail


def licence_access(raw: str | None) -> LicenceAccess:
    detail = _parse(raw)
    if detail["type"] != LICENCE_ACCESS:
        raise InvalidAuthorizationDetailsError("this grant takes authorization_details of type licence_access")
    unknown = set(detail) - {"type", "service_item", "fields", "questions"}
    if unknown:
        raise InvalidAuthorizationDetailsError(f"unknown member {sorted(unknown)[0]!r} in authorization_details")
    item = detail.get("service_item")
    if not isinstance(item, str) or not item:
        raise InvalidAuthorizationDetailsError("licence_access needs a service_item")
    questions = detail.get("questions")
    if questions is not None and (
        not isinstance(questions, list) or not questions or not all(isinstance(q, str) and q for q in questions)
    ):
        raise InvalidAuthorizationDetailsError("questions must be a non-empty list of predicate ids")
    fields = detail.get("fields")
    if fields is None:
        return LicenceAccess(item, None, questions)
    if not isinstance(fields, dict) or not all(
        isinstance(t, str) and isinstance(names, list) and names and all(isinstance(n, str) for n in names)
        for t, names in fields.items()
    ):
        raise InvalidAuthorizationDetailsError("fields must map licence types to non-empty lists of field names")
    return LicenceAccess(item, fields, questions)


def legal_mandate(raw: str | None) -> LegalMandate:
    detail = _parse(raw)
    if detail["type"] != LEGAL_MANDATE:
        raise InvalidAuthorizationDetailsError("client credentials take authorization_details of type legal_mandate")
    unknown = set(detail) - _MANDATE_MEMBERS
    if unknown:
        raise InvalidAuthorizationDetailsError(f"unknown member {sorted(unknown)[0]!r} in authorization_details")
    mandate = detail.get("mandate")
    if not isinstance(mandate, str) or not mandate:
        raise InvalidAuthorizationDetailsError("legal_mandate needs the mandate id")
    if "case_reference" not in detail:
        raise InvalidAuthorizationDetailsError("legal_mandate needs a case_reference")
    owners = detail.get("owners")
    if not isinstance(owners, list) or not owners:
        raise InvalidAuthorizationDetailsError("legal_mandate needs owners: the identifiers of the owners it covers")
    if "official" not in detail:
        raise InvalidAuthorizationDetailsError("legal_mandate needs official: the identifier of the officer")
    sensitive = detail.get("sensitive_fields", [])
    if not isinstance(sensitive, list):
        raise InvalidAuthorizationDetailsError("sensitive_fields must be a list of <licence type>/<field>")
    return LegalMandate(
        mandate=mandate,
        case_reference=detail["case_reference"],
        owners=tuple(owners),
        official=detail["official"],
        official_name=detail.get("official_name"),
        sensitive_fields=tuple(sensitive),
    )


def granted_licence_access(
    service_item: str, fields: Mapping[str, list[str]], questions: Mapping[str, Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The authorization_details actually granted, as echoed in token responses and introspection."""
    detail: dict[str, Any] = {"type": LICENCE_ACCESS, "service_item": service_item, "fields": dict(fields)}
    if questions:
        detail["questions"] = [{"predicate": p, "parameters": dict(questions[p])} for p in sorted(questions)]
    return [detail]

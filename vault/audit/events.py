"""What an access-log entry may say. There is no slot for a value: names of fields, never their contents."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    AGENCY_REGISTERED = "agency.registered"
    AGENCY_SUSPENDED = "agency.suspended"
    AGENCY_REINSTATED = "agency.reinstated"
    AUDIT_CHECKPOINT = "audit.checkpoint"
    CONSENT_APPROVED = "consent.approved"
    CONSENT_DENIED = "consent.denied"
    CONSENT_EXPIRED = "consent.expired"
    CONSENT_REQUESTED = "consent.requested"
    FIELDS_DENIED = "fields.denied"
    FIELDS_RELEASED = "fields.released"
    GRANT_ACTIVATED = "grant.activated"
    GRANT_EXHAUSTED = "grant.exhausted"
    GRANT_EXPIRED = "grant.expired"
    GRANT_REVOKED = "grant.revoked"
    KEYS_RETIRED = "keys.retired"
    KEYS_ROTATED = "keys.rotated"
    LICENCE_ACTIVATED = "licence.activated"
    LICENCE_EXPIRED = "licence.expired"
    LICENCE_ISSUED = "licence.issued"
    LICENCE_PRESENTED = "licence.presented"
    LICENCE_REINSTATED = "licence.reinstated"
    LICENCE_RENEWED = "licence.renewed"
    LICENCE_REVOKED = "licence.revoked"
    LICENCE_SUSPENDED = "licence.suspended"
    LICENCE_VIEWED = "licence.viewed"
    MANDATE_CASE_REGISTERED = "mandate.case_registered"
    OWNER_CREATED = "owner.created"
    OWNER_ENROLMENT_ISSUED = "owner.enrolment_issued"
    OWNER_ENROLLED = "owner.enrolled"
    OWNER_ERASED = "owner.erased"
    OWNER_ERASURE_REQUESTED = "owner.erasure_requested"
    OWNER_LOOKED_UP = "owner.looked_up"
    PREDICATE_ANSWERED = "predicate.answered"
    PREDICATE_DENIED = "predicate.denied"
    OWNER_EXPORTED = "owner.exported"
    REPRESENTATIVE_ADDED = "representative.added"
    REPRESENTATIVE_ENDED = "representative.ended"
    REPRESENTATIVE_LIMITED = "representative.limited"
    STAFF_EXPORTED = "staff.exported"
    STAFF_VIEWED = "staff.viewed"
    TOKEN_CODE_REPLAYED = "token.code_replayed"
    TOKEN_ISSUED = "token.issued"
    TOKEN_REFRESH_REPLAYED = "token.refresh_replayed"
    TOKEN_REFUSED = "token.refused"
    TOKEN_REVOKED = "token.revoked"


@dataclass(frozen=True)
class Event:
    """One thing that happened: who, to whose data, which fields, why, and what was decided."""

    action: Action
    actor: str
    owner_id: uuid.UUID | None = None
    official: str | None = None
    licence_type: str | None = None
    licence_id: uuid.UUID | None = None
    fields: tuple[str, ...] = ()
    denied_fields: tuple[str, ...] = ()
    masked_fields: tuple[str, ...] = ()  # those of `fields` that went out masked; the rest went out in full
    purpose: str | None = None
    service_item: str | None = None
    grant_id: uuid.UUID | None = None
    mandate: str | None = None
    decision: str | None = None
    reason: str | None = None
    request_id: str | None = None
    detail: Mapping[str, str | int] = field(default_factory=dict)

    def body(self, *, event_id: uuid.UUID, at: datetime) -> dict[str, Any]:
        """The canonical entry that is hashed into the tree; empty parts are left out.

        Version 2 carries no index and no predecessor: it is written before the sequencer gives it a place, and
        the tree (with checkpoints the witnesses cosign) fixes its order. Version 1 entries, older, carry both.
        """
        body: dict[str, Any] = {
            "v": 2,
            "id": str(event_id),
            "time": at.isoformat(timespec="microseconds"),
            "action": self.action.value,
            "actor": self.actor,
        }
        optional: dict[str, Any] = {
            "owner": str(self.owner_id) if self.owner_id else None,
            "official": self.official,
            "licence_type": self.licence_type,
            "licence": str(self.licence_id) if self.licence_id else None,
            "fields": sorted(self.fields) or None,
            "denied_fields": sorted(self.denied_fields) or None,
            "masked_fields": sorted(self.masked_fields) or None,
            "purpose": self.purpose,
            "service_item": self.service_item,
            "grant": str(self.grant_id) if self.grant_id else None,
            "mandate": self.mandate,
            "decision": self.decision,
            "reason": self.reason,
            "request_id": self.request_id,
            "detail": dict(self.detail) or None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return body

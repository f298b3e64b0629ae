"""Consent: open a request for one service item, let the owner narrow, approve or deny it, keep and end grants."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session
from sqlmodel import col, select

from vault.audit.events import Action, Event
from vault.audit.services import AuditLog
from vault.clock import utcnow
from vault.consent.errors import (
    GrantNotFound,
    InvalidAuthorizationDetails,
    NotAuthorisedToConsent,
    RequestNotAllowed,
    RequestNotFound,
)
from vault.consent.interfaces import AgencyDirectory, RevocationListener
from vault.consent.lifecycle import GrantState, RequestState, grant_step, request_step
from vault.consent.models import ConsentRequest, Grant, GrantEvent
from vault.crypto import jws
from vault.crypto.services import KeyService
from vault.owners.models import Owner, OwnerKind
from vault.owners.services import OwnerService
from vault.policy.catalogue import ServiceItem, ServiceUse
from vault.policy.engine import GrantInfo, PolicyEngine
from vault.policy.errors import UnknownServiceItem

RECEIPT_TYPE = "consent-receipt+jwt"
REQUEST_LIFETIME = {"redirect": timedelta(minutes=10), "backchannel": timedelta(minutes=10)}


def fields_json(fields: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    return {t: sorted(set(names)) for t, names in sorted(fields.items()) if names}


def field_names(fields: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    return tuple(f"{t}/{n}" for t, names in sorted(fields.items()) for n in sorted(names))


@dataclass(frozen=True)
class Decider:
    """Who is deciding: the signed-in person, and the owner they act for (themself or an enterprise)."""

    person_id: uuid.UUID
    owner_id: uuid.UUID

    @property
    def actor(self) -> str:
        return f"owner:{self.person_id}"


class ConsentService:
    def __init__(
        self,
        keys: KeyService,
        audit: AuditLog,
        policy: PolicyEngine,
        owners: OwnerService,
        agencies: AgencyDirectory,
        issuer: str,
    ) -> None:
        self.keys = keys
        self.audit = audit
        self.policy = policy
        self.owners = owners
        self.agencies = agencies
        self.issuer = issuer
        self.revocation_listeners: list[RevocationListener] = []

    # requests

    def requested_fields(self, item: ServiceItem, asked: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]]:
        """The fields a request may ask: the item's own, or a subset of them; anything beyond is refused."""
        if asked is None:
            return fields_json(item.fields)
        for licence_type, names in asked.items():
            allowed = set(item.fields.get(licence_type, ()))
            if not allowed:
                raise InvalidAuthorizationDetails(f"service item {item.code} needs no {licence_type}")
            extra = sorted(set(names) - allowed)
            if extra:
                raise InvalidAuthorizationDetails(f"service item {item.code} does not need {licence_type}/{extra[0]}")
        chosen = fields_json(asked)
        if not chosen:
            raise InvalidAuthorizationDetails("the request names no field")
        return chosen

    def open_request(
        self,
        session: Session,
        *,
        client_id: str,
        item_code: str,
        fields: Mapping[str, Sequence[str]] | None,
        kind: str,
        owner_id: uuid.UUID | None = None,
        binding_message: str | None = None,
        oauth: Mapping[str, Any] | None = None,
        interval: int = 5,
    ) -> ConsentRequest:
        """Record what the agency asks for, after policy said it may ask for this item."""
        try:
            item = self.policy.catalogue.item(item_code)
        except (LookupError, UnknownServiceItem):
            raise InvalidAuthorizationDetails(f"no service item {item_code!r}") from None
        decision = self.policy.may_request_consent(self.agencies.info(session, client_id), item_code)
        if not decision.allowed:
            self.audit.append(
                session,
                Event(
                    Action.CONSENT_REQUESTED,
                    f"agency:{client_id}",
                    owner_id=owner_id,
                    service_item=item_code,
                    decision="deny",
                    reason=decision.reason,
                ),
            )
            raise RequestNotAllowed(f"{client_id} may not ask for consent to {item_code}: {decision.reason}")
        chosen = self.requested_fields(item, fields)
        request = ConsentRequest(
            kind=kind,
            client_id=client_id,
            owner_id=owner_id,
            service_item=item_code,
            fields=chosen,
            purpose=item_code,
            binding_message=binding_message,
            state=RequestState.PENDING.value,
            oauth=dict(oauth or {}),
            expires_at=utcnow() + REQUEST_LIFETIME[kind],
            interval=interval,
        )
        session.add(request)
        session.flush()
        self.audit.append(
            session,
            Event(
                Action.CONSENT_REQUESTED,
                f"agency:{client_id}",
                owner_id=owner_id,
                service_item=item_code,
                purpose=item_code,
                fields=field_names(chosen),
                decision="allow",
                reason=decision.reason,
                detail={"request": str(request.id), "kind": kind},
            ),
        )
        return request

    def pending_request(self, session: Session, request_id: uuid.UUID) -> ConsentRequest:
        request = session.get(ConsentRequest, request_id)
        if request is None:
            raise RequestNotFound("no such consent request")
        self.expire_if_stale(session, request)
        if request.state != RequestState.PENDING:
            raise RequestNotFound(f"the consent request is {request.state}")
        return request

    def expire_if_stale(self, session: Session, request: ConsentRequest) -> None:
        if request.state == RequestState.PENDING and request.expires_at <= utcnow():
            self._close_request(session, request, RequestState.EXPIRED, "system")

    def inbox(self, session: Session, owner_id: uuid.UUID) -> list[ConsentRequest]:
        """Pending backchannel requests for this owner, newest first; stale ones are expired on the way."""
        rows = session.scalars(
            select(ConsentRequest)
            .where(ConsentRequest.owner_id == owner_id, ConsentRequest.state == RequestState.PENDING)
            .order_by(col(ConsentRequest.created_at).desc())
        ).all()
        now = utcnow()
        live = []
        for request in rows:
            if request.expires_at <= now:
                self._close_request(session, request, RequestState.EXPIRED, "system")
            else:
                live.append(request)
        return live

    def _may_decide(self, session: Session, decider: Decider, request: ConsentRequest) -> Owner:
        owner = self.owners.get(session, decider.owner_id)
        if request.owner_id is not None and request.owner_id != owner.id:
            raise NotAuthorisedToConsent("this request is for another owner")
        if owner.kind == OwnerKind.PERSON:
            if owner.id != decider.person_id:
                raise NotAuthorisedToConsent("a person decides only for themself")
        elif not self.owners.may_act_for(session, decider.person_id, owner.id, utcnow().date()):
            raise NotAuthorisedToConsent("only a current legal representative or authorised agent decides for it")
        return owner

    def approve(
        self,
        session: Session,
        request_id: uuid.UUID,
        decider: Decider,
        fields: Mapping[str, Sequence[str]],
    ) -> Grant:
        """Approve with the fields the owner left ticked (a subset of the request); creates the grant and receipt."""
        request = self.pending_request(session, request_id)
        owner = self._may_decide(session, decider, request)
        item = self.policy.catalogue.item(request.service_item)
        if OwnerKind(owner.kind) not in item.owner_kinds:
            raise NotAuthorisedToConsent(f"service item {item.code} is not for a {owner.kind}")
        for licence_type, names in fields.items():
            if not set(names) <= set(request.fields.get(licence_type, ())):
                raise InvalidAuthorizationDetails("approval may only narrow the fields asked for")
        chosen = fields_json(fields)
        if not chosen:
            raise InvalidAuthorizationDetails("approve at least one field, or deny the request")
        now = utcnow()
        grant = Grant(
            owner_id=owner.id,
            client_id=request.client_id,
            service_item=item.code,
            fields=chosen,
            purpose=request.purpose,
            valid_from=now,
            valid_until=now + timedelta(days=item.max_grant_days),
            use_limit=1 if item.use is ServiceUse.ONCE else None,
            state=GrantState.ACTIVE.value,
            approved_by=decider.person_id,
            receipt="",
            receipt_hash=b"",
        )
        grant.receipt = self._receipt(session, grant, item)
        grant.receipt_hash = hashlib.sha256(grant.receipt.encode()).digest()
        session.add(grant)
        session.flush()
        session.add(GrantEvent(grant_id=grant.id, owner_id=owner.id, to_state=grant.state, actor=decider.actor))
        request_step(request.state, RequestState.APPROVED)
        request.state, request.decided_at, request.grant_id = RequestState.APPROVED.value, now, grant.id
        self.audit.append(
            session,
            Event(
                Action.CONSENT_APPROVED,
                decider.actor,
                owner_id=owner.id,
                service_item=item.code,
                purpose=grant.purpose,
                grant_id=grant.id,
                fields=field_names(chosen),
                denied_fields=tuple(sorted(set(field_names(request.fields)) - set(field_names(chosen)))),
                decision="allow",
                reason="owner consent",
                detail={"request": str(request.id), "receipt_sha256": grant.receipt_hash.hex()},
            ),
        )
        return grant

    def deny(self, session: Session, request_id: uuid.UUID, decider: Decider) -> ConsentRequest:
        request = self.pending_request(session, request_id)
        owner = self._may_decide(session, decider, request)
        request.owner_id = owner.id
        self._close_request(session, request, RequestState.DENIED, decider.actor)
        return request

    def _close_request(self, session: Session, request: ConsentRequest, to: RequestState, actor: str) -> None:
        request.state = request_step(request.state, to).value
        request.decided_at = utcnow()
        action = Action.CONSENT_DENIED if to is RequestState.DENIED else Action.CONSENT_EXPIRED
        self.audit.append(
            session,
            Event(
                action,
                actor,
                owner_id=request.owner_id,
                service_item=request.service_item,
                fields=field_names(request.fields),
                decision="deny",
                reason="owner denied" if to is RequestState.DENIED else "request expired",
                detail={"request": str(request.id)},
            ),
        )

    # receipts

    def _receipt(self, session: Session, grant: Grant, item: ServiceItem) -> str:
        """The consent receipt both sides keep: what was agreed, signed by the vault."""
        signer = self.keys.signer(session)
        claims = {
            "iss": self.issuer,
            "jti": str(grant.id),
            "iat": int(grant.valid_from.timestamp()),
            "nbf": int(grant.valid_from.timestamp()),
            "exp": int(grant.valid_until.timestamp()),
            "owner": str(grant.owner_id),
            "approved_by": str(grant.approved_by),
            "agency": grant.client_id,
            "service_item": {"code": item.code, "name_zh": item.name_zh, "name_en": item.name_en},
            "legal_basis": item.legal_basis,
            "purpose": {"zh": item.purpose_zh, "en": item.purpose_en},
            "authorization_details": [{"type": "licence_access", "service_item": item.code, "fields": grant.fields}],
            "use_limit": grant.use_limit,
        }
        return jws.sign_compact({"alg": "EdDSA", "typ": RECEIPT_TYPE, "kid": signer.kid}, claims, signer.key)

    # grants

    def grant(self, session: Session, grant_id: uuid.UUID, owner_id: uuid.UUID | None = None) -> Grant:
        """The grant with its validity applied; with owner_id, only if it is that owner's."""
        grant = session.get(Grant, grant_id)
        if grant is None or (owner_id is not None and grant.owner_id != owner_id):
            raise GrantNotFound("no such grant")
        if grant.state in (GrantState.ACTIVE, GrantState.PENDING) and grant.valid_until <= utcnow():
            self._grant_to(session, grant, GrantState.EXPIRED, "system", "validity ended")
            self._end_tokens(session, grant.id)
        return grant

    def grants_of(self, session: Session, owner_id: uuid.UUID) -> list[Grant]:
        rows = session.scalars(
            select(Grant).where(Grant.owner_id == owner_id).order_by(col(Grant.created_at).desc())
        ).all()
        return [self.grant(session, g.id) for g in rows]

    def history(self, session: Session, grant_id: uuid.UUID) -> list[GrantEvent]:
        return list(
            session.scalars(select(GrantEvent).where(GrantEvent.grant_id == grant_id).order_by(col(GrantEvent.at)))
        )

    def revoke(
        self, session: Session, grant_id: uuid.UUID, *, actor: str, owner_id: uuid.UUID | None, reason: str | None
    ) -> Grant:
        """End a grant now: every token from it dies in this same transaction, before the call returns."""
        grant = self.grant(session, grant_id, owner_id)
        self._grant_to(session, grant, GrantState.REVOKED, actor, reason)
        self._end_tokens(session, grant.id)
        return grant

    def _end_tokens(self, session: Session, grant_id: uuid.UUID) -> None:
        """Everything issued under the grant dies in this transaction (tokens, refresh families)."""
        for listener in self.revocation_listeners:
            listener(session, grant_id)

    def use(self, session: Session, grant: Grant) -> None:
        """Count one use (one read request); the last permitted use exhausts the grant."""
        grant.uses += 1
        grant.last_used_at = utcnow()
        if grant.use_limit is not None and grant.uses >= grant.use_limit:
            self._grant_to(session, grant, GrantState.EXHAUSTED, "system", "use limit reached")
            self._end_tokens(session, grant.id)

    def _grant_to(self, session: Session, grant: Grant, to: GrantState, actor: str, reason: str | None) -> None:
        before = grant.state
        grant.state = grant_step(grant.state, to).value
        grant.updated_at = utcnow()
        session.add(
            GrantEvent(
                grant_id=grant.id,
                owner_id=grant.owner_id,
                from_state=before,
                to_state=to.value,
                actor=actor,
                reason=reason,
            )
        )
        action = {
            GrantState.REVOKED: Action.GRANT_REVOKED,
            GrantState.EXPIRED: Action.GRANT_EXPIRED,
            GrantState.EXHAUSTED: Action.GRANT_EXHAUSTED,
            GrantState.ACTIVE: Action.GRANT_ACTIVATED,
        }[to]
        self.audit.append(
            session,
            Event(
                action,
                actor,
                owner_id=grant.owner_id,
                service_item=grant.service_item,
                grant_id=grant.id,
                reason=reason,
            ),
        )

    def expire_due(self, session: Session) -> int:
        due = session.scalars(
            select(Grant).where(
                col(Grant.state).in_([GrantState.ACTIVE, GrantState.PENDING]), col(Grant.valid_until) <= utcnow()
            )
        ).all()
        for grant in due:
            self._grant_to(session, grant, GrantState.EXPIRED, "system", "validity ended")
            self._end_tokens(session, grant.id)
        return len(due)

    @staticmethod
    def policy_view(grant: Grant) -> GrantInfo:
        uses_left = None if grant.use_limit is None else max(grant.use_limit - grant.uses, 0)
        return GrantInfo(
            grant_id=str(grant.id),
            owner_id=str(grant.owner_id),
            agency_client_id=grant.client_id,
            service_item=grant.service_item,
            fields=grant.fields,
            purpose=grant.purpose,
            valid_from=grant.valid_from,
            valid_until=grant.valid_until,
            uses_left=uses_left,
            state=grant.state,
        )

"""Consent: open a request for one service item, let the owner narrow, approve or deny it, keep and end grants."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.orm import Session
from sqlmodel import col, select

from vault.audit.events import Action, Event
from vault.audit.services import AuditLog
from vault.clock import utcnow
from vault.consent.errors import (
    GrantNotFound,
    GrantNotLive,
    IllegalGrantTransition,
    InvalidAuthorizationDetails,
    NotAuthorisedToConsent,
    RequestAlreadyDecided,
    RequestNotAllowed,
    RequestNotFound,
)
from vault.consent.interfaces import AgencyDirectory, RevocationListener
from vault.consent.lifecycle import GRANT_STEPS, REQUEST_STEPS, GrantState, RequestState
from vault.consent.models import ConsentRequest, Grant, GrantEvent
from vault.crypto import jws
from vault.crypto.services import KeyService
from vault.oauth import rar
from vault.owners.models import Owner, OwnerKind
from vault.owners.services import OwnerService
from vault.policy.catalogue import ServiceItem, ServiceUse
from vault.policy.engine import GrantInfo, PolicyEngine
from vault.policy.errors import UnknownServiceItem

RECEIPT_TYPE = "consent-receipt+jwt"
REQUEST_LIFETIME = {"redirect": timedelta(minutes=10), "backchannel": timedelta(minutes=10)}


def fields_json(fields: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    return {t: sorted(set(names)) for t, names in sorted(fields.items()) if names}


def questions_json(questions: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p: dict(parameters) for p, parameters in sorted(questions.items())}


def question_names(questions: Mapping[str, Any]) -> tuple[str, ...]:
    """Questions as the access log names them, beside fields: ``?<predicate id>``."""
    return tuple(f"?{p}" for p in sorted(questions))


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

    def requested(
        self,
        item: ServiceItem,
        fields: Mapping[str, Sequence[str]] | None,
        questions: Sequence[str] | None,
    ) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
        """The fields and questions a request may ask: each the item's own or a subset; it must ask something."""
        chosen_questions = self.requested_questions(item, questions)
        if fields is None and questions is not None:
            fields = {}  # a request that names questions only asks no values
        chosen = self.requested_fields(item, fields, allow_none=bool(chosen_questions))
        return chosen, chosen_questions

    @staticmethod
    def requested_questions(item: ServiceItem, asked: Sequence[str] | None) -> dict[str, dict[str, Any]]:
        """The questions a request may ask: the item's own (with the parameters it fixes), or a subset of them."""
        if asked is None:
            return questions_json(item.questions)
        extra = sorted(set(asked) - set(item.questions))
        if extra:
            raise InvalidAuthorizationDetails(f"service item {item.code} does not ask the question {extra[0]!r}")
        return questions_json({p: item.questions[p] for p in asked})

    def requested_fields(
        self, item: ServiceItem, asked: Mapping[str, Sequence[str]] | None, *, allow_none: bool = False
    ) -> dict[str, list[str]]:
        """The fields a request may ask: the item's own, or a subset of them; anything beyond is refused."""
        if asked is None:
            chosen = fields_json(item.fields)
            if not chosen and not allow_none and not item.questions:
                raise InvalidAuthorizationDetails("the request names no field")
            return chosen
        for licence_type, names in asked.items():
            allowed = set(item.fields.get(licence_type, ()))
            if not allowed:
                raise InvalidAuthorizationDetails(f"service item {item.code} needs no {licence_type}")
            extra = sorted(set(names) - allowed)
            if extra:
                raise InvalidAuthorizationDetails(f"service item {item.code} does not need {licence_type}/{extra[0]}")
        chosen = fields_json(asked)
        if not chosen and not allow_none:
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
        questions: Sequence[str] | None = None,
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
        chosen, chosen_questions = self.requested(item, fields, questions)
        request = ConsentRequest(
            kind=kind,
            client_id=client_id,
            owner_id=owner_id,
            service_item=item_code,
            fields=chosen,
            questions=chosen_questions,
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
                fields=field_names(chosen) + question_names(chosen_questions),
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
            raise RequestAlreadyDecided(f"the consent request is {request.state}")
        return request

    def expire_if_stale(self, session: Session, request: ConsentRequest) -> bool:
        """Expire a pending request past its time; True if this call did. If another decision (or expiry) won
        meanwhile, the request shows it and nothing is written."""
        if request.state == RequestState.PENDING and request.expires_at <= utcnow():
            try:
                self._close_request(session, request, RequestState.EXPIRED, "system")
            except RequestAlreadyDecided:
                return False
            return True
        return False

    def expire_stale_requests(self, session: Session) -> int:
        """Expire every pending request past its time (maintenance); each expiry is claimed, so it happens once."""
        stale = session.scalars(
            select(ConsentRequest).where(
                col(ConsentRequest.state) == RequestState.PENDING, col(ConsentRequest.expires_at) <= utcnow()
            )
        ).all()
        return sum(self.expire_if_stale(session, request) for request in stale)

    def inbox(self, session: Session, owner_id: uuid.UUID) -> list[ConsentRequest]:
        """Pending backchannel requests for this owner, newest first; stale ones are expired on the way."""
        rows = session.scalars(
            select(ConsentRequest)
            .where(ConsentRequest.owner_id == owner_id, ConsentRequest.state == RequestState.PENDING)
            .order_by(col(ConsentRequest.created_at).desc())
        ).all()
        for request in rows:
            self.expire_if_stale(session, request)
        return [r for r in rows if r.state == RequestState.PENDING]

    def _claim_request(self, session: Session, request: ConsentRequest, to: RequestState, **values: Any) -> None:
        """Move the request to `to` in the database, only from a state that allows it; raises if another won.

        The guarded UPDATE is the decision: on PostgreSQL a concurrent claim waits for this transaction and then
        finds the state changed, on SQLite writers are serialised; either way exactly one claim succeeds.
        """
        now = utcnow()
        claimed = session.execute(
            update(ConsentRequest)
            .where(
                col(ConsentRequest.id) == request.id,
                col(ConsentRequest.state).in_([s.value for s in REQUEST_STEPS[to]]),
            )
            .values(state=to.value, decided_at=now, **values)
            .returning(col(ConsentRequest.id))
            .execution_options(synchronize_session=False)
        ).first()
        if claimed is None:
            session.refresh(request)
            raise RequestAlreadyDecided(f"the consent request is already {request.state}")
        session.refresh(request)

    def _may_decide(self, session: Session, decider: Decider, request: ConsentRequest) -> Owner:
        owner = self.owners.get(session, decider.owner_id)
        if request.owner_id is not None and request.owner_id != owner.id:
            raise NotAuthorisedToConsent("this request is for another owner")
        if request.owner_id is None and request.kind == "backchannel":  # it named someone not in the vault
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
        questions: Sequence[str] | None = None,
    ) -> Grant:
        """Approve with the fields and questions the owner left ticked (a subset of the request; questions None:
        every question asked); creates the grant and receipt."""
        request = self.pending_request(session, request_id)
        owner = self._may_decide(session, decider, request)
        item = self.policy.catalogue.item(request.service_item)
        if OwnerKind(owner.kind) not in item.owner_kinds:
            raise NotAuthorisedToConsent(f"service item {item.code} is not for a {owner.kind}")
        for licence_type, names in fields.items():
            if not set(names) <= set(request.fields.get(licence_type, ())):
                raise InvalidAuthorizationDetails("approval may only narrow the fields asked for")
        asked_questions = request.questions or {}
        if questions is None:
            questions = list(asked_questions)
        if not set(questions) <= set(asked_questions):
            raise InvalidAuthorizationDetails("approval may only narrow the questions asked")
        chosen = fields_json(fields)
        chosen_questions = {p: asked_questions[p] for p in sorted(set(questions))}
        if not chosen and not chosen_questions:
            raise InvalidAuthorizationDetails("approve at least one field, or deny the request")
        if request.expires_at <= utcnow():
            self.expire_if_stale(session, request)
            raise RequestAlreadyDecided("the consent request expired")
        now = utcnow()
        grant = Grant(
            owner_id=owner.id,
            client_id=request.client_id,
            service_item=item.code,
            fields=chosen,
            questions=chosen_questions,
            purpose=request.purpose,
            valid_from=now,
            valid_until=now + timedelta(days=item.max_grant_days),
            use_limit=1 if item.use is ServiceUse.ONCE else None,
            state=GrantState.ACTIVE.value,
            approved_by=decider.person_id,
            receipt="",
            receipt_hash=b"",
        )
        self._claim_request(session, request, RequestState.APPROVED, grant_id=grant.id)  # the one decision
        grant.receipt = self._receipt(session, grant, item)
        grant.receipt_hash = hashlib.sha256(grant.receipt.encode()).digest()
        session.add(grant)
        session.flush()
        session.add(GrantEvent(grant_id=grant.id, owner_id=owner.id, to_state=grant.state, actor=decider.actor))
        self.audit.append(
            session,
            Event(
                Action.CONSENT_APPROVED,
                decider.actor,
                owner_id=owner.id,
                service_item=item.code,
                purpose=grant.purpose,
                grant_id=grant.id,
                fields=field_names(chosen) + question_names(chosen_questions),
                denied_fields=tuple(
                    sorted(
                        set(field_names(request.fields) + question_names(asked_questions))
                        - set(field_names(chosen) + question_names(chosen_questions))
                    )
                ),
                decision="allow",
                reason="owner consent",
                detail={"request": str(request.id), "receipt_sha256": grant.receipt_hash.hex()},
            ),
        )
        return grant

    def deny(self, session: Session, request_id: uuid.UUID, decider: Decider) -> ConsentRequest:
        request = self.pending_request(session, request_id)
        owner = self._may_decide(session, decider, request)
        self._close_request(session, request, RequestState.DENIED, decider.actor, owner_id=owner.id)
        return request

    def _close_request(
        self, session: Session, request: ConsentRequest, to: RequestState, actor: str, **values: Any
    ) -> None:
        self._claim_request(session, request, to, **values)
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
                reason={
                    RequestState.DENIED: "owner denied",
                    RequestState.EXPIRED: "request expired",
                }.get(to, str(values.get("reason", "withdrawn"))),
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
            "authorization_details": rar.granted_licence_access(item.code, grant.fields, grant.questions),
            "use_limit": grant.use_limit,
        }
        return jws.sign_compact({"alg": "EdDSA", "typ": RECEIPT_TYPE, "kid": signer.kid}, claims, signer.key)

    # grants: one liveness rule, and every state change claimed in the database

    @staticmethod
    def effective_state(grant: Grant, now: datetime) -> str:
        """The grant's state as of `now`: a live grant past its validity is expired even before anyone wrote it."""
        if grant.state in (GrantState.ACTIVE, GrantState.PENDING) and grant.valid_until <= now:
            return GrantState.EXPIRED.value
        return grant.state

    @classmethod
    def why_not_live(cls, grant: Grant, now: datetime, client_id: str | None = None) -> str | None:
        """None when the grant may be used now (by `client_id`, if given); otherwise the reason it may not.

        The one rule every edge applies (GraphQL, token endpoint, introspection, pages, console).
        """
        state = cls.effective_state(grant, now)
        if state != GrantState.ACTIVE:
            return f"the consent is {state}"
        if grant.valid_from > now:
            return "the consent is not in force yet"
        if grant.use_limit is not None and grant.uses >= grant.use_limit:
            return "the consent's use limit is reached"
        if client_id is not None and grant.client_id != client_id:
            return "the consent was given to another agency"
        return None

    def live_grant(
        self, session: Session, grant_id: uuid.UUID | None, client_id: str | None = None, *, write: bool = True
    ) -> Grant:
        """The grant if it is in force now; raises GrantNotLive (saying why) otherwise.

        With `write` a grant found past its validity is expired (and its tokens ended) in this transaction; without
        it (a read-only unit of work) it is only refused, and the caller or the maintenance leader expires it.
        """
        if grant_id is None:
            raise GrantNotLive("no consent behind this credential")
        try:
            grant = self.grant(session, grant_id) if write else session.get(Grant, grant_id)
        except GrantNotFound:
            grant = None
        if grant is None:
            raise GrantNotLive("no such consent")
        why = self.why_not_live(grant, utcnow(), client_id)
        if why is not None:
            raise GrantNotLive(why)
        return grant

    def grant(self, session: Session, grant_id: uuid.UUID, owner_id: uuid.UUID | None = None) -> Grant:
        """The grant with its validity applied; with owner_id, only if it is that owner's."""
        grant = session.get(Grant, grant_id)
        if grant is None or (owner_id is not None and grant.owner_id != owner_id):
            raise GrantNotFound("no such grant")
        if self.effective_state(grant, utcnow()) != grant.state:
            self._grant_to(session, grant, GrantState.EXPIRED, "system", "validity ended")
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
        """End a grant now: every token from it dies in this same transaction, before the call returns.

        Raises IllegalGrantTransition when the grant is no longer live (already revoked, expired or exhausted,
        including by a revocation that won a race with this one).
        """
        grant = self.grant(session, grant_id, owner_id)
        if not self._grant_to(session, grant, GrantState.REVOKED, actor, reason):
            raise IllegalGrantTransition(f"the grant is already {grant.state}")
        return grant

    def end_all_for_owner(self, session: Session, owner_id: uuid.UUID, actor: str, reason: str) -> int:
        """Revoke every live grant of the owner and withdraw their pending requests (erasure); returns how many."""
        ended = 0
        for grant in session.scalars(
            select(Grant).where(
                col(Grant.owner_id) == owner_id, col(Grant.state).in_([GrantState.ACTIVE, GrantState.PENDING])
            )
        ).all():
            ended += self._grant_to(session, grant, GrantState.REVOKED, actor, reason)
        for request in session.scalars(
            select(ConsentRequest).where(
                col(ConsentRequest.owner_id) == owner_id, col(ConsentRequest.state) == RequestState.PENDING
            )
        ).all():
            try:
                self._close_request(session, request, RequestState.EXPIRED, actor, auth_req_hash=None)
                ended += 1
            except RequestAlreadyDecided:
                pass
        return ended

    def _end_tokens(self, session: Session, grant_id: uuid.UUID) -> None:
        """Everything issued under the grant dies in this transaction (tokens, refresh families)."""
        for listener in self.revocation_listeners:
            listener(session, grant_id)

    def use(self, session: Session, grant_id: uuid.UUID) -> Grant:
        """Count one use (one read request), claimed in the database; raises GrantNotLive if it may not be used.

        The guarded UPDATE is what makes "once" mean once and a revocation final: it succeeds only while the grant
        is active, within its validity and under its use limit, so a read racing a revocation or another read of
        the last use either counts before the other commits or finds nothing to count (and releases nothing).
        The last permitted use exhausts the grant.
        """
        now = utcnow()
        row = session.execute(
            update(Grant)
            .where(
                col(Grant.id) == grant_id,
                col(Grant.state) == GrantState.ACTIVE.value,
                col(Grant.valid_from) <= now,
                col(Grant.valid_until) > now,
                or_(col(Grant.use_limit).is_(None), col(Grant.uses) < col(Grant.use_limit)),
            )
            .values(uses=col(Grant.uses) + 1, last_used_at=now)
            .returning(col(Grant.uses), col(Grant.use_limit))
            .execution_options(synchronize_session=False)
        ).first()
        grant = session.get(Grant, grant_id, populate_existing=True)
        if row is None or grant is None:
            raise GrantNotLive("the consent is no longer in force")
        uses, limit = row
        if limit is not None and uses >= limit:
            self._grant_to(session, grant, GrantState.EXHAUSTED, "system", "use limit reached")
        return grant

    def hold(self, session: Session, grant_id: uuid.UUID) -> None:
        """Lock the grant's row until this transaction ends (PostgreSQL; SQLite has one writer anyway).

        A read takes it before its access token's row, as a revocation does (the grant, then its tokens), so the
        two never deadlock; the read's guarded use of the grant then runs under the lock it already holds.
        """
        if session.get_bind().dialect.name == "postgresql":
            session.execute(select(Grant.id).where(col(Grant.id) == grant_id).with_for_update(key_share=True))

    def _grant_to(self, session: Session, grant: Grant, to: GrantState, actor: str, reason: str | None) -> bool:
        """Claim the step in the database; False (nothing written) when the grant's state no longer allows it.

        Every step to a final state ends the grant's tokens in the same transaction.
        """
        now = utcnow()
        before = session.execute(
            update(Grant)
            .where(col(Grant.id) == grant.id, col(Grant.state).in_([s.value for s in GRANT_STEPS[to]]))
            .values(state=to.value, updated_at=now)
            .returning(col(Grant.id))
            .execution_options(synchronize_session=False)
        ).first()
        previous = grant.state
        session.refresh(grant)
        if before is None:
            return False
        session.add(
            GrantEvent(
                grant_id=grant.id,
                owner_id=grant.owner_id,
                from_state=previous,
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
        if to is not GrantState.ACTIVE:
            self._end_tokens(session, grant.id)
        return True

    def expire_due(self, session: Session) -> int:
        due = session.scalars(
            select(Grant).where(
                col(Grant.state).in_([GrantState.ACTIVE, GrantState.PENDING]), col(Grant.valid_until) <= utcnow()
            )
        ).all()
        return sum(self._grant_to(session, grant, GrantState.EXPIRED, "system", "validity ended") for grant in due)

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
            questions=tuple(grant.questions or ()),
        )

"""What an agency reads under (a grant or a legal mandate), and the record of what each request released.

The ledger collects, per owner, the fields released and the fields denied with their reasons while the operation
runs; when it is over, `flush` writes ONE access event per owner and counts one use of the grant, in the same
transaction as everything else the request did. If that fails, the caller rolls the whole request back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from vault import group_commit
from vault.api.errors import BadUserInput, Forbidden
from vault.audit.events import Action, Event
from vault.audit.services import Stamped, stamp
from vault.consent.models import Grant
from vault.consent.services import ConsentService
from vault.crypto.free_text import OwnerTexts
from vault.mandates.errors import RateLimited
from vault.mandates.services import MandateClaim, MandateService
from vault.notifications.services import known_choices
from vault.oauth import rar
from vault.oauth.tokens import TokenInfo
from vault.owners.errors import InvalidIdentifier
from vault.owners.models import Owner, OwnerKind
from vault.policy.catalogue import Mandate
from vault.policy.engine import GrantInfo, MandateInfo
from vault.wiring import Vault

StampedEvent = tuple[Event, Stamped]  # an access event with its row made (AuditLog.append_each)
NO_SUCH_OWNER = "no owner with this identifier"


@dataclass(frozen=True)
class Authority:
    """The basis of a read, taken from the access token alone: never from arguments the client sends."""

    grant: Grant | None = None
    mandate: MandateInfo | None = None
    claim: MandateClaim | None = None

    @property
    def purpose(self) -> str:
        if self.grant is not None:
            return self.grant.purpose
        assert self.mandate is not None
        return f"mandate:{self.mandate.mandate_id}"

    def policy_view(self) -> dict[str, GrantInfo | MandateInfo | None]:
        grant = ConsentService.policy_view(self.grant) if self.grant is not None else None
        return {"grant": grant, "mandate": self.mandate}


def authority_of(token: TokenInfo, grant: Grant | None) -> Authority:
    """The grant the token was issued under (already re-checked), or the mandate its details invoke."""
    if grant is not None:
        return Authority(grant=grant)
    for detail in token.authorization_details:
        if detail.get("type") == rar.LEGAL_MANDATE:
            claim = MandateClaim.from_details(detail)
            if claim is None:
                raise Forbidden("this mandate token names no case, owners or official: ask for a new token")
            info = MandateInfo(mandate_id=claim.mandate, case_reference=claim.case, named_fields=claim.sensitive_fields)
            return Authority(mandate=info, claim=claim)
    raise Forbidden("this access token carries neither a consent grant nor a legal mandate")


def find_owner(vault: Vault, session: Session, identifier: str) -> Owner | None:
    """The owner named by a resident ID number or unified social credit code; None if none (or erased).

    Raises BadUserInput, saying which rule failed, when the text is neither kind of identifier.
    """
    problems = []
    for kind in (OwnerKind.PERSON, OwnerKind.ENTERPRISE):
        try:
            owner = vault.owners.find(session, kind, identifier)
        except InvalidIdentifier as error:
            problems.append(str(error))
            continue
        return None if owner is None or owner.erased_at is not None else owner
    raise BadUserInput("owner is not a valid identifier: " + "; ".join(problems), argument="owner")


@dataclass
class OwnerRead:
    """What one request did with one owner's data (owner None: an identifier that names nobody)."""

    owner_id: uuid.UUID | None
    released: set[str] = field(default_factory=set)
    masked: set[str] = field(default_factory=set)  # those released masked rather than in full
    denied: dict[str, str] = field(default_factory=dict)
    reasons: set[str] = field(default_factory=set)
    licences: set[uuid.UUID] = field(default_factory=set)


@dataclass(frozen=True)
class MandateRead:
    """A read under a mandate, to be counted against its limits when the request's events are written."""

    mandate: Mandate
    claim: MandateClaim
    owner_id: uuid.UUID | None
    asked: tuple[str, ...]
    now: datetime


@dataclass(frozen=True)
class QuestionAsked:
    """A question asked in this request, answered or refused; `logged` are the parameters fit for the log."""

    owner_id: uuid.UUID
    predicate: str
    licence_type: str
    reason: str
    answer: bool | None = None  # None: refused, nothing was looked at
    licence_status: str | None = None
    logged: dict[str, str | int] = field(default_factory=dict)
    answer_id: uuid.UUID | None = None

    @property
    def answered(self) -> bool:
        return self.answer is not None


@dataclass
class ReadLedger:
    reads: dict[uuid.UUID | None, OwnerRead] = field(default_factory=dict)
    questions: list[QuestionAsked] = field(default_factory=list)
    mandate_owner: str | None = None  # under a mandate, the one owner (keyed hash) this request may read
    mandate_read: MandateRead | None = None
    limited: RateLimited | None = None  # set by flush: the read was over a limit and releases nothing
    _stamped: list[StampedEvent] | None = None  # the reads' events, made before the write (`stamp`)
    choices: dict[uuid.UUID, bool] = field(default_factory=dict)  # owners read: did they choose how to be told

    @property
    def touched(self) -> bool:
        """Whether anything of anyone's was read, asked or refused: then the request has events to write."""
        return bool(self.reads or self.questions)

    def writes_itself(self, authority: Authority | None) -> bool:
        """Whether `flush` changes the database before its last statement (a grant's use, a sealed answer), so that
        a group commit must give it a savepoint. Under a mandate it only checks its token and leaves its events and
        counts to the batch's end (or makes one guarded upsert, its last statement): nothing to roll back."""
        return bool(self.questions) or (authority is not None and authority.grant is not None)

    def refuse(self, owner_id: uuid.UUID | None, reason: str, fields: Iterable[str]) -> None:
        """Record a read refused before any decision: every field asked for, denied for `reason`."""
        read = self.owner(owner_id)
        read.reasons.add(reason)
        read.denied.update(dict.fromkeys(fields, reason))

    def owner(self, owner_id: uuid.UUID | None) -> OwnerRead:
        if owner_id not in self.reads:
            self.reads[owner_id] = OwnerRead(owner_id)
        return self.reads[owner_id]

    def released(self, owner_id: uuid.UUID, fields: Iterable[str], masked: Iterable[str] = ()) -> None:
        self.owner(owner_id).released.update(fields)
        self.owner(owner_id).masked.update(masked)

    def flush(
        self,
        session: Session,
        vault: Vault,
        *,
        client_id: str,
        authority: Authority | None,
        request_id: str,
        token_id: uuid.UUID | None = None,
    ) -> None:
        """Append one access event per owner touched; count one use of the grant if anything was released.

        The access token (`token_id`) is checked unrevoked, and its client not suspended, in this transaction
        (raising TokenRevoked; in a group commit, for all the batch's writes at its end): the request may have been
        authenticated from memory (TokenService.introspect_remembered, AgencyRegistry.info_remembered). A read under a
        mandate is then counted against the mandate's limits; over a limit, the read becomes a recorded denial and
        `limited` says why: the caller then returns no data.
        """
        counted_here, self.limited = False, None  # a refusal found by an attempt rolled back is not this one's
        released_any = any(read.licences for read in self.reads.values()) or any(q.answered for q in self.questions)
        held = authority.grant if authority is not None else None
        grant = held if released_any else None
        if held is not None:
            # the grant's row first, then the token's, whether or not anything was released: a revocation locks
            # them in that order (ConsentService._grant_to ends the tokens after the grant), so a read and a
            # revocation never wait on each other in a cycle, which PostgreSQL would break by failing one of them
            vault.consent.hold(session, held.id)
        # in a group commit, the tokens of its reads under a mandate are checked together at its end (first of what
        # it leaves there); a read under a grant checks its own now, before its use: the grant's last use revokes
        # its tokens in this very transaction, which a check at the batch's end would take for a revocation
        if token_id is not None and (
            held is not None
            or not group_commit.later(session, "tokens.live", token_id, vault.tokens.require_all_live, order=-1)
        ):
            vault.tokens.require_unrevoked(session, token_id)
        if self.mandate_read is not None:
            pending = self.mandate_read
            counted = (pending.mandate, pending.claim, client_id, pending.now)
            service = MandateService(vault.keys, vault.audit, vault.policy.catalogue)
            # in a group commit, counted with the batch's other reads, last, just before the commit; at once if
            # this process saw one of its limits spent this window (counted alone, it is refused and recorded)
            deferred = not service.may_be_spent(*counted) and group_commit.later(
                session, "mandate.count", counted, service.count_reads, order=1
            )
            if not deferred:
                self.limited = self._count(session, vault, client_id, pending)
                counted_here = True
        if self.choices:  # their notifications need not look the owners up again
            known_choices(session, self.choices)
        # stamped beforehand in the request's own thread (`stamp`) unless a count made here changed them
        if self._stamped is not None and not counted_here:
            events = [*self._stamped]
        else:
            events = self._stamp_reads(client_id=client_id, authority=authority, request_id=request_id)
        events += [
            _stamped(_question_event(session, vault, q, client_id, authority, request_id)) for q in self.questions
        ]
        for event in events:  # in a group commit, the batch's events are inserted together
            if not group_commit.later(session, "audit.append", event, vault.audit.append_each):
                vault.audit.append_each(session, [event])
        if grant is not None:
            vault.consent.use(session, grant.id)

    def stamp(self, *, client_id: str, authority: Authority | None, request_id: str) -> None:
        """Make the access events of this request's reads now, in its own thread, before its write: `flush` (in a
        group commit's one writer thread) then only inserts them, unless counting the read changed them."""
        self._stamped = self._stamp_reads(client_id=client_id, authority=authority, request_id=request_id)

    def _stamp_reads(self, *, client_id: str, authority: Authority | None, request_id: str) -> list[StampedEvent]:
        if self.limited is not None and self.mandate_read is not None:
            self.owner(self.mandate_read.owner_id)  # a refused read has its event even if nothing was gathered
        return [
            _stamped(_event(self._as_counted(read), client_id, authority, request_id, self._notes(authority, read)))
            for read in self.reads.values()
        ]

    def _as_counted(self, read: OwnerRead) -> OwnerRead:
        """The read as its event records it: over a limit, the mandate's owner's read is a denial (a copy: the
        read itself stays as gathered, for a later attempt of the same write)."""
        pending, error = self.mandate_read, self.limited
        if error is None or pending is None or read.owner_id != pending.owner_id:
            return read
        denied = {**read.denied, **dict.fromkeys(pending.asked, str(error))}
        return OwnerRead(read.owner_id, denied=denied, reasons={str(error)})

    def _notes(self, authority: Authority | None, read: OwnerRead) -> list[str]:
        """The sealed case text (and official's name) of the mandate's owner, for their event to point at."""
        pending, claim = self.mandate_read, authority.claim if authority else None
        if pending is None or claim is None or read.owner_id is None or read.owner_id != pending.owner_id:
            return []
        return list(claim.notes.get(self.mandate_owner or "", []))

    @staticmethod
    def _count(session: Session, vault: Vault, client_id: str, pending: MandateRead) -> RateLimited | None:
        service = MandateService(vault.keys, vault.audit, vault.policy.catalogue)
        try:
            service.count_read(session, pending.mandate, pending.claim, client_id, pending.now)
        except RateLimited as error:
            return error
        return None


def _stamped(event: Event) -> StampedEvent:
    return event, stamp([event])


def _event(read: OwnerRead, client_id: str, authority: Authority | None, request_id: str, notes: list[str]) -> Event:
    grant = authority.grant if authority else None
    mandate = authority.mandate if authority else None
    denials = [f"{name}: {why}" for name, why in sorted(read.denied.items()) if why not in read.reasons]
    reasons = sorted(read.reasons) + denials
    detail: dict[str, Any] = {"licences": len(read.licences)}
    if mandate is not None and mandate.case_reference:
        detail["case"] = mandate.case_reference  # a keyed hash: groups reads by case, names no one
    for key, note in zip(("case_note", "official_name_note"), notes, strict=False):
        detail[key] = note  # sealed under the owner's key: gone with erasure
    claim = authority.claim if authority else None
    return Event(
        Action.FIELDS_RELEASED if read.licences else Action.FIELDS_DENIED,
        f"agency:{client_id}",
        owner_id=read.owner_id,
        official=claim.official if claim else None,
        fields=tuple(sorted(read.released)),
        denied_fields=tuple(sorted(read.denied)),
        masked_fields=tuple(sorted(read.masked)),
        purpose=authority.purpose if authority else None,
        service_item=grant.service_item if grant else None,
        grant_id=grant.id if grant else None,
        mandate=mandate.mandate_id if mandate else None,
        decision="allow" if read.licences else "deny",
        reason="; ".join(reasons) or None,
        request_id=request_id,
        detail=detail,
    )


ANSWER_NOTE = "answer"


def _question_event(
    session: Session,
    vault: Vault,
    question: QuestionAsked,
    client_id: str,
    authority: Authority | None,
    request_id: str,
) -> Event:
    """The access event of a question: its predicate in the clear, the answer sealed under the owner's key."""
    grant = authority.grant if authority else None
    detail: dict[str, str | int] = {"predicate": question.predicate}
    if question.answered:
        sealed = {"answer": question.answer, "licence_status": question.licence_status, "parameters": question.logged}
        note = OwnerTexts(vault.keys).seal(session, question.owner_id, ANSWER_NOTE, json.dumps(sealed))
        detail["answer_note"] = str(note)
        detail["answer_id"] = str(question.answer_id)
    return Event(
        Action.PREDICATE_ANSWERED if question.answered else Action.PREDICATE_DENIED,
        f"agency:{client_id}",
        owner_id=question.owner_id,
        licence_type=question.licence_type,
        purpose=authority.purpose if authority else None,
        service_item=grant.service_item if grant else None,
        grant_id=grant.id if grant else None,
        decision="allow" if question.answered else "deny",
        reason=question.reason,
        request_id=request_id,
        detail=detail,
    )

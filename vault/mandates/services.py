"""Legal mandates at token time and at read time: what a token may name, registered cases, rate limits.

A mandate token holds no text and no identifier: the case as a keyed hash, each owner as the keyed hash of their
identifier (the same blind index the owners table uses), the official's identifier, and the sensitive fields it
names. The case reference itself is kept only encrypted under each named owner's key (owner_texts), so the owner
can see it and erasure destroys it. Counters live in the database, so limits hold across worker processes.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import bindparam, text, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import Session
from sqlmodel import col, select

from vault.audit.events import Action, Event
from vault.audit.services import AuditLog
from vault.crypto.blind_index import blind_index
from vault.crypto.free_text import OwnerTexts
from vault.crypto.models import OwnerKey
from vault.crypto.services import KeyService
from vault.db import Prepared
from vault.group_commit import Unfinished
from vault.mandates.errors import CaseNotRegistered, MandateRefused, RateLimited
from vault.mandates.models import MandateCase, MandateCounter
from vault.notifications.models import NotificationPreference
from vault.owners.errors import InvalidIdentifier, InvalidText
from vault.owners.free_text import clean_text, text_digest
from vault.owners.identifiers import parse_credit_code, parse_resident_id
from vault.owners.models import BlindIndex, Owner, OwnerHead, OwnerKind
from vault.policy.catalogue import Mandate, ServiceCatalogue

LEGAL_MANDATE = "legal_mandate"
CASE_TEXT = "mandate-case"
OFFICIAL_NAME_TEXT = "mandate-official-name"
MAX_CASE_REFERENCE = 64
MAX_OFFICIAL = 32
MAX_OFFICIAL_NAME = 50
MAX_CASE_OWNERS = 50
_INDEX_KIND = {OwnerKind.PERSON: "resident_id", OwnerKind.ENTERPRISE: "credit_code"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OWNER_BY_DIGEST = Prepared(  # the index entry, its owner, the owner's wrapped data key and notification choice
    sa_select(
        col(Owner.id),
        col(Owner.kind),
        col(Owner.erased_at),
        col(OwnerKey.dek_id),
        col(OwnerKey.wrapped),
        col(NotificationPreference.owner_id).is_not(None),
    )
    .join(BlindIndex, col(BlindIndex.owner_id) == col(Owner.id))
    .outerjoin(OwnerKey, col(OwnerKey.owner_id) == col(Owner.id))
    .outerjoin(NotificationPreference, col(NotificationPreference.owner_id) == col(Owner.id))
    .where(col(BlindIndex.kind) == bindparam("kind"), col(BlindIndex.digest) == bindparam("digest"))
    .limit(1)
)


@dataclass(frozen=True)
class MandateClaim:
    """What a mandate token grants, as stored with the token (no text, no identifier)."""

    mandate: str
    case: str
    owners: frozenset[str]
    official: str
    sensitive_fields: tuple[str, ...] = ()
    notes: Mapping[str, list[str]] = field(default_factory=dict)  # owner digest -> ids of sealed notes

    def details(self) -> dict[str, Any]:
        return {
            "type": LEGAL_MANDATE,
            "mandate": self.mandate,
            "case": self.case,
            "owners": sorted(self.owners),
            "official": self.official,
            "sensitive_fields": list(self.sensitive_fields),
            "notes": {owner: list(ids) for owner, ids in self.notes.items()},
        }

    @classmethod
    def from_details(cls, detail: Mapping[str, Any]) -> MandateClaim | None:
        """The claim in a stored authorization_details entry; None for anything else (an older token shape)."""
        owners, sensitive, notes = detail.get("owners"), detail.get("sensitive_fields", []), detail.get("notes", {})
        if (
            detail.get("type") != LEGAL_MANDATE
            or not all(isinstance(detail.get(k), str) for k in ("mandate", "case", "official"))
            or not isinstance(owners, list)
            or not owners
            or not isinstance(sensitive, list)
            or not isinstance(notes, dict)
        ):
            return None
        return cls(
            mandate=detail["mandate"],
            case=detail["case"],
            owners=frozenset(str(o) for o in owners),
            official=detail["official"],
            sensitive_fields=tuple(str(f) for f in sensitive),
            notes={str(o): [str(i) for i in ids] for o, ids in notes.items() if isinstance(ids, list)},
        )


@dataclass(frozen=True)
class MandateRequest:
    """A token request's members as sent (see vault.oauth.rar.LegalMandate): unchecked."""

    case_reference: object
    owners: tuple[object, ...]
    official: object
    official_name: object = None
    sensitive_fields: tuple[object, ...] = ()


class MandateService:
    def __init__(self, keys: KeyService, audit: AuditLog, catalogue: ServiceCatalogue) -> None:
        self.keys = keys
        self.audit = audit
        self.catalogue = catalogue
        self.texts = OwnerTexts(keys)

    # digests

    def case_digest(self, session: Session, mandate_id: str, case_reference: str) -> str:
        return text_digest(self.keys.index_key(session), f"case:{mandate_id}", case_reference)

    def identifier_digest(self, session: Session, identifier: object, field: str = "owner") -> tuple[OwnerKind, str]:
        """The owner kind and keyed hash of a resident ID number or credit code; raises MandateRefused.

        The message says which rule failed but never what the check character should be.
        """
        if not isinstance(identifier, str):
            raise MandateRefused(field, f"{field} must be a resident ID number or unified social credit code")
        problems = []
        for kind, parse in ((OwnerKind.PERSON, parse_resident_id), (OwnerKind.ENTERPRISE, parse_credit_code)):
            try:
                value = parse(identifier)
            except InvalidIdentifier as error:
                problems.append(str(error))
                continue
            return kind, blind_index(self.keys.index_key(session), _INDEX_KIND[kind], value).hex()
        raise MandateRefused(field, f"{field} is not a valid identifier: " + "; ".join(problems))

    def owner_by_digest(self, session: Session, kind: OwnerKind, digest: str) -> OwnerHead | None:
        """The live owner whose identifier has this keyed hash, with their wrapped data key, or None."""
        params = {"kind": _INDEX_KIND[kind], "digest": bytes.fromhex(digest)}
        found = _OWNER_BY_DIGEST.first(session.connection(), params)
        if found is None:
            return None
        owner = OwnerHead(*found)
        return None if owner.erased_at is not None else owner

    # token time

    def claim(self, session: Session, mandate: Mandate, request: MandateRequest, now: datetime) -> MandateClaim:
        """Check a token request against its mandate and return what the token may hold; raises MandateRefused.

        Stores the case reference (and the official's name, if given) encrypted under each named owner's key.
        """
        case_text = self._case_text(mandate, request.case_reference)
        official = _clean("official", request.official, MAX_OFFICIAL, mandate)
        official_name = (
            None if request.official_name is None else _clean("official_name", request.official_name, MAX_OFFICIAL_NAME)
        )
        if len(request.owners) > mandate.max_owners_per_token:
            raise MandateRefused("owners", f"a {mandate.id} token names at most {mandate.max_owners_per_token} owners")
        named = [self.identifier_digest(session, o, f"owners[{i}]") for i, o in enumerate(request.owners)]
        sensitive = self._sensitive(mandate, request.sensitive_fields)
        case = self.case_digest(session, mandate.id, case_text)
        if mandate.requires_registered_case:
            registered = self.case_in_force(session, mandate, case, now)
            if registered is None:
                problem = f"the case is not registered under {mandate.id}, or not in force"
                raise MandateRefused("case_reference", problem)
            for index, (_, digest) in enumerate(named):
                if digest not in registered.owners:
                    raise MandateRefused(f"owners[{index}]", f"owners[{index}] is not an owner of the registered case")
        notes: dict[str, list[str]] = {}
        for kind, digest in named:
            owner = self.owner_by_digest(session, kind, digest)
            if owner is not None:  # the texts, sealed under the owner's key: their ids go with the reads
                notes[digest] = [str(self.texts.seal(session, owner.id, CASE_TEXT, case_text))]
                if official_name is not None:
                    notes[digest].append(str(self.texts.seal(session, owner.id, OFFICIAL_NAME_TEXT, official_name)))
        return MandateClaim(mandate.id, case, frozenset(d for _, d in named), official, sensitive, notes)

    def _case_text(self, mandate: Mandate, value: object) -> str:
        if value is None and not mandate.requires_case_reference:
            return "-"
        return _clean("case_reference", value, MAX_CASE_REFERENCE, mandate, pattern=True)

    @staticmethod
    def _sensitive(mandate: Mandate, asked: Iterable[object]) -> tuple[str, ...]:
        chosen: list[str] = []
        for index, name in enumerate(asked):
            licence_type, _, field = name.partition("/") if isinstance(name, str) else ("", "", "")
            if not mandate.is_sensitive(licence_type, field):
                raise MandateRefused(
                    f"sensitive_fields[{index}]",
                    f"sensitive_fields[{index}] is not a sensitive field {mandate.id} covers (<licence type>/<field>)",
                )
            chosen.append(f"{licence_type}/{field}")
        return tuple(dict.fromkeys(chosen))

    # registered cases

    def case_in_force(self, session: Session, mandate: Mandate, case: str, now: datetime) -> MandateCase | None:
        row = session.scalars(
            select(MandateCase).where(MandateCase.mandate == mandate.id, MandateCase.case_digest == case)
        ).first()
        return row if row is not None and row.valid_from <= now < row.valid_until else None

    def require_registered(
        self, session: Session, mandate: Mandate, claim: MandateClaim, owner: str, now: datetime
    ) -> None:
        """At read time: the case is still registered and in force, and covers this owner (by keyed hash)."""
        if not mandate.requires_registered_case:
            return
        registered = self.case_in_force(session, mandate, claim.case, now)
        if registered is None or owner not in registered.owners:
            raise CaseNotRegistered("the case is not registered for this owner, or its registration has ended")

    def register_case(
        self,
        session: Session,
        *,
        mandate: Mandate,
        case_reference: object,
        owners: Iterable[object],
        valid_until: datetime,
        actor: str,
        now: datetime,
    ) -> MandateCase:
        """Register (or re-register, replacing owners and validity) a case under a mandate; raises MandateRefused."""
        if not mandate.requires_case_reference:
            raise MandateRefused("mandate", f"{mandate.id} takes no case reference")
        case_text = self._case_text(mandate, case_reference)
        named = [self.identifier_digest(session, o, f"owners[{i}]") for i, o in enumerate(owners)]
        if not named or len(named) > MAX_CASE_OWNERS:
            raise MandateRefused("owners", f"a case names 1 to {MAX_CASE_OWNERS} owners")
        if valid_until <= now:
            raise MandateRefused("valid_until", "valid_until must be in the future")
        if valid_until > now + timedelta(days=mandate.max_case_days):
            problem = f"a {mandate.id} case is registered for at most {mandate.max_case_days} days"
            raise MandateRefused("valid_until", problem)
        case = self.case_digest(session, mandate.id, case_text)
        row = session.scalars(
            select(MandateCase).where(MandateCase.mandate == mandate.id, MandateCase.case_digest == case)
        ).first()
        if row is None:
            row = MandateCase(
                mandate=mandate.id,
                case_digest=case,
                owners=[],
                registered_by=actor,
                valid_from=now,
                valid_until=valid_until,
            )
            session.add(row)
        row.owners = sorted({d for _, d in named})
        row.registered_by, row.valid_from, row.valid_until = actor, now, valid_until
        session.flush()
        for kind, digest in named:
            owner = self.owner_by_digest(session, kind, digest)
            if owner is None:
                continue
            note = self.texts.seal(session, owner.id, CASE_TEXT, case_text)
            self.audit.append(
                session,
                Event(
                    Action.MANDATE_CASE_REGISTERED,
                    actor,
                    owner_id=owner.id,
                    mandate=mandate.id,
                    reason=f"case registered under {mandate.id} until {valid_until.date().isoformat()}",
                    detail={"case": case, "case_note": str(note), "registration": str(row.id)},
                ),
            )
        return row

    # rate limits

    def count_read(
        self, session: Session, mandate: Mandate, claim: MandateClaim, client_id: str, now: datetime
    ) -> None:
        """Count one read against the client's and the case's limits; raises RateLimited when either is spent.

        Each count is a guarded upsert (count < limit) on a database row, so concurrent workers never exceed it.
        The rows are taken in key order, as count_reads takes them, so two workers never wait on each other in a
        cycle; a count taken before a refusal is given back.
        """
        start = _window_start(mandate, now)
        end = start + timedelta(hours=mandate.rate_limits.window_hours)
        retry_after = max(1, int((end - now).total_seconds()))
        taken: list[str] = []
        for key, limit, scope in _counters(mandate, claim, client_id):
            if not self._take(session, key, start, limit):
                for counted in taken:
                    session.execute(
                        update(MandateCounter)
                        .where(col(MandateCounter.key) == counted, col(MandateCounter.window_start) == start)
                        .values(count=col(MandateCounter.count) - 1)
                    )
                raise RateLimited(scope, retry_after)
            taken.append(key)

    def count_reads(self, session: Session, reads: list[tuple[Mandate, MandateClaim, str, datetime]]) -> None:
        """count_read for many reads at once (a group commit's batch): each key's row is updated once, by the
        reads' total, in a fixed order of keys; raises Unfinished, changing nothing, if any total would pass its
        limit (each read is then counted alone, and the one over the limit is refused by count_read)."""
        totals: dict[tuple[str, datetime], list[int]] = {}
        for mandate, claim, client_id, now in reads:
            start = _window_start(mandate, now)
            for key, limit, _ in _counters(mandate, claim, client_id):
                totals.setdefault((key, start), [0, limit])[0] += 1
        takes = sorted(totals.items())
        taken = self._take_all(session, [(key, start, limit, count) for (key, start), (count, limit) in takes])
        for (key, start), (count, _) in takes:
            if (key, start) not in taken:
                _note_spent(key, start)
                raise Unfinished(f"a mandate's limit would be passed by {count} reads counted together")

    def may_be_spent(self, mandate: Mandate, claim: MandateClaim, client_id: str, now: datetime) -> bool:
        """Whether this process saw one of the read's counters refuse a batch's total in this window: such a read
        is then counted at once, on its own (guarded all the same), rather than left to its batch, so one spent
        limit does not make every batch it joins run write by write. A hint: the database decides."""
        start = _window_start(mandate, now)
        return any((key, start) in _SPENT for key, _, _ in _counters(mandate, claim, client_id))

    @staticmethod
    def _take(session: Session, key: str, start: datetime, limit: int, count: int = 1) -> bool:
        """Count one read on the key's row for the window if it is under `limit`: one guarded upsert, which creates
        the row at 1 or adds 1 only where count < limit (the row locked meanwhile, so concurrent takes never pass
        the limit); whether it counted is whether a row came back."""
        return (key, start) in _upsert_counters(session, [(key, start, limit, count)])

    @staticmethod
    def _take_all(session: Session, takes: list[tuple[str, datetime, int, int]]) -> set[tuple[str, datetime]]:
        """`_take` for several counters (key, window, limit, n) in one statement, rows in the order given; the
        counters taken come back. The caller rolls back if any did not (a group commit's batch then runs write by
        write), so a partial take never stays."""
        return _upsert_counters(session, takes)


def _upsert_counters(session: Session, takes: list[tuple[str, datetime, int, int]]) -> set[tuple[str, datetime]]:
    """The guarded upsert of `_count_many` for these counters (key, window, limit, n); those it counted."""
    if any(count > limit for _, _, limit, count in takes):
        return set()
    upsert = _count_many(len(takes))
    values: dict[str, Any] = {}
    for i, (key, start, limit, count) in enumerate(takes):
        values |= {f"key{i}": key, f"start{i}": start, f"n{i}": count, f"room{i}": limit - count}
    found = upsert.all(session.connection(), values)
    return {(key, _utc(start)) for key, start in found}


_SPENT: dict[tuple[str, datetime], None] = {}  # counters this process saw refuse a batch, by window (a hint)
_SPENT_SIZE = 1_024


def _note_spent(key: str, start: datetime) -> None:
    if len(_SPENT) >= _SPENT_SIZE:
        _SPENT.clear()
    _SPENT[(key, start)] = None


def _counters(mandate: Mandate, claim: MandateClaim, client_id: str) -> list[tuple[str, int, str]]:
    """A read's counters under a mandate, (key, limit, scope), in the one order every count takes them."""
    limits = mandate.rate_limits
    return sorted(
        [
            (f"client:{mandate.id}:{client_id}", limits.per_client, "client"),
            (f"case:{mandate.id}:{claim.case}", limits.per_case, "case"),
        ]
    )


def _window_start(mandate: Mandate, now: datetime) -> datetime:
    window = timedelta(hours=mandate.rate_limits.window_hours)
    return _EPOCH + ((now - _EPOCH) // window) * window


_COUNTERS = MandateCounter.__table__  # type: ignore[attr-defined]


@functools.cache  # one statement per number of counters (a batch counts one or two, now and then more), compiled once
def _count_many(rows: int) -> Prepared:
    """Add n to each of `rows` counters, creating it at n, only where it stays within its limit (its count <= its room,
    limit - n): each row's own room guards its own update, and the counters updated come back. Written as text:
    SQLAlchemy does not cache the compiled form of a multi-row VALUES, and a statement compiled again for every
    batch costs its one writer thread more than the statement itself. The same SQL runs on SQLite and PostgreSQL."""
    values = ", ".join(f"(:key{i}, :start{i}, :n{i})" for i in range(rows))
    rooms = " ".join(
        f"WHEN excluded.key = :key{i} AND excluded.window_start = :start{i} THEN :room{i}" for i in range(rows)
    )
    sql = (
        f'INSERT INTO mandate_counters ("key", window_start, count) VALUES {values} '  # noqa: S608 -- placeholders only
        'ON CONFLICT ("key", window_start) DO UPDATE SET count = mandate_counters.count + excluded.count '
        f"WHERE mandate_counters.count <= CASE {rooms} END "
        'RETURNING "key", window_start'
    )
    when = _COUNTERS.c.window_start.type
    return Prepared(
        text(sql)
        .bindparams(*(bindparam(f"start{i}", type_=when) for i in range(rows)))
        .columns(_COUNTERS.c.key, _COUNTERS.c.window_start)
    )


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def registration_end(last_day: date) -> datetime:
    """A registration "valid until" a date runs to the end of that day (UTC): exclusive at the next midnight."""
    return datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=UTC)


def _clean(field: str, value: object, max_length: int, mandate: Mandate | None = None, pattern: bool = False) -> str:
    regex = None
    if mandate is not None:
        regex = mandate.case_pattern if pattern else mandate.official_pattern
    try:
        return clean_text(value, field=field, max_length=max_length, pattern=regex)
    except InvalidText as error:
        raise MandateRefused(field, str(error)) from None

"""Bulk issuance: many licences in one transaction, each row validated on its own, the writes batched.

Every row gets what a single issuance gives (licences.services.LicenceService.issue): the same validation
(the type's field rules, the holder's name and identifier on record, the number's uniqueness), an Ed25519-signed
SD-JWT, each disclosure encrypted under the owner's key, a random status-list slot and a `licence.issued` event.
What changes is how often the database is asked: owners, keys, numbers and slots are looked up once per batch
and the rows are written with one multi-row insert per table.

A row whose number is already issued to the same owner is reported as already issued, not as a problem, so
running the same file or request again issues nothing twice.
"""

from __future__ import annotations

import secrets
import time
import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import TypeVar

from sqlalchemy.orm import Session
from sqlmodel import SQLModel, col, select

from vault.audit.events import Action, Event
from vault.audit.services import Stamped, stamp
from vault.clock import utcnow
from vault.crypto.blind_index import blind_index
from vault.crypto.envelope import DataKey
from vault.crypto.errors import CryptoError
from vault.crypto.models import OwnerKey
from vault.db import InsertRows, for_driver, insert_rows
from vault.licences import sdjwt
from vault.licences.errors import BatchStale, InvalidFieldValue, StatusListFull, UnknownLicenceType
from vault.licences.lifecycle import LicenceState
from vault.licences.models import Licence, LicenceField, LicenceVersion, StatusEntry
from vault.licences.services import JWT_FIELD, LicenceService, _as_date, _end_of_day
from vault.licences.types import FieldType, FieldValue, LicenceType
from vault.owners.errors import InvalidIdentifier
from vault.owners.identifiers import parse_credit_code, parse_resident_id
from vault.owners.models import BlindIndex, Owner, OwnerKind
from vault.owners.services import IDENTIFIER_INDEX, identity

_T = TypeVar("_T")
NO_SUCH_OWNER = "no owner with this identifier"
MAX_INTEGER_DIGITS = 18
_SLOT_ROUND = 5_000  # candidate slots asked about per statement


class RowStatus(StrEnum):
    ISSUED = "issued"
    ALREADY_ISSUED = "already_issued"  # the same number for the same owner: nothing written, nothing wrong
    INVALID = "invalid"  # nothing written for this row; `problems` says why


@dataclass(frozen=True)
class BulkRow:
    """One licence to issue: the owner's resident ID number or credit code, the type, the values by name.

    `values` is a sequence of (name, value) pairs so a name given twice can be reported; a value is a string
    (integers and dates written as text, as in CSV or GraphQL) or, from JSON, an integer.
    """

    owner: str
    type_code: str
    values: Sequence[tuple[str, object]]


@dataclass(frozen=True)
class RowProblem:
    """What is wrong with one field of a row: the field's name and the rule, never the value."""

    field: str
    message: str


@dataclass
class RowOutcome:
    index: int
    status: RowStatus
    licence_id: uuid.UUID | None = None
    state: LicenceState | None = None
    valid_until: date | None = None
    problems: list[RowProblem] = field(default_factory=list)


LICENCE_COLUMNS = (
    "id",
    "owner_id",
    "type_code",
    "issuer_code",
    "state",
    "current_version",
    "valid_until",
    "created_at",
    "updated_at",
)
INDEX_COLUMNS = ("id", "owner_id", "kind", "digest", "record_id")
VERSION_COLUMNS = (
    "id", "licence_id", "owner_id", "version", "kid", "status_idx", "valid_from", "valid_until", "issued_at",
    "superseded_at", "jwt_ct",
)  # fmt: skip
SLOT_COLUMNS = ("issuer_code", "idx", "version_id", "status", "updated_at")
FIELD_COLUMNS = ("id", "version_id", "owner_id", "name", "disclosure_ct")


@dataclass
class PreparedBatch:
    """A batch checked, signed and encrypted: what BulkIssuer.write puts in the database in one short transaction.

    It holds ciphertexts and digests only: every value of a row is sealed under its owner's key before it gets here.
    """

    outcomes: list[RowOutcome]
    inserts: list[InsertRows] = field(default_factory=list)  # in the order the foreign keys need
    events: list[Event] = field(default_factory=list)
    stamped: Stamped = field(default_factory=lambda: stamp([]))  # the events' rows, stamped when prepared
    owners: list[uuid.UUID] = field(default_factory=list)  # who is written to: must be live when written
    slots: dict[str, list[int]] = field(default_factory=dict)  # the status slots used, by issuer


def readable_name(given: str) -> str:
    """A field name as it may be echoed in an error: printable ASCII, at most 100 characters."""
    return given if len(given) <= 100 and given.isascii() and given.isprintable() else "(unreadable field name)"


def read_values(
    licence_type: LicenceType, given: Iterable[tuple[str, object]]
) -> tuple[dict[str, object], list[InvalidFieldValue]]:
    """The values given, by name, and a problem for each one that cannot even be read as its field's type.

    Integers may be written as text (CSV, GraphQL); a name given twice, or one the type does not have, is a
    problem. What the values must satisfy beyond that is the type's check_values.
    """
    values: dict[str, object] = {}
    problems: list[InvalidFieldValue] = []
    seen: set[str] = set()
    for raw_name, value in given:
        name = readable_name(raw_name)
        if name in seen:
            problems.append(InvalidFieldValue(name, "given more than once"))
            values.pop(name, None)
            continue
        seen.add(name)
        if name not in licence_type.field_names:
            problems.append(_NoSuchField(name, f"{licence_type.code} has no field {name!r}"))
        elif licence_type.field(name).type is FieldType.INTEGER and isinstance(value, str):
            text = value.strip()
            digits = text[1:] if text.startswith("-") else text
            if digits.isascii() and digits.isdigit() and len(digits) <= MAX_INTEGER_DIGITS:
                values[name] = int(text)
            else:
                problems.append(InvalidFieldValue(name, "not an integer"))
        else:
            values[name] = value
    return values, problems


class _NoSuchField(InvalidFieldValue):
    """A name the type has no field for: its message is the whole sentence, not `field 'x': rule`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0])


def owner_digests(index_key: bytes, identifier: str) -> tuple[str, bytes] | str:
    """(index kind, digest) of an owner's identifier, trying a resident ID number then a credit code; else why not.

    The same order and messages as the single mutation's owner lookup (api.reads.find_owner).
    """
    problems = []
    for kind, parse in ((OwnerKind.PERSON, parse_resident_id), (OwnerKind.ENTERPRISE, parse_credit_code)):
        try:
            parsed = parse(identifier)
        except InvalidIdentifier as error:
            problems.append(str(error))
            continue
        index_kind = IDENTIFIER_INDEX[kind]
        return index_kind, blind_index(index_key, index_kind, parsed)
    return "owner is not a valid identifier: " + "; ".join(problems)


@dataclass
class _Row:
    """A row on its way through the checks; `problems` empty means it will be written."""

    index: int
    given: BulkRow
    licence_type: LicenceType | None = None
    owner: Owner | None = None
    owner_digest: tuple[str, bytes] | None = None
    checked: dict[str, FieldValue] = field(default_factory=dict)
    number_digest: bytes = b""
    problems: list[RowProblem] = field(default_factory=list)
    outcome: RowOutcome | None = None


class BulkIssuer:
    """Issue a batch of rows in the caller's transaction; the caller commits (or rolls back) the batch as a whole.

    Rows that fail validation write nothing; a database error (a race for a number or a slot) raises, and the
    caller's rollback leaves none of the batch behind.
    """

    def __init__(self, licences: LicenceService) -> None:
        self.licences = licences
        self.keys = licences.keys
        self.catalogue = licences.catalogue

    def issue_batch(
        self,
        session: Session,
        rows: Sequence[BulkRow],
        *,
        issuer_code: str | None,
        actor: str | None = None,
        official: str | None = None,
        first_index: int = 0,
    ) -> list[RowOutcome]:
        """One outcome per row, in order, indexed from `first_index`: prepare() and write() in one transaction.

        `issuer_code` None (the operator's command line) lets each row's type name its own issuer; otherwise a
        row of another department's type is a problem of that row. `official` (already checked) is sealed per
        owner like the single mutation's.
        """
        prepared = self.prepare(
            session, rows, issuer_code=issuer_code, actor=actor, official=official, first_index=first_index
        )
        self.write(session, prepared)
        return prepared.outcomes

    def prepare(
        self,
        session: Session,
        rows: Sequence[BulkRow],
        *,
        issuer_code: str | None,
        actor: str | None = None,
        official: str | None = None,
        first_index: int = 0,
        slots: Mapping[str, Sequence[int]] | None = None,
    ) -> PreparedBatch:
        """Check, sign and encrypt a batch, reading `session` only (unless `official` is given: its notes are
        written); the rows to insert come back, in SQLite's driver values when the session is SQLite's.

        `slots` (by issuer, at least one per row of that issuer's types) are free status slots drawn by the
        caller, who keeps them from other batches until this one is written; None draws them here, which is
        only safe in the transaction that writes the batch.
        """
        work = [_Row(first_index + n, row) for n, row in enumerate(rows)]
        index_key = self.keys.index_key(session)
        self._types(work, issuer_code)
        self._owners(session, work, index_key)
        keys = self._values(session, work)
        twins = self._numbers(session, work, index_key)
        ready = [r for r in work if not r.problems and r.outcome is None]
        prepared = PreparedBatch([])
        if ready:
            prepared = self._build(session, ready, keys, actor, official, slots)
        for row, first in twins:
            assert row.outcome is not None and first.outcome is not None
            row.outcome.licence_id, row.outcome.state = first.outcome.licence_id, first.outcome.state
            row.outcome.valid_until = first.outcome.valid_until
        for row in work:
            if row.outcome is None:
                row.outcome = RowOutcome(row.index, RowStatus.INVALID, problems=row.problems)
        prepared.outcomes = [r.outcome for r in work if r.outcome is not None]
        bind = session.get_bind()
        if bind.dialect.name == "sqlite":
            tables = SQLModel.metadata.tables
            prepared.inserts = [for_driver(rows, tables[rows.table]) for rows in prepared.inserts]
            events = prepared.stamped.rows
            prepared.stamped = Stamped(for_driver(events, tables[events.table]), prepared.stamped.at)
        return prepared

    def write(self, session: Session, prepared: PreparedBatch) -> None:
        """Insert a prepared batch and append its events, in the caller's transaction.

        The status slots' primary key and the numbers' unique index make a batch that lost a race fail
        (IntegrityError), never share; BatchStale if an owner it writes to was erased after it was prepared.
        """
        owners = sorted(set(prepared.owners))
        live: set[uuid.UUID] = set()
        for ids in _chunks(owners, 500):
            live.update(
                session.scalars(
                    select(OwnerKey.owner_id)
                    .join(Owner, col(Owner.id) == col(OwnerKey.owner_id))
                    .where(
                        col(OwnerKey.owner_id).in_(ids),
                        col(Owner.erased_at).is_(None),
                        col(OwnerKey.wrapped).is_not(None),
                    )
                )
            )
        if len(live) != len(owners):
            raise BatchStale("an owner of this batch was erased while it was being prepared")
        connection = session.connection()  # Core executemany: the ORM's bulk path costs more than the inserts
        tables = SQLModel.metadata.tables
        for rows in prepared.inserts:
            insert_rows(connection, tables[rows.table], rows)
        self.licences.audit.append_stamped(session, prepared.events, prepared.stamped)

    # checks, each over the whole batch

    def _types(self, work: list[_Row], issuer_code: str | None) -> None:
        for row in work:
            try:
                licence_type = self.catalogue.type(row.given.type_code)
            except UnknownLicenceType as problem:
                row.problems.append(RowProblem("type", str(problem)))
                continue
            if issuer_code is not None and licence_type.issuer != issuer_code:
                message = f"{issuer_code} does not issue {licence_type.code}; {licence_type.issuer} does"
                row.problems.append(RowProblem("type", message))
                continue
            row.licence_type = licence_type

    def _owners(self, session: Session, work: list[_Row], index_key: bytes) -> None:
        for row in work:
            found = owner_digests(index_key, row.given.owner)
            if isinstance(found, str):
                row.problems.append(RowProblem("owner", found))
            else:
                row.owner_digest = found
        digests = {r.owner_digest for r in work if r.owner_digest is not None}
        by_digest: dict[tuple[str, bytes], uuid.UUID] = {}
        for kinds in _chunks(sorted(digests), 500):
            hits = session.execute(
                select(BlindIndex.kind, BlindIndex.digest, BlindIndex.owner_id).where(
                    col(BlindIndex.kind).in_({k for k, _ in kinds}), col(BlindIndex.digest).in_([d for _, d in kinds])
                )
            ).all()
            by_digest.update({(k, bytes(d)): o for k, d, o in hits})
        owner_ids = sorted(set(by_digest.values()))
        owners: dict[uuid.UUID, Owner] = {}
        for ids in _chunks(owner_ids, 500):
            owners.update({o.id: o for o in session.scalars(select(Owner).where(col(Owner.id).in_(ids)))})
        for row in work:
            if row.owner_digest is None:
                continue
            owner = owners.get(by_digest.get(row.owner_digest, uuid.UUID(int=0)))
            if owner is None or owner.erased_at is not None:
                row.problems.append(RowProblem("owner", NO_SUCH_OWNER))
            elif row.licence_type is not None and OwnerKind(owner.kind) not in row.licence_type.holders:
                row.problems.append(RowProblem("owner", f"a {owner.kind} cannot hold a {row.licence_type.code}"))
            else:
                row.owner = owner

    def _values(self, session: Session, work: list[_Row]) -> dict[uuid.UUID, DataKey]:
        holders = {r.owner.id: r.owner for r in work if r.owner is not None and r.licence_type is not None}
        keys = self.keys.owner_keys(session, sorted(holders))
        details: dict[uuid.UUID, tuple[str, str] | None] = {}
        for row in work:
            if row.licence_type is None:
                continue
            values, problems = read_values(row.licence_type, row.given.values)
            reported = {p.field for p in problems}
            checked, found = row.licence_type.check_values(values)
            if row.owner is not None:
                found += self._holder_problems(row.owner, keys.get(row.owner.id), details, row.licence_type, checked)
            problems += [p for p in found if p.field not in reported]
            row.problems += [RowProblem(p.field, str(p)) for p in problems]
            row.checked = checked
        return keys

    def _holder_problems(
        self,
        owner: Owner,
        dek: DataKey | None,
        cache: dict[uuid.UUID, tuple[str, str] | None],
        licence_type: LicenceType,
        values: Mapping[str, FieldValue],
    ) -> list[InvalidFieldValue]:
        """LicenceService.holder_problems with the owner's identity opened once per batch."""
        pairs = [(licence_type.holder_name_field, 0), (licence_type.holder_id_field, 1)]
        wanted = [(f, part) for f, part in pairs if f is not None and f in values]
        if not wanted:
            return []
        if owner.id not in cache:
            try:
                if dek is None:
                    raise CryptoError("no key")
                opened = identity(owner, dek)
                cache[owner.id] = (
                    unicodedata.normalize("NFC", opened.name).strip().upper(),
                    unicodedata.normalize("NFC", opened.identifier).strip().upper(),
                )
            except CryptoError:
                cache[owner.id] = None
        on_record = cache[owner.id]
        if on_record is None:
            return [InvalidFieldValue(wanted[0][0], "the holder was erased")]
        return [
            InvalidFieldValue(f, f"is not the holder's {'name' if part == 0 else 'identifier'} on record")
            for f, part in wanted
            if str(values[f]).strip().upper() != on_record[part]
        ]

    def _numbers(self, session: Session, work: list[_Row], index_key: bytes) -> list[tuple[_Row, _Row]]:
        """A number issued before (or earlier in the batch) to the same owner: already issued; to another: a problem."""
        candidates = [r for r in work if not r.problems and r.licence_type is not None and r.owner is not None]
        for row in candidates:
            assert row.licence_type is not None
            number = str(row.checked[row.licence_type.number_field])
            row.number_digest = blind_index(index_key, f"licence:{row.licence_type.code}", number)
        existing: dict[tuple[str, bytes], tuple[uuid.UUID, uuid.UUID | None]] = {}
        keys = sorted({(f"licence:{r.given.type_code}", r.number_digest) for r in candidates})
        for chunk in _chunks(keys, 500):
            hits = session.execute(
                select(BlindIndex.kind, BlindIndex.digest, BlindIndex.owner_id, BlindIndex.record_id).where(
                    col(BlindIndex.kind).in_({k for k, _ in chunk}), col(BlindIndex.digest).in_([d for _, d in chunk])
                )
            ).all()
            existing.update({(k, bytes(d)): (o, r) for k, d, o, r in hits})
        found_ids = [rid for _, rid in existing.values() if rid is not None]
        licences = {
            row.id: row
            for ids in _chunks(sorted(found_ids), 500)
            for row in session.scalars(select(Licence).where(col(Licence.id).in_(ids)))
        }
        in_batch: dict[tuple[str, bytes], _Row] = {}
        twins: list[tuple[_Row, _Row]] = []
        for row in candidates:
            assert row.licence_type is not None and row.owner is not None
            key = (f"licence:{row.licence_type.code}", row.number_digest)
            number_field = row.licence_type.number_field
            duplicate = f"a {row.licence_type.code} with this {number_field} already exists"
            if key in existing:
                owner_id, record_id = existing[key]
                licence = licences.get(record_id) if record_id is not None else None
                if owner_id == row.owner.id and licence is not None:
                    row.outcome = RowOutcome(
                        row.index,
                        RowStatus.ALREADY_ISSUED,
                        licence.id,
                        LicenceState(licence.state),
                        licence.valid_until,
                    )
                else:
                    row.problems.append(RowProblem(number_field, duplicate))
            elif key in in_batch:
                first = in_batch[key]
                if first.owner is not None and first.owner.id == row.owner.id:
                    row.outcome = RowOutcome(row.index, RowStatus.ALREADY_ISSUED)  # its licence: the first row's
                    twins.append((row, first))
                else:
                    row.problems.append(RowProblem(number_field, duplicate))
            else:
                in_batch[key] = row
        return twins

    # writing, every table once

    def draw_slots(self, session: Session, issuer: str, count: int, kept: Iterable[int] = ()) -> list[int]:
        """`count` distinct random free slots of the issuer's list, asking the database about many at a time.

        `kept`: slots already given to batches not yet written, which the database cannot know are taken.
        """
        capacity = self.licences.status_lists.capacity
        chosen: set[int] = set()
        kept = set(kept)
        ratio = 1.0
        for _ in range(64):
            want = count - len(chosen)
            if want == 0:
                break
            draw = min(_SLOT_ROUND, int(want / max(ratio, 0.02) * 1.2) + 8)
            candidates = {secrets.randbelow(capacity) for _ in range(draw)} - chosen - kept
            if not candidates:
                continue
            taken = set(
                session.scalars(
                    select(StatusEntry.idx).where(
                        col(StatusEntry.issuer_code) == issuer, col(StatusEntry.idx).in_(sorted(candidates))
                    )
                )
            )
            free = [c for c in candidates if c not in taken]
            ratio = len(free) / len(candidates)
            secrets.SystemRandom().shuffle(free)
            chosen.update(free[:want])
        if len(chosen) < count:
            raise StatusListFull(f"the status list of {issuer} has no free slot")
        slots = list(chosen)
        secrets.SystemRandom().shuffle(slots)  # the order of rows says nothing about the slots they get
        return slots

    def _build(
        self,
        session: Session,
        ready: list[_Row],
        keys: dict[uuid.UUID, DataKey],
        actor: str | None,
        official: str | None,
        given_slots: Mapping[str, Sequence[int]] | None,
    ) -> PreparedBatch:
        service = self.licences
        by_issuer: dict[str, list[_Row]] = {}
        for row in ready:
            assert row.licence_type is not None
            by_issuer.setdefault(row.licence_type.issuer, []).append(row)
        now = utcnow()
        today = now.date()
        official_notes: dict[int, uuid.UUID] = {}  # row index -> the official's name sealed under the row's owner
        if official:
            holders = [(r.index, r.owner.id) for r in ready if r.owner is not None]
            note_ids = service.texts.seal_many(session, [(o, keys[o]) for _, o in holders], "official", official)
            official_notes = {index: note for (index, _), note in zip(holders, note_ids, strict=True)}
        iat = int(time.time())
        licences: list[tuple[object, ...]] = []
        indexes: list[tuple[object, ...]] = []
        versions: list[tuple[object, ...]] = []
        slots: list[tuple[object, ...]] = []
        fields: list[tuple[object, ...]] = []
        events: list[Event] = []
        used: dict[str, list[int]] = {}
        for issuer, rows in by_issuer.items():
            signer = service.issuers.signer(session, issuer)
            issuer_id = service.issuers.issuer_id(issuer)
            uri = service.status_lists.uri(issuer)
            if given_slots is None:
                drawn = self.draw_slots(session, issuer, len(rows))
            else:
                drawn = list(given_slots.get(issuer, ()))[: len(rows)]
                if len(drawn) < len(rows):
                    raise StatusListFull(f"fewer status slots of {issuer} were given than the batch has rows")
            used[issuer] = drawn
            for row, slot in zip(rows, drawn, strict=True):
                assert row.licence_type is not None and row.owner is not None
                licence_type, owner_id, values = row.licence_type, row.owner.id, row.checked
                dek = keys[owner_id]
                licence_id, version_id = uuid.uuid4(), uuid.uuid4()
                valid_from, valid_until = _as_date(values.get("valid_from")), _as_date(values.get("valid_until"))
                state = LicenceState.ISSUED if valid_from and valid_from > today else LicenceState.ACTIVE
                token = sdjwt.issue_sd_jwt(
                    issuer=issuer_id,
                    kid=signer.kid,
                    key=signer.key,
                    vct=licence_type.vct,
                    fields=values,
                    iat=iat,
                    exp=_end_of_day(valid_until) if valid_until else None,
                    status=sdjwt.StatusRef(idx=slot, uri=uri),
                )
                jwt, disclosures = sdjwt.split(token)
                sealed = dek.encrypt_fields(
                    {JWT_FIELD: jwt, **dict(zip(values, disclosures, strict=True))}, owner_id, version_id
                )
                code = licence_type.code
                licences.append((licence_id, owner_id, code, issuer, state.value, 1, valid_until, now, now))
                indexes.append((uuid.uuid4(), owner_id, f"licence:{code}", row.number_digest, licence_id))
                jwt_ct = sealed.pop(JWT_FIELD)
                versions.append(
                    (version_id, licence_id, owner_id, 1, signer.kid, slot, valid_from, valid_until, now, None, jwt_ct)
                )
                slots.append((issuer, slot, version_id, 0, now))
                fields.extend(
                    (field_id, version_id, owner_id, name, ct)
                    for field_id, (name, ct) in zip(_neighbour_ids(len(sealed)), sealed.items(), strict=True)
                )
                notes = {"official_note": str(official_notes[row.index])} if row.index in official_notes else {}
                events.append(
                    Event(
                        Action.LICENCE_ISSUED,
                        actor or f"issuer:{issuer}",
                        owner_id=owner_id,
                        licence_type=code,
                        licence_id=licence_id,
                        fields=tuple(values),
                        detail={"version": 1, "state": state.value, "bulk": 1, **notes},
                    )
                )
                row.outcome = RowOutcome(row.index, RowStatus.ISSUED, licence_id, state, valid_until)
        inserts = [
            InsertRows(str(Licence.__tablename__), LICENCE_COLUMNS, licences),
            InsertRows(str(BlindIndex.__tablename__), INDEX_COLUMNS, indexes),
            InsertRows(str(LicenceVersion.__tablename__), VERSION_COLUMNS, versions),
            InsertRows(str(StatusEntry.__tablename__), SLOT_COLUMNS, slots),
            InsertRows(str(LicenceField.__tablename__), FIELD_COLUMNS, fields),
        ]
        owners = sorted({r.owner.id for r in ready if r.owner is not None})
        return PreparedBatch([], inserts, events, stamp(events), owners, used)


def _neighbour_ids(count: int) -> list[uuid.UUID]:
    """Random version-4 ids that differ only in their last byte, so a version's field rows sit side by side in the
    primary key's index: one random place in it per licence instead of one per field (SQLite's inserts into a large
    index cost about a third less; see docs/performance.md). The ids are internal: a row's id says nothing the row's
    version_id does not.
    """
    assert count <= 256
    head = secrets.token_bytes(15)
    return [uuid.UUID(bytes=head + bytes([n]), version=4) for n in range(count)]


def _chunks(items: Sequence[_T], size: int) -> Iterable[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

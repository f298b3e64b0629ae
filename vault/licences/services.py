"""Licences: issue, renew, suspend, reinstate, revoke, expire; present chosen fields; verify presentations."""

from __future__ import annotations

import threading
import time
import unicodedata
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

from sqlalchemy import bindparam, insert, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import Session
from sqlmodel import col, select

from vault import clock
from vault.audit.events import Action, Event
from vault.audit.services import AuditLog
from vault.clock import utcnow
from vault.crypto.blind_index import blind_index
from vault.crypto.envelope import DataKey, FieldContext
from vault.crypto.free_text import OwnerTexts
from vault.crypto.services import VAULT_SIGNING, KeyService
from vault.db import Prepared
from vault.licences import sdjwt
from vault.licences.errors import (
    DuplicateLicence,
    HolderErased,
    HolderNotAllowed,
    IllegalTransition,
    InvalidFieldValue,
    InvalidValues,
    LicenceNotFound,
    NotTheIssuer,
)
from vault.licences.issuers import IssuerRegistry
from vault.licences.lifecycle import STATUS_BITS, TRANSITIONS, LicenceState, Step, transition
from vault.licences.models import Licence, LicenceField, LicenceHead, LicenceVersion, VersionHead
from vault.licences.sdjwt import StatusRef, Verified
from vault.licences.showing import check_showing, make_showing, verdict
from vault.licences.status import StatusLists
from vault.licences.status_list import INVALID
from vault.licences.types import FieldValue, LicenceCatalogue, LicenceType
from vault.licences.verify import verify_offline
from vault.owners.models import BlindIndex, Owner, OwnerKind
from vault.owners.services import identity

JWT_FIELD = "_issuer_jwt"  # the associated-data field name of a version's signed issuer JWT

STEP_ACTIONS = {
    Step.ACTIVATE: Action.LICENCE_ACTIVATED,
    Step.SUSPEND: Action.LICENCE_SUSPENDED,
    Step.REINSTATE: Action.LICENCE_REINSTATED,
    Step.REVOKE: Action.LICENCE_REVOKED,
    Step.EXPIRE: Action.LICENCE_EXPIRED,
    Step.RENEW: Action.LICENCE_RENEWED,
}


# Verifying is pure Python under the GIL. Six threads verifying 1,000 presentations each made the event loop, and
# so /readyz, wait for the GIL behind all six (p99 203 ms); a thread waiting on this lock does not hold the GIL, so
# one chunk at a time per process keeps the loop's wait to one switch interval.
_FIELDS = LicenceField.__table__  # type: ignore[attr-defined]
_DISCLOSURES = Prepared(
    sa_select(_FIELDS.c.version_id, _FIELDS.c.name, _FIELDS.c.disclosure_ct).where(
        _FIELDS.c.owner_id == bindparam("owner_id"),
        _FIELDS.c.version_id.in_(bindparam("versions", expanding=True)),
        _FIELDS.c.name.in_(bindparam("names", expanding=True)),
    )
)
_VERIFYING = threading.Lock()
VERIFY_CHUNK = 50


@dataclass(frozen=True)
class LicenceSummary:
    """What may be listed without opening a licence: no field values."""

    id: uuid.UUID
    owner_id: uuid.UUID
    type_code: str
    issuer_code: str
    state: str
    version: int
    valid_from: date | None
    valid_until: date | None


def _end_of_day(day: date) -> int:
    return int(datetime.combine(day + timedelta(days=1), dtime.min, tzinfo=UTC).timestamp())


def _as_date(value: FieldValue | None) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else None


def _summary(licence: Licence, version: LicenceVersion | None = None) -> LicenceSummary:
    return LicenceSummary(
        licence.id,
        licence.owner_id,
        licence.type_code,
        licence.issuer_code,
        licence.state,
        licence.current_version,
        version.valid_from if version else None,
        licence.valid_until,
    )


class LicenceService:
    def __init__(
        self,
        keys: KeyService,
        audit: AuditLog,
        catalogue: LicenceCatalogue,
        issuers: IssuerRegistry,
        status_lists: StatusLists,
    ) -> None:
        self.keys = keys
        self.audit = audit
        self.catalogue = catalogue
        self.issuers = issuers
        self.status_lists = status_lists
        self.texts = OwnerTexts(keys)

    def _notes(self, session: Session, owner_id: uuid.UUID, **texts: str | None) -> dict[str, str | int]:
        """Free text sealed under the owner's key; the access log gets only the notes' random ids."""
        return {f"{kind}_note": str(self.texts.seal(session, owner_id, kind, t)) for kind, t in texts.items() if t}

    # issuing

    def issue(
        self,
        session: Session,
        *,
        issuer_code: str,
        owner_id: uuid.UUID,
        type_code: str,
        values: Mapping[str, object],
        actor: str | None = None,
        official: str | None = None,
    ) -> Licence:
        """Issue version 1 of a licence, signed by `issuer_code`, which must be the type's issuing department."""
        licence_type = self.catalogue.type(type_code)
        self._check_issuer(licence_type, issuer_code)
        owner = session.get(Owner, owner_id)
        if owner is None or owner.erased_at is not None:
            raise LicenceNotFound("no such owner")
        if OwnerKind(owner.kind) not in licence_type.holders:
            raise HolderNotAllowed(f"a {owner.kind} cannot hold a {licence_type.code}")
        checked = self.check_values(session, owner, licence_type, values)
        number_kind = f"licence:{licence_type.code}"
        digest = blind_index(self.keys.index_key(session), number_kind, str(checked[licence_type.number_field]))
        if session.scalars(
            select(BlindIndex).where(BlindIndex.kind == number_kind, BlindIndex.digest == digest)
        ).first():
            raise DuplicateLicence(f"a {licence_type.code} with this {licence_type.number_field} already exists")
        today = utcnow().date()
        valid_from = _as_date(checked.get("valid_from"))
        state = LicenceState.ISSUED if valid_from and valid_from > today else LicenceState.ACTIVE
        licence = Licence(owner_id=owner_id, type_code=type_code, issuer_code=issuer_code, state=state.value)
        session.add(licence)
        session.flush()
        session.add(BlindIndex(owner_id=owner_id, kind=number_kind, digest=digest, record_id=licence.id))
        self._new_version(session, licence, licence_type, checked, 1)
        self.audit.append(
            session,
            Event(
                Action.LICENCE_ISSUED,
                actor or f"issuer:{issuer_code}",
                owner_id=owner_id,
                licence_type=type_code,
                licence_id=licence.id,
                fields=tuple(checked),
                detail={"version": 1, "state": state.value, **self._notes(session, owner_id, official=official)},
            ),
        )
        return licence

    def check_values(
        self, session: Session, owner: Owner, licence_type: LicenceType, values: Mapping[str, object]
    ) -> dict[str, FieldValue]:
        """The values checked against the type and the holder's identity; InvalidValues names every problem."""
        for name in values:
            licence_type.field(name)
        checked, problems = licence_type.check_values(values)
        problems += self.holder_problems(session, owner, licence_type, checked)
        if problems:
            raise InvalidValues(problems)
        return checked

    def holder_problems(
        self, session: Session, owner: Owner, licence_type: LicenceType, values: Mapping[str, FieldValue]
    ) -> list[InvalidFieldValue]:
        """A problem per holder identity field (name, ID number) that differs from the owner's own record."""
        pairs = [(licence_type.holder_name_field, "name"), (licence_type.holder_id_field, "identifier")]
        wanted = [(field, part) for field, part in pairs if field is not None and field in values]
        if not wanted:
            return []
        if owner.erased_at is not None:
            raise HolderErased("the holder was erased")
        details = identity(owner, self.keys.owner_key(session, owner.id))
        problems = []
        for field, part in wanted:
            on_record = unicodedata.normalize("NFC", getattr(details, part)).strip().upper()
            if str(values[field]).strip().upper() != on_record:
                what = "name" if part == "name" else "identifier"
                problems.append(InvalidFieldValue(field, f"is not the holder's {what} on record"))
        return problems

    def _check_issuer(self, licence_type: LicenceType, issuer_code: str) -> None:
        if licence_type.issuer != issuer_code:
            raise NotTheIssuer(f"{issuer_code} does not issue {licence_type.code}; {licence_type.issuer} does")

    def _new_version(
        self,
        session: Session,
        licence: Licence,
        licence_type: LicenceType,
        values: Mapping[str, FieldValue],
        number: int,
    ) -> LicenceVersion:
        dek = self.keys.owner_key(session, licence.owner_id)
        signer = self.issuers.signer(session, licence.issuer_code)
        valid_until = _as_date(values.get("valid_until"))
        status_idx = self.status_lists.free_slot(session, licence.issuer_code)
        token = sdjwt.issue_sd_jwt(
            issuer=self.issuers.issuer_id(licence.issuer_code),
            kid=signer.kid,
            key=signer.key,
            vct=licence_type.vct,
            fields=values,
            iat=int(time.time()),
            exp=_end_of_day(valid_until) if valid_until else None,
            status=StatusRef(idx=status_idx, uri=self.status_lists.uri(licence.issuer_code)),
        )
        jwt, _ = sdjwt.split(token)
        version = LicenceVersion(
            licence_id=licence.id,
            owner_id=licence.owner_id,
            version=number,
            kid=signer.kid,
            status_idx=status_idx,
            valid_from=_as_date(values.get("valid_from")),
            valid_until=valid_until,
            jwt_ct=b"",
        )
        version.jwt_ct = dek.encrypt_text(jwt, self._ctx(licence.owner_id, version, JWT_FIELD))
        session.add(version)
        session.flush()
        self.status_lists.claim(session, licence.issuer_code, status_idx, version.id)
        # one multi-row insert: the fields are many and identical in shape
        session.execute(
            insert(LicenceField),
            [
                {
                    "id": uuid.uuid4(),
                    "version_id": version.id,
                    "owner_id": licence.owner_id,
                    "name": name,
                    "disclosure_ct": dek.encrypt_text(disclosure, self._ctx(licence.owner_id, version, name)),
                }
                for name, disclosure in sdjwt.disclosure_map(token).items()
            ],
        )
        licence.current_version = number
        licence.valid_until = valid_until
        licence.updated_at = utcnow()
        session.flush()
        return version

    @staticmethod
    def _ctx(owner_id: uuid.UUID, version: LicenceVersion | VersionHead, field: str) -> FieldContext:
        return FieldContext(owner_id=owner_id, record_id=version.id, field=field, record_version=version.version)

    # lifecycle

    def _row(self, session: Session, licence_id: uuid.UUID) -> Licence:
        licence = session.get(Licence, licence_id)
        if licence is None:
            raise LicenceNotFound(f"no licence {licence_id}")
        return licence

    def get(self, session: Session, licence_id: uuid.UUID) -> Licence:
        """The licence, with validity applied first: a licence past its end is expired on every read."""
        licence = session.get(Licence, licence_id)
        if licence is None:
            raise LicenceNotFound(f"no licence {licence_id}")
        self._apply_validity(session, licence, utcnow().date())
        return licence

    @staticmethod
    def effective_state(
        licence: Licence | LicenceHead, version: LicenceVersion | VersionHead, today: date
    ) -> LicenceState:
        """The state as of `today`, before anyone wrote the activation or expiry step (the leader does)."""
        state = LicenceState(licence.state)
        if state == LicenceState.ISSUED and (version.valid_from is None or version.valid_from <= today):
            state = LicenceState.ACTIVE
        live = (LicenceState.ISSUED, LicenceState.ACTIVE, LicenceState.SUSPENDED)
        if licence.valid_until is not None and licence.valid_until < today and state in live:
            state = LicenceState.EXPIRED
        return state

    def apply_validity(self, session: Session, licence: Licence, version: LicenceVersion) -> None:
        """Apply validity to a licence loaded with its current version: no statement unless its state changes."""
        self._apply_validity(session, licence, utcnow().date(), version)

    def _apply_validity(
        self, session: Session, licence: Licence, today: date, version: LicenceVersion | None = None
    ) -> None:
        if licence.state == LicenceState.ISSUED:
            version = version or self.current_version(session, licence)
            if version.valid_from is None or version.valid_from <= today:
                self._step(session, licence, Step.ACTIVATE, "system")
        if (
            licence.valid_until is not None
            and licence.valid_until < today
            and licence.state
            in (
                LicenceState.ISSUED,
                LicenceState.ACTIVE,
                LicenceState.SUSPENDED,
            )
        ):
            self._step(session, licence, Step.EXPIRE, "system")

    def current_version(self, session: Session, licence: Licence) -> LicenceVersion:
        version = session.scalars(
            select(LicenceVersion).where(
                LicenceVersion.licence_id == licence.id, LicenceVersion.version == licence.current_version
            )
        ).one()
        return version

    def _step(
        self,
        session: Session,
        licence: Licence,
        step: Step,
        actor: str,
        reason: str | None = None,
        official: str | None = None,
    ) -> None:
        new_state = transition(licence.state, step)
        allowed, _ = TRANSITIONS[step]
        claimed = session.execute(  # the step is claimed in the database: of racing steps, the state decides
            update(Licence)
            .where(
                col(Licence.id) == licence.id,
                col(Licence.state).in_([s.value for s in allowed]),
                col(Licence.current_version) == licence.current_version,
            )
            .values(state=new_state.value, updated_at=utcnow())
            .returning(col(Licence.id))
            .execution_options(synchronize_session=False)
        ).first()
        session.refresh(licence)
        if claimed is None:
            raise IllegalTransition(
                f"cannot {step.value} the licence: it changed meanwhile and is now {licence.state}"
                f" (version {licence.current_version})"
            )
        if step is not Step.RENEW:
            version = self.current_version(session, licence)
            self.status_lists.set(session, licence.issuer_code, version.status_idx, STATUS_BITS[new_state])
        self.audit.append(
            session,
            Event(
                STEP_ACTIONS[step],
                actor,
                owner_id=licence.owner_id,
                licence_type=licence.type_code,
                licence_id=licence.id,
                detail={
                    "version": licence.current_version,
                    "state": new_state.value,
                    **self._notes(session, licence.owner_id, reason=reason, official=official),
                },
            ),
        )

    def change(
        self,
        session: Session,
        licence_id: uuid.UUID,
        step: Step,
        *,
        issuer_code: str,
        reason: str | None = None,
        official: str | None = None,
    ) -> Licence:
        """Suspend, reinstate or revoke, by the licence's own issuer; illegal steps raise IllegalTransition."""
        if step not in (Step.SUSPEND, Step.REINSTATE, Step.REVOKE):
            raise ValueError(f"{step.value} is not something an issuer asks for directly")
        self._check_issuer(self.catalogue.type(self._row(session, licence_id).type_code), issuer_code)
        licence = self.get(session, licence_id)
        self._step(session, licence, step, f"issuer:{issuer_code}", reason, official)
        return licence

    def renew(
        self,
        session: Session,
        licence_id: uuid.UUID,
        *,
        issuer_code: str,
        changes: Mapping[str, object],
        official: str | None = None,
    ) -> Licence:
        """A new signed version with `changes` applied; the old version is superseded and its status set invalid."""
        licence_type = self.catalogue.type(self._row(session, licence_id).type_code)
        self._check_issuer(licence_type, issuer_code)  # before get(), which may write an expiry
        licence = self.get(session, licence_id)
        holder = session.get(Owner, licence.owner_id)
        if holder is None or holder.erased_at is not None:
            raise HolderErased("the holder of this licence was erased: it can no longer be renewed")
        old = self.current_version(session, licence)
        current = self.values(session, licence, licence_type.field_names, version=old)
        checked = self.check_values(session, holder, licence_type, {**current, **changes})
        number = licence_type.number_field
        if checked[number] != current[number]:  # decrypted once, above
            raise ValueError(f"renewal cannot change {number}: issue a new licence instead")
        self._step(session, licence, Step.RENEW, f"issuer:{issuer_code}", official=official)
        self.status_lists.set(session, licence.issuer_code, old.status_idx, INVALID)
        old.superseded_at = utcnow()
        self._new_version(session, licence, licence_type, checked, old.version + 1)
        return licence

    def expire_due(self, session: Session, today: date | None = None) -> int:
        """Move every licence past its validity end to expired (`vault licences expire`); returns how many."""
        today = today or utcnow().date()
        due = session.scalars(
            select(Licence).where(
                col(Licence.valid_until) < today,
                col(Licence.state).in_([LicenceState.ISSUED, LicenceState.ACTIVE, LicenceState.SUSPENDED]),
            )
        ).all()
        pending = session.scalars(select(Licence).where(Licence.state == LicenceState.ISSUED)).all()
        for licence in {row.id: row for row in [*due, *pending]}.values():
            self._apply_validity(session, licence, today)
        return len(due)

    # reading

    def list_for_owner(self, session: Session, owner_id: uuid.UUID) -> list[LicenceSummary]:
        licences = session.scalars(
            select(Licence).where(Licence.owner_id == owner_id).order_by(col(Licence.created_at))
        ).all()
        result = []
        for licence in licences:
            self._apply_validity(session, licence, utcnow().date())
            result.append(_summary(licence, self.current_version(session, licence)))
        return result

    def _disclosures(
        self, session: Session, licence: Licence, names: Iterable[str], version: LicenceVersion, dek: DataKey
    ) -> dict[str, str]:
        """Decrypt exactly the named fields' disclosures: nothing else of the licence is opened."""
        wanted = list(dict.fromkeys(names))
        found = self.open_disclosures(session, licence.owner_id, [(version, wanted)], dek).get(version.id, {})
        missing = [n for n in wanted if n not in found and n not in self.catalogue.type(licence.type_code).field_names]
        if missing:
            raise sdjwt.UnknownField(missing[0])
        return found

    def open_disclosures(
        self,
        session: Session,
        owner_id: uuid.UUID,
        wanted: Sequence[tuple[LicenceVersion | VersionHead, Collection[str]]],
        dek: DataKey,
    ) -> dict[uuid.UUID, dict[str, str]]:
        """Decrypt exactly the named disclosures of several versions of one owner's licences, in one statement.

        Returns version id -> field name -> disclosure; a name the version has no field for is left out. Rows
        fetched for a name wanted only of another version stay sealed.
        """
        by_id = {version.id: (version, set(names)) for version, names in wanted if names}
        if not by_id:
            return {}
        names = sorted(set().union(*(n for _, n in by_id.values())))
        params = {"owner_id": owner_id, "versions": list(by_id), "names": names}
        rows = _DISCLOSURES.all(session.connection(), params)
        found: dict[uuid.UUID, dict[str, str]] = {}
        for version_id, name, ciphertext in rows:
            version, chosen = by_id[version_id]
            if name in chosen:
                opened = dek.decrypt_text(ciphertext, self._ctx(owner_id, version, name))
                found.setdefault(version_id, {})[name] = opened
        return found

    def issuer_jwt(self, version: LicenceVersion | VersionHead, dek: DataKey) -> str:
        """The version's issuer-signed JWT (no field values in it: only salted digests)."""
        return dek.decrypt_text(version.jwt_ct, self._ctx(version.owner_id, version, JWT_FIELD))

    def values(
        self,
        session: Session,
        licence: Licence,
        names: Iterable[str],
        *,
        version: LicenceVersion | None = None,
        dek: DataKey | None = None,
    ) -> dict[str, FieldValue]:
        """The named fields' values (absent optional fields are left out)."""
        version = version or self.current_version(session, licence)
        dek = dek or self.keys.owner_key(session, licence.owner_id)
        return {
            name: sdjwt.decode_disclosure(d)[2]
            for name, d in self._disclosures(session, licence, names, version, dek).items()
        }

    def view(
        self,
        session: Session,
        licence: Licence,
        names: Iterable[str],
        *,
        actor: str,
        masked: Collection[str],
        version: LicenceVersion,
    ) -> dict[str, FieldValue]:
        """The named values for a page of the owner's data space; the decryption is recorded in the same transaction.

        `masked` names the fields the page shows masked; every other field opened is recorded as shown in full.
        """
        values = self.values(session, licence, names, version=version)
        self.audit.append(
            session,
            Event(
                Action.LICENCE_VIEWED,
                actor,
                owner_id=licence.owner_id,
                licence_type=licence.type_code,
                licence_id=licence.id,
                fields=tuple(values),
                masked_fields=tuple(n for n in values if n in masked),
                detail={"version": version.version},
            ),
        )
        return values

    def present(
        self, session: Session, licence_id: uuid.UUID, fields: Iterable[str], *, actor: str, purpose: str | None = None
    ) -> str:
        """The current version's SD-JWT with exactly `fields` disclosed; the presentation is recorded."""
        licence = self.get(session, licence_id)
        names = list(dict.fromkeys(fields))
        version = self.current_version(session, licence)
        dek = self.keys.owner_key(session, licence.owner_id)
        jwt = self.issuer_jwt(version, dek)
        disclosures = self._disclosures(session, licence, names, version, dek)
        self.audit.append(
            session,
            Event(
                Action.LICENCE_PRESENTED,
                actor,
                owner_id=licence.owner_id,
                licence_type=licence.type_code,
                licence_id=licence.id,
                fields=tuple(disclosures),
                purpose=purpose,
            ),
        )
        return presentation_of(jwt, disclosures.values())

    def show(
        self, session: Session, licence_id: uuid.UUID, fields: Iterable[str], *, actor: str, nonce: str | None = None
    ) -> tuple[str, int]:
        """A showing: present() with a vault-signed expiry (and the counter's code) appended; text and expiry."""
        presentation = self.present(session, licence_id, fields, actor=actor)
        signer = self.keys.signer(session, VAULT_SIGNING)
        return make_showing(presentation, signer, now=int(clock.utcnow().timestamp()), nonce=nonce)

    def check_showing(self, session: Session, text: str, *, nonce: str | None = None) -> tuple[str, Verified | None]:
        """The counter's verdict (showing.VERDICTS) on a pasted or scanned text, and the licence's own result."""
        now = int(clock.utcnow().timestamp())
        check = check_showing(
            text, vault_keys=self.keys.trusted_public_keys(session, VAULT_SIGNING), now=now, nonce=nonce
        )
        result = self.verify(session, check.presentation, now) if check.presentation else None
        return verdict(check, result.reason if result else None), result

    # verifying

    def verify(self, session: Session, presentation: str, now: int | None = None) -> Verified:
        """Verify as an agency would offline, with this vault's published issuer metadata and status lists."""
        return self.verify_many(session, [presentation], now)[0]

    def verify_many(self, session: Session, presentations: Sequence[str], now: int | None = None) -> list[Verified]:
        """verify() for several presentations, reading the issuer metadata and status lists once."""
        metadata = {self.issuers.issuer_id(c): self.issuers.metadata(session, c) for c in self.issuers.codes()}
        lists = {self.status_lists.uri(c): self.status_lists.token(session, c) for c in self.issuers.codes()}
        at = now if now is not None else int(time.time())
        results: list[Verified] = []
        for start in range(0, len(presentations), VERIFY_CHUNK):
            with _VERIFYING:
                results.extend(
                    verify_offline(p, issuer_metadata=metadata, status_lists=lists, now=at)
                    for p in presentations[start : start + VERIFY_CHUNK]
                )
        return results


def presentation_of(jwt: str, disclosures: Iterable[str]) -> str:
    """An SD-JWT presentation: the issuer JWT with exactly these disclosures (no key binding)."""
    return jwt + "~" + "".join(d + "~" for d in disclosures)


def presentation_fields(presentation: str) -> list[str]:
    """Names of the fields a presentation discloses (unverified: for display only)."""
    return [sdjwt.decode_disclosure(d)[1] for d in sdjwt.split(presentation)[1]]

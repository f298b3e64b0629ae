"""Owners: add persons and enterprises, find them by identifier, link representatives, erase them."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import delete, update
from sqlalchemy.orm import Session
from sqlmodel import col, select

from vault.audit.events import Action, Event
from vault.audit.services import AuditLog
from vault.clock import utcnow
from vault.crypto.blind_index import blind_index
from vault.crypto.envelope import DataKey, FieldContext
from vault.crypto.errors import KeyDestroyed
from vault.crypto.services import KeyService
from vault.owners.errors import (
    DuplicateOwner,
    LinkAlreadyEnded,
    OwnerNotFound,
    RepresentativeError,
    RepresentativeNotFound,
)
from vault.owners.identifiers import mask_identifier, parse_credit_code, parse_resident_id
from vault.owners.interfaces import ErasureListener
from vault.owners.models import Account, BlindIndex, Owner, OwnerKind, Representative, RepresentativeRole

IDENTIFIER_INDEX = {OwnerKind.PERSON: "resident_id", OwnerKind.ENTERPRISE: "credit_code"}


@dataclass(frozen=True)
class OwnerSummary:
    """What may be listed about an owner: the pseudonymous id and a masked identifier, nothing more."""

    id: uuid.UUID
    kind: str
    masked_identifier: str
    state: str


@dataclass(frozen=True)
class OwnerDetails:
    id: uuid.UUID
    kind: str
    name: str
    identifier: str


def _ctx(owner_id: uuid.UUID, field: str) -> FieldContext:
    return FieldContext(owner_id=owner_id, record_id=owner_id, field=field)


def identity(owner: Owner, dek: DataKey) -> OwnerDetails:
    """The owner's decrypted name and identifier under their DEK; raises KeyDestroyed once erased."""
    if owner.name_ct is None or owner.identifier_ct is None:
        raise KeyDestroyed("this owner was erased")
    return OwnerDetails(
        owner.id,
        owner.kind,
        dek.decrypt_text(owner.name_ct, _ctx(owner.id, "name")),
        dek.decrypt_text(owner.identifier_ct, _ctx(owner.id, "identifier")),
    )


def owner_label(owners: OwnerService, session: Session, owner_id: uuid.UUID) -> str:
    """The owner id with a masked identifier, as the operator's lists show people: never a name or full number."""
    owner = owners.get(session, owner_id)
    try:
        return f"{owner_id} {mask_identifier(owners.details(session, owner).identifier)}"
    except KeyDestroyed:
        return f"{owner_id} (erased)"


class OwnerService:
    def __init__(self, keys: KeyService, audit: AuditLog, erasure_grace: timedelta) -> None:
        self.erasure_listeners: list[ErasureListener] = []
        self.keys = keys
        self.audit = audit
        self.erasure_grace = erasure_grace

    def add_person(self, session: Session, *, id_number: str, name: str, actor: str) -> Owner:
        return self._add(session, OwnerKind.PERSON, parse_resident_id(id_number), name, actor)

    def add_enterprise(self, session: Session, *, credit_code: str, name: str, actor: str) -> Owner:
        return self._add(session, OwnerKind.ENTERPRISE, parse_credit_code(credit_code), name, actor)

    def _add(self, session: Session, kind: OwnerKind, identifier: str, name: str, actor: str) -> Owner:
        name = name.strip()
        if not name or len(name) > 200:
            raise ValueError("name must be 1 to 200 characters")
        index_kind = IDENTIFIER_INDEX[kind]
        digest = blind_index(self.keys.index_key(session), index_kind, identifier)
        if self._find_digest(session, index_kind, digest) is not None:
            raise DuplicateOwner(f"an owner with this {index_kind.replace('_', ' ')} already exists")
        owner = Owner(kind=kind.value, name_ct=None, identifier_ct=None)
        session.add(owner)
        session.flush()
        dek = self.keys.create_owner_key(session, owner.id)
        owner.name_ct = dek.encrypt_text(name, _ctx(owner.id, "name"))
        owner.identifier_ct = dek.encrypt_text(identifier, _ctx(owner.id, "identifier"))
        session.add(BlindIndex(owner_id=owner.id, kind=index_kind, digest=digest))
        self.audit.append(session, Event(Action.OWNER_CREATED, actor, owner_id=owner.id, detail={"kind": kind.value}))
        session.flush()
        return owner

    def _find_digest(self, session: Session, kind: str, digest: bytes) -> BlindIndex | None:
        return session.scalars(select(BlindIndex).where(BlindIndex.kind == kind, BlindIndex.digest == digest)).first()

    def find(self, session: Session, kind: OwnerKind, identifier: str) -> Owner | None:
        """The owner with this identifier, by blind index; None if there is none (or it was erased)."""
        parsed = parse_resident_id(identifier) if kind is OwnerKind.PERSON else parse_credit_code(identifier)
        index_kind = IDENTIFIER_INDEX[kind]
        hit = self._find_digest(session, index_kind, blind_index(self.keys.index_key(session), index_kind, parsed))
        return None if hit is None else session.get(Owner, hit.owner_id)

    def get(self, session: Session, owner_id: uuid.UUID) -> Owner:
        owner = session.get(Owner, owner_id)
        if owner is None:
            raise OwnerNotFound(f"no owner {owner_id}")
        return owner

    def resolve(self, session: Session, reference: str) -> Owner:
        """An owner named by pseudonymous id or by identifier (resident ID number or credit code)."""
        try:
            return self.get(session, uuid.UUID(reference))
        except ValueError:
            pass
        kind = OwnerKind.PERSON if reference.strip()[:1].isdigit() and len(reference.strip()) == 18 else None
        for candidate in ([kind] if kind else []) + [OwnerKind.ENTERPRISE, OwnerKind.PERSON]:
            try:
                owner = self.find(session, candidate, reference)
            except ValueError:
                continue
            if owner is not None:
                return owner
        raise OwnerNotFound("no owner with that id or identifier")

    def details(self, session: Session, owner: Owner, dek: DataKey | None = None) -> OwnerDetails:
        """Decrypted name and identifier, for the owner themself or staff with a reason; raises KeyDestroyed."""
        return identity(owner, dek or self.keys.owner_key(session, owner.id))

    def summaries(self, session: Session) -> list[OwnerSummary]:
        owners = session.scalars(select(Owner).order_by(col(Owner.created_at))).all()
        keys = self.keys.owner_keys(session, [o.id for o in owners])
        result = []
        for owner in owners:
            dek = keys.get(owner.id)
            if dek is None or owner.identifier_ct is None:
                result.append(OwnerSummary(owner.id, owner.kind, "(erased)", "erased"))
                continue
            identifier = dek.decrypt_text(owner.identifier_ct, _ctx(owner.id, "identifier"))
            state = "erasure pending" if owner.erase_after else "active"
            result.append(OwnerSummary(owner.id, owner.kind, mask_identifier(identifier), state))
        return result

    # enterprise representatives

    def add_representative(
        self,
        session: Session,
        *,
        enterprise_id: uuid.UUID,
        person_id: uuid.UUID,
        role: RepresentativeRole,
        valid_from: date,
        valid_until: date | None,
        actor: str,
    ) -> Representative:
        enterprise, person = self.get(session, enterprise_id), self.get(session, person_id)
        if enterprise.erased_at is not None or person.erased_at is not None:
            raise OwnerNotFound("an erased owner can neither act nor be acted for")
        if enterprise.kind != OwnerKind.ENTERPRISE or person.kind != OwnerKind.PERSON:
            raise RepresentativeError("a representative is a person acting for an enterprise")
        if valid_until is not None and valid_until < valid_from:
            raise RepresentativeError("valid_until is before valid_from")
        link = Representative(
            owner_id=enterprise_id, person_id=person_id, role=role.value, valid_from=valid_from, valid_until=valid_until
        )
        session.add(link)
        session.flush()
        extra = {"valid_until": valid_until.isoformat()} if valid_until else {}
        self._record(session, Action.REPRESENTATIVE_ADDED, actor, link, valid_from=valid_from.isoformat(), **extra)
        return link

    def end_representative(
        self,
        session: Session,
        link_id: uuid.UUID,
        *,
        actor: str,
        enterprise_id: uuid.UUID | None = None,
        roles: frozenset[RepresentativeRole] | None = None,
    ) -> Representative:
        """End a link now. The guarded UPDATE claims the transition: of parallel attempts exactly one ends it.

        Raises RepresentativeNotFound for a link not of `enterprise_id` (when given) or of a role not in `roles`,
        LinkAlreadyEnded when the link had ended already.
        """
        link = self._link(session, link_id, enterprise_id, roles)
        claimed = session.execute(
            update(Representative)
            .where(col(Representative.id) == link_id, col(Representative.ended_at).is_(None))
            .values(ended_at=utcnow())
        )
        if getattr(claimed, "rowcount", 0) != 1:
            raise LinkAlreadyEnded("this representative link has already ended")
        session.refresh(link)
        self._record(session, Action.REPRESENTATIVE_ENDED, actor, link)
        return link

    def limit_representative(
        self,
        session: Session,
        link_id: uuid.UUID,
        valid_until: date,
        *,
        actor: str,
        enterprise_id: uuid.UUID | None = None,
        roles: frozenset[RepresentativeRole] | None = None,
    ) -> Representative:
        """Set the last day a link is in force; only a link not yet ended, claimed by a guarded UPDATE."""
        link = self._link(session, link_id, enterprise_id, roles)
        if valid_until < link.valid_from:
            raise RepresentativeError("valid_until is before valid_from")
        claimed = session.execute(
            update(Representative)
            .where(col(Representative.id) == link_id, col(Representative.ended_at).is_(None))
            .values(valid_until=valid_until)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            raise LinkAlreadyEnded("this representative link has already ended")
        session.refresh(link)
        self._record(session, Action.REPRESENTATIVE_LIMITED, actor, link, valid_until=valid_until.isoformat())
        return link

    def set_legal_representative(
        self, session: Session, *, enterprise_id: uuid.UUID, person_id: uuid.UUID, valid_from: date, actor: str
    ) -> Representative:
        """Make the person the enterprise's legal representative, ending every other legal representative link."""
        for link in self.links(session, enterprise_id):
            if link.role == RepresentativeRole.LEGAL_REPRESENTATIVE and link.ended_at is None:
                if link.person_id == person_id and link.in_force(valid_from):
                    return link  # already so: nothing changes
                with contextlib.suppress(LinkAlreadyEnded):  # ended by someone else meanwhile: the same outcome
                    self.end_representative(session, link.id, actor=actor)
        return self.add_representative(
            session,
            enterprise_id=enterprise_id,
            person_id=person_id,
            role=RepresentativeRole.LEGAL_REPRESENTATIVE,
            valid_from=valid_from,
            valid_until=None,
            actor=actor,
        )

    def links(self, session: Session, enterprise_id: uuid.UUID) -> list[Representative]:
        """Every representative link of the enterprise, past and present, oldest first."""
        return list(
            session.scalars(
                select(Representative)
                .where(Representative.owner_id == enterprise_id)
                .order_by(col(Representative.valid_from), col(Representative.created_at))
            )
        )

    def _link(
        self,
        session: Session,
        link_id: uuid.UUID,
        enterprise_id: uuid.UUID | None,
        roles: frozenset[RepresentativeRole] | None,
    ) -> Representative:
        link = session.get(Representative, link_id)
        if link is None or (enterprise_id is not None and link.owner_id != enterprise_id):
            raise RepresentativeNotFound("no such representative link for this enterprise")
        if roles is not None and RepresentativeRole(link.role) not in roles:
            raise RepresentativeNotFound("no such representative link you may change")
        return link

    def _record(self, session: Session, action: Action, actor: str, link: Representative, **extra: str) -> None:
        detail = {"role": link.role, "link": str(link.id), "person": str(link.person_id), **extra}
        self.audit.append(session, Event(action, actor, owner_id=link.owner_id, detail=detail))

    def represented_by(self, session: Session, person_id: uuid.UUID, on: date) -> list[Representative]:
        """The enterprise links through which this person may act on `on`."""
        rows = session.scalars(select(Representative).where(Representative.person_id == person_id)).all()
        return [r for r in rows if r.in_force(on)]

    def may_act_for(self, session: Session, person_id: uuid.UUID, enterprise_id: uuid.UUID, on: date) -> bool:
        return any(r.owner_id == enterprise_id for r in self.represented_by(session, person_id, on))

    def acted_for_until(self, session: Session, person_id: uuid.UUID, enterprise_id: uuid.UUID, on: date) -> bool:
        """Whether the person had a link to the enterprise that ended or expired before `on`."""
        rows = session.scalars(
            select(Representative).where(
                Representative.person_id == person_id, Representative.owner_id == enterprise_id
            )
        ).all()
        return any(r.ended_at is not None or (r.valid_until is not None and r.valid_until < on) for r in rows)

    # erasure (crypto-shredding)

    def request_erasure(self, session: Session, owner_id: uuid.UUID, *, actor: str, now: bool = False) -> Owner:
        owner = self.get(session, owner_id)
        if owner.erased_at is not None:
            raise OwnerNotFound(f"owner {owner_id} was already erased")
        at = utcnow()
        owner.erase_requested_at = owner.erase_requested_at or at
        if now:
            owner.erase_after = at
        elif owner.erase_after is None:  # asking again does not restart the grace period
            owner.erase_after = at + self.erasure_grace
        self.audit.append(
            session,
            Event(
                Action.OWNER_ERASURE_REQUESTED,
                actor,
                owner_id=owner.id,
                detail={"erase_after": owner.erase_after.isoformat(timespec="seconds")},
            ),
        )
        if now:
            self._erase(session, owner, actor)
        session.flush()
        return owner

    def due_for_erasure(self, session: Session) -> list[uuid.UUID]:
        """The owners whose grace period has ended and who are not erased yet (each is erased on its own)."""
        return list(
            session.scalars(select(Owner.id).where(col(Owner.erase_after) <= utcnow(), col(Owner.erased_at).is_(None)))
        )

    def erase_if_due(self, session: Session, owner_id: uuid.UUID, *, actor: str = "system") -> bool:
        """Erase one owner if their grace period has ended; False if not due (or erased meanwhile)."""
        owner = session.get(Owner, owner_id)
        if owner is None or owner.erased_at is not None or owner.erase_after is None or owner.erase_after > utcnow():
            return False
        return self._erase(session, owner, actor)

    def erase_due(self, session: Session, *, actor: str = "system") -> int:
        """Destroy the keys of every owner whose grace period has ended, in this one transaction; returns how many."""
        return sum(self.erase_if_due(session, owner_id, actor=actor) for owner_id in self.due_for_erasure(session))

    def _erase(self, session: Session, owner: Owner, actor: str) -> bool:
        """Destroy the key, then everything that could still find, act for or log in as the owner.

        The erasure is claimed in the database first, so two processes erasing the same owner at once record it
        once; the loser returns False and writes nothing.
        """
        at = utcnow()
        claimed = session.execute(
            update(Owner)
            .where(col(Owner.id) == owner.id, col(Owner.erased_at).is_(None))
            .values(erased_at=at, erase_after=None)
            .returning(col(Owner.id))
            .execution_options(synchronize_session=False)
        ).first()
        session.refresh(owner)
        if claimed is None:
            return False
        for listener in self.erasure_listeners:  # grants, tokens, pending requests and web sessions end now
            listener(session, owner.id, actor)
        self.keys.destroy_owner_key(session, owner.id)
        session.execute(delete(BlindIndex).where(col(BlindIndex.owner_id) == owner.id))
        session.execute(delete(Account).where(col(Account.owner_id) == owner.id))
        session.execute(
            delete(Representative).where(
                (col(Representative.owner_id) == owner.id) | (col(Representative.person_id) == owner.id)
            )
        )
        self.audit.append(session, Event(Action.OWNER_ERASED, actor, owner_id=owner.id))
        return True

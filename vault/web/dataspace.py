"""Whose data space the citizen pages show: the person's own, or an enterprise's they represent today."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from vault.crypto.errors import KeyDestroyed
from vault.owners.errors import OwnerNotFound
from vault.web.errors import Forbidden
from vault.web.home import NOT_A_REPRESENTATIVE
from vault.web.i18n import N_
from vault.web.sessions import SignedIn, today
from vault.wiring import Vault

STAFF_HAVE_NO_SPACE = N_("Compliance staff have no data space of their own.")


@dataclass(frozen=True)
class Space:
    """Whose data the pages show, and who is looking."""

    owner_id: uuid.UUID
    person_id: uuid.UUID
    for_enterprise: bool
    enterprise_name: str | None = None  # when acting for an enterprise; None also once it was erased

    @property
    def actor(self) -> str:
        """The person acting, as the access log names them (as for consent decisions)."""
        return f"owner:{self.person_id}"


def owner_name(vault: Vault, db: Session, owner_id: uuid.UUID) -> str | None:
    """The owner's decrypted name; None once erased."""
    try:
        return vault.owners.details(db, vault.owners.get(db, owner_id)).name
    except (KeyDestroyed, OwnerNotFound):
        return None


def space_of(vault: Vault, db: Session, user: SignedIn) -> Space:
    """The signed-in person's data space, representation of an enterprise checked again here, today.

    Raises Forbidden for staff, and for a person who does not represent the enterprise they act for.
    """
    if user.is_staff or user.person_id is None:
        raise Forbidden(STAFF_HAVE_NO_SPACE)
    owner_id = user.owner_id
    assert owner_id is not None
    if owner_id == user.person_id:
        return Space(owner_id, user.person_id, for_enterprise=False)
    if not vault.owners.may_act_for(db, user.person_id, owner_id, today()):
        raise Forbidden(NOT_A_REPRESENTATIVE)
    return Space(owner_id, user.person_id, for_enterprise=True, enterprise_name=owner_name(vault, db, owner_id))


@dataclass(frozen=True)
class SpaceChoice:
    """A data space the signed-in person may decide in: their own, or an enterprise's they represent today."""

    owner_id: uuid.UUID
    name: str | None
    kind: str  # person or enterprise
    role: str | None  # legal_representative or authorised_agent for an enterprise


def reachable_spaces(vault: Vault, db: Session, person_id: uuid.UUID) -> dict[uuid.UUID, SpaceChoice]:
    """The person's own space first, then every enterprise they represent today."""
    spaces = {person_id: SpaceChoice(person_id, owner_name(vault, db, person_id), "person", None)}
    for link in vault.owners.represented_by(db, person_id, today()):
        if link.owner_id not in spaces:
            name = owner_name(vault, db, link.owner_id)
            spaces[link.owner_id] = SpaceChoice(link.owner_id, name, "enterprise", link.role)
    return spaces

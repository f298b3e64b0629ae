"""What the consent domain needs from elsewhere, as contracts: who an agency is, and what to do on revocation."""

from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy.orm import Session

from vault.policy.engine import AgencyInfo


class AgencyDirectory(Protocol):
    def info(self, session: Session, client_id: str) -> AgencyInfo:
        """The agency as policy sees it; raises KeyError for an unknown client id."""
        ...

    def display_name(self, session: Session, client_id: str, lang: str) -> str:
        """The agency's name in `lang` ("zh" or "en")."""
        ...


class RevocationListener(Protocol):
    def __call__(self, session: Session, grant_id: uuid.UUID) -> int:
        """Make everything issued under the grant unusable in this transaction; returns how many things died."""
        ...

"""What the owners domain asks of others, as contracts."""

from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy.orm import Session


class ErasureListener(Protocol):
    def __call__(self, session: Session, owner_id: uuid.UUID, actor: str) -> object:
        """End, in this transaction, whatever lets anyone still act on the owner's behalf (grants, sessions)."""
        ...

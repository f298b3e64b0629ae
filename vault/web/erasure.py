"""What the web domain ends when an owner is erased: every browser signed in as them or acting for them."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, or_
from sqlalchemy.orm import Session
from sqlmodel import col, select

from vault.owners.models import Account
from vault.web.models import WebSession


def end_sessions_for_owner(session: Session, owner_id: uuid.UUID, actor: str) -> int:
    """Sign out every browser of the owner and every one acting for them (an erasure listener)."""
    accounts = select(Account.id).where(col(Account.owner_id) == owner_id)
    result = session.execute(
        delete(WebSession).where(or_(col(WebSession.account_id).in_(accounts), col(WebSession.acting_for) == owner_id))
    )
    return int(getattr(result, "rowcount", 0) or 0)

"""Binding a redirect request to the data space it is decided in, so that it waits in that owner's inbox.

An agency's redirect request names nobody: the first signed-in owner who opens it, in a data space that may hold
the fields asked for, claims it. A guarded UPDATE, so two tabs or two people opening it at once cannot both win.
"""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlmodel import col

from vault.clock import utcnow
from vault.consent.lifecycle import RequestState
from vault.consent.models import ConsentRequest


def claim(session: Session, request_id: uuid.UUID, owner_id: uuid.UUID) -> bool:
    """Bind a pending, unbound, unexpired request to `owner_id`; True if this call did it."""
    result = session.execute(
        update(ConsentRequest)
        .where(
            col(ConsentRequest.id) == request_id,
            col(ConsentRequest.owner_id).is_(None),
            col(ConsentRequest.state) == RequestState.PENDING.value,
            col(ConsentRequest.expires_at) > utcnow(),
        )
        .values(owner_id=owner_id)
        .execution_options(synchronize_session=False)
    )
    won = getattr(result, "rowcount", 0) == 1
    if won:
        request = session.get(ConsentRequest, request_id)
        if request is not None:
            session.refresh(request)
    return won

"""A read-only unit of work cannot write, on either database: the server refuses, nothing is stored."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from vault.audit.events import Action, Event
from vault.audit.models import AuditEvent
from vault.wiring import Vault


def test_a_read_session_refuses_a_write_and_stores_nothing(vault: Vault) -> None:
    event = Event(Action.FIELDS_DENIED, "agency:test", request_id=uuid.uuid4().hex)
    with pytest.raises(DBAPIError), vault.db.read_session() as session:
        vault.audit.append(session, event)
    with vault.db.read_session() as session:
        assert session.scalars(select(AuditEvent)).all() == []


def test_a_read_session_sees_what_was_committed_before_it(vault: Vault) -> None:
    with vault.db.session() as session:
        vault.audit.append(session, Event(Action.FIELDS_DENIED, "agency:test", request_id="r1"))
    with vault.db.read_session() as session:
        assert session.execute(text("SELECT count(*) FROM audit_events")).scalar_one() == 1

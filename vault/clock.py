"""One place that says what time it is, so tests can move it and the demo can write a history."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime

_pinned: ContextVar[datetime | None] = ContextVar("vault_clock_pinned", default=None)


def utcnow() -> datetime:
    pinned = _pinned.get()
    return pinned if pinned is not None else datetime.now(UTC)


@contextlib.contextmanager
def pinned_at(moment: datetime) -> Iterator[None]:
    """Within the block (this thread or task only), utcnow() answers `moment`: the demo's synthetic history."""
    if moment.tzinfo is None:
        raise ValueError("pin the clock to an aware datetime")
    token = _pinned.set(moment)
    try:
        yield
    finally:
        _pinned.reset(token)

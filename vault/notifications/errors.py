"""Errors of the notifications domain; the web pages translate them into a 400 naming what was wrong."""

from __future__ import annotations


class NotificationError(Exception):
    """Base class of the notifications domain's errors."""


class BadPreference(NotificationError):
    """A notification setting a person entered cannot be used; `field` names which one."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class DeliveryFailed(NotificationError):
    """A channel could not hand a message over; `reason` says why without naming the destination."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent

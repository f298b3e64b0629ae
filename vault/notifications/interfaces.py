"""What the notifications domain needs from outside it: channels that deliver, and a renderer that words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from vault.notifications.models import Notification


@dataclass(frozen=True)
class Message:
    """A notification worded for a person: no field value, no identifier, only what they need to act."""

    subject: str
    text: str
    link: str


class Renderer(Protocol):
    def render(self, session: Session, notification: Notification, lang: str) -> Message:
        """Word the notification in `lang` (zh or en); never raises for a notification it cannot name fully."""
        ...


class Sender(Protocol):
    """One delivery channel (SMTP, webhook)."""

    def send(self, destination: str, message: Message, payload: dict[str, object]) -> None:
        """Hand the message to `destination`; raises DeliveryFailed (permanent or not), never anything else."""
        ...

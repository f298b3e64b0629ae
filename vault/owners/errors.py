"""Errors of the owners domain."""

from __future__ import annotations

from typing import Literal

IdentifierKind = Literal["resident_id", "credit_code"]
IdentifierRule = Literal["length", "alphabet", "birth_date", "check_character"]


class OwnerError(Exception):
    """Base class for errors about owners (persons and enterprises)."""


class InvalidIdentifier(OwnerError, ValueError):
    """An owner identifier broke one validation rule.

    `kind` names the identifier type and `rule` the rule that failed. The message says what failed and may
    name one offending character or the birth date, but never holds the whole identifier (it is personal data)
    nor the correct check character (it would complete a guessed identifier). `owner_hint`, set for a wrong
    check character, does name it: show it only to the owner entering their own number, never to an agency.
    """

    def __init__(self, kind: IdentifierKind, rule: IdentifierRule, message: str) -> None:
        super().__init__(message)
        self.kind: IdentifierKind = kind
        self.rule: IdentifierRule = rule
        self.message = message
        self.owner_hint: str | None = None

    def __reduce__(self) -> tuple[type[InvalidIdentifier], tuple[str, str, str]]:
        # The default reduce passes only the message back to __init__, which would break unpickling.
        return (type(self), (self.kind, self.rule, self.message))


class OwnerNotFound(OwnerError):
    """No owner has that id (or it was erased)."""


class DuplicateOwner(OwnerError):
    """An owner with that identifier already exists; the message never repeats the identifier."""


class RepresentativeError(OwnerError):
    """A representative link that cannot be made: wrong kinds of owner, or dates the wrong way round."""


class RepresentativeNotFound(OwnerError):
    """No representative link has that id for this enterprise."""


class LinkAlreadyEnded(RepresentativeError):
    """The link was ended already (perhaps a moment ago, by someone else): nothing was changed."""


class ActivationFailed(OwnerError):
    """An activation code is unknown, expired or used; the message does not say which."""


class InvalidText(OwnerError, ValueError):
    """Free text that cannot be stored: too long, empty, or with control, format or bidi characters.

    `field` names the argument; the message never repeats the text.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field
        self.problem = problem

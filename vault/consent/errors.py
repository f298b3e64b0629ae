"""Errors of the consent domain; the OAuth and web edges translate them."""


class ConsentError(Exception):
    """Base of every consent failure."""


class InvalidAuthorizationDetails(ConsentError):
    """The request asks for a service item, type or field its item does not allow (RFC 9396)."""


class RequestNotAllowed(ConsentError):
    """Policy refuses this agency asking for this item (not its service, or the agency is suspended)."""


class RequestNotFound(ConsentError):
    """No pending consent request with that id for this owner."""


class NotAuthorisedToConsent(ConsentError):
    """The signed-in person may not decide for this owner (not themself, not a current representative)."""


class GrantNotFound(ConsentError):
    """No grant with that id for this owner."""


class IllegalGrantTransition(ConsentError):
    """A grant or request step its current state does not allow; the message names the state."""


class RequestAlreadyDecided(RequestNotFound):
    """Another decision on the same request won (it was approved, denied or expired a moment ago)."""


class GrantNotLive(ConsentError):
    """The grant is not in force (revoked, expired, exhausted, not yet valid, or its use limit was reached)."""

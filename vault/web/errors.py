"""Why a page refused a request; turned into a redirect or an error page by the handlers in vault.web.pages."""

from __future__ import annotations


class LoginRequired(Exception):
    """The page needs a signed-in person; answered with a redirect to /login?next=<this page>."""

    def __init__(self, next_path: str | None = None) -> None:
        super().__init__("sign-in required")
        self.next_path = next_path


class CsrfRejected(Exception):
    """A state-changing POST without the right form token or from another origin; answered with 403.

    `message` is an English msgid shown translated to the visitor; `reason` goes to the log only.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(reason)
        self.message = message
        self.reason = reason


class Forbidden(Exception):
    """A signed-in person asked for something they may not do; answered with 403 and `message` (a msgid)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

"""Errors of the answers domain: a signed answer that does not verify, and why."""


class AnswerInvalid(Exception):
    """The answer is not one the vault signed as it stands; `reason` is a stable code, the message says more.

    Reasons: malformed, wrong_type, unknown_key, bad_signature, wrong_issuer, incomplete.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)

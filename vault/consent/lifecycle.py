"""Lifecycles of consent requests and grants.

Consent request:   pending --approve--> approved
                   pending --deny-----> denied
                   pending --(time)---> expired

Grant:             pending --(valid_from reached)--> active
                   pending | active --revoke-------> revoked     (owner, representative or staff; tokens die)
                   pending | active --(valid_until)-> expired
                   active --(last permitted use)---> exhausted
Revoked, expired and exhausted are final: a new consent is a new grant.
"""

from __future__ import annotations

from enum import StrEnum

from vault.consent.errors import IllegalGrantTransition


class RequestState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"


class GrantState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"
    EXHAUSTED = "exhausted"


REQUEST_STEPS: dict[RequestState, frozenset[RequestState]] = {
    RequestState.APPROVED: frozenset({RequestState.PENDING}),
    RequestState.DENIED: frozenset({RequestState.PENDING}),
    RequestState.EXPIRED: frozenset({RequestState.PENDING}),
}

GRANT_STEPS: dict[GrantState, frozenset[GrantState]] = {
    GrantState.ACTIVE: frozenset({GrantState.PENDING}),
    GrantState.REVOKED: frozenset({GrantState.PENDING, GrantState.ACTIVE}),
    GrantState.EXPIRED: frozenset({GrantState.PENDING, GrantState.ACTIVE}),
    GrantState.EXHAUSTED: frozenset({GrantState.ACTIVE}),
}


def request_step(current: str, to: RequestState) -> RequestState:
    if RequestState(current) not in REQUEST_STEPS[to]:
        raise IllegalGrantTransition(f"the request is already {current}")
    return to


def grant_step(current: str, to: GrantState) -> GrantState:
    if GrantState(current) not in GRANT_STEPS[to]:
        raise IllegalGrantTransition(f"cannot make a grant that is {current} {to.value}")
    return to

"""The licence lifecycle: states, the steps between them, and which prior states each step allows.

      issue (valid_from in future)        issue (valid from today)
               |                                  |
               v            valid_from            v        suspend
           [issued] ---------------------->  [active] <-------------> [suspended]
               |                              |   ^ renew   reinstate     |
               |                              |   | (new version          |
               |                              |   |  supersedes old)      |
               +--------- revoke -------------+---+---------- revoke -----+--> [revoked]   (final)
               +--------- expire -------------+---+---------- expire -----+--> [expired] --renew--> [active]

Revoked is final. An expired licence can be renewed (a new version, active again); a suspended one must be
reinstated first. Every step is recorded in the access log.
"""

from __future__ import annotations

from enum import StrEnum

from vault.licences.errors import IllegalTransition
from vault.licences.status_list import INVALID, SUSPENDED, VALID


class LicenceState(StrEnum):
    ISSUED = "issued"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"
    EXPIRED = "expired"


class Step(StrEnum):
    ACTIVATE = "activate"
    SUSPEND = "suspend"
    REINSTATE = "reinstate"
    REVOKE = "revoke"
    EXPIRE = "expire"
    RENEW = "renew"


S = LicenceState
# step -> (allowed prior states, resulting state)
TRANSITIONS: dict[Step, tuple[frozenset[LicenceState], LicenceState]] = {
    Step.ACTIVATE: (frozenset({S.ISSUED}), S.ACTIVE),
    Step.SUSPEND: (frozenset({S.ACTIVE}), S.SUSPENDED),
    Step.REINSTATE: (frozenset({S.SUSPENDED}), S.ACTIVE),
    Step.REVOKE: (frozenset({S.ISSUED, S.ACTIVE, S.SUSPENDED}), S.REVOKED),
    Step.EXPIRE: (frozenset({S.ISSUED, S.ACTIVE, S.SUSPENDED}), S.EXPIRED),
    Step.RENEW: (frozenset({S.ISSUED, S.ACTIVE, S.EXPIRED}), S.ACTIVE),
}

# what the issuer's status list says about the current version in each state
STATUS_BITS = {
    S.ISSUED: VALID,
    S.ACTIVE: VALID,
    S.SUSPENDED: SUSPENDED,
    S.REVOKED: INVALID,
    S.EXPIRED: VALID,  # expiry is carried by the credential's own exp claim
}


def transition(current: str, step: Step) -> LicenceState:
    """The state after `step`; raises IllegalTransition naming the current state if the step is not allowed."""
    allowed, result = TRANSITIONS[step]
    state = LicenceState(current)
    if state not in allowed:
        raise IllegalTransition(f"cannot {step.value} a licence that is {state.value}")
    return result

"""Answers instead of data (可用不可见): decide a predicate over an owner's licences and sign the yes or no.

The vault opens only the fields the predicate reads, compares them in memory and forgets them: what leaves is the
answer, the licence's status and the time, signed with the key that signs consent receipts (EdDSA, a compact JWS
of type predicate-answer+jwt), so that anyone holding the vault's published keys can check it offline
(vault.answers.verify).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from vault.crypto import jws
from vault.crypto.services import Signer
from vault.licences.lifecycle import LicenceState
from vault.policy.predicates import ParameterValue, Predicate, PredicateTest, age_on, same_value

ANSWER_TYPE = "predicate-answer+jwt"
NO_LICENCE = "none"  # the licence status when the owner holds no licence of the type


@dataclass(frozen=True)
class Candidate:
    """One of the owner's licences of the predicate's type: its state today and the fields the predicate reads."""

    licence_id: uuid.UUID
    state: LicenceState
    values: Mapping[str, object]


@dataclass(frozen=True)
class Outcome:
    answer: bool
    licence_status: str
    licence_id: uuid.UUID | None


def decide(
    predicate: Predicate, parameters: Mapping[str, ParameterValue], candidates: Sequence[Candidate], today: date
) -> Outcome:
    """Yes when one licence counts (in force today, or, for a predicate that does not ask that, not revoked) and
    passes the test; the status reported is that licence's, else the most relevant one's (in force first)."""
    ordered = sorted(candidates, key=lambda c: c.state is not LicenceState.ACTIVE)
    for candidate in ordered:
        counts = candidate.state is LicenceState.ACTIVE or (
            not predicate.in_force and candidate.state is not LicenceState.REVOKED
        )
        if counts and _passes(predicate, parameters, candidate.values, today):
            return Outcome(True, candidate.state.value, candidate.licence_id)
    if not ordered:
        return Outcome(False, NO_LICENCE, None)
    return Outcome(False, ordered[0].state.value, ordered[0].licence_id)


def _passes(
    predicate: Predicate, parameters: Mapping[str, ParameterValue], values: Mapping[str, object], today: date
) -> bool:
    if predicate.test is PredicateTest.IN_FORCE:
        return True
    if predicate.test is PredicateTest.EQUALS:
        bound = [p for p in predicate.parameters if p.field is not None]
        return all(same_value(values.get(p.field or ""), parameters[p.name]) for p in bound)
    birth = values.get("birth_date")
    try:
        born = date.fromisoformat(str(birth))
    except ValueError:
        return False
    return age_on(born, today) >= int(parameters["years"])


@dataclass(frozen=True)
class SignedAnswer:
    id: uuid.UUID
    token: str
    claims: Mapping[str, object]


def sign_answer(
    signer: Signer,
    *,
    issuer: str,
    predicate: Predicate,
    parameters: Mapping[str, ParameterValue],
    outcome: Outcome,
    grant_id: uuid.UUID,
    client_id: str,
    at: datetime,
) -> SignedAnswer:
    """The answer as the vault signs it: no value of the owner's in it, only what was asked and the yes or no."""
    answer_id = uuid.uuid4()
    claims: dict[str, object] = {
        "iss": issuer,
        "jti": str(answer_id),
        "iat": int(at.timestamp()),
        "answered_at": at.isoformat(timespec="seconds"),
        "agency": client_id,
        "grant": str(grant_id),
        "predicate": predicate.id,
        "question": {"zh": predicate.question("zh", parameters), "en": predicate.question("en", parameters)},
        "licence_type": predicate.licence_type,
        "parameters": dict(parameters),
        "answer": outcome.answer,
        "licence_status": outcome.licence_status,
    }
    token = jws.sign_compact({"alg": "EdDSA", "typ": ANSWER_TYPE, "kid": signer.kid}, claims, signer.key)
    return SignedAnswer(answer_id, token, claims)

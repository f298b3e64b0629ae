"""Deciding a predicate over an owner's licences, and the signed answer verified offline (or not, when tampered)."""

import base64
import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import nacl.signing
import pytest

from vault.answers.errors import AnswerInvalid
from vault.answers.services import NO_LICENCE, Candidate, decide, sign_answer
from vault.answers.verify import verify_answer
from vault.crypto import jws
from vault.crypto.services import Signer
from vault.licences.lifecycle import LicenceState
from vault.licences.types import load_catalogue
from vault.policy.catalogue import ServiceCatalogue, load_service_catalogue

POLICIES = Path(__file__).resolve().parents[3] / "policies"
TODAY = date(2026, 11, 30)
ISSUER = "https://vault.example"


@pytest.fixture(scope="module")
def catalogue() -> ServiceCatalogue:
    return load_service_catalogue(POLICIES, load_catalogue(POLICIES))


def licence(state: LicenceState, **values: object) -> Candidate:
    return Candidate(uuid.uuid4(), state, values)


def test_yes_needs_a_licence_in_force_that_passes(catalogue: ServiceCatalogue) -> None:
    driving = catalogue.predicate("driving-licence-class-valid")
    c1 = {"class": "C1"}
    assert decide(driving, c1, [licence(LicenceState.ACTIVE, **c1)], TODAY).answer
    suspended = decide(driving, c1, [licence(LicenceState.SUSPENDED, **c1)], TODAY)
    assert (suspended.answer, suspended.licence_status) == (False, "suspended")
    other = decide(driving, c1, [licence(LicenceState.ACTIVE, **{"class": "B2"})], TODAY)
    assert (other.answer, other.licence_status) == (False, "active")
    both = [licence(LicenceState.EXPIRED, **c1), licence(LicenceState.ACTIVE, **c1)]
    assert decide(driving, c1, both, TODAY).licence_status == "active"
    nothing = decide(driving, c1, [], TODAY)
    assert (nothing.answer, nothing.licence_status, nothing.licence_id) == (False, NO_LICENCE, None)


def test_a_match_counts_an_expired_card_but_never_a_revoked_one(catalogue: ServiceCatalogue) -> None:
    match = catalogue.predicate("name-and-id-number-match")
    values = {"name": "演示居民甲", "id_number": "11010519850312123X"}
    asked = {"name": "演示居民甲", "id_number": "11010519850312123x"}
    assert decide(match, asked, [licence(LicenceState.EXPIRED, **values)], TODAY).answer
    assert not decide(match, asked, [licence(LicenceState.REVOKED, **values)], TODAY).answer
    assert not decide(match, dict(asked, name="演示居民乙"), [licence(LicenceState.ACTIVE, **values)], TODAY).answer


def test_age_and_in_force(catalogue: ServiceCatalogue) -> None:
    age = catalogue.predicate("holder-age-at-least")
    born = [licence(LicenceState.ACTIVE, birth_date="2008-12-01")]
    assert not decide(age, {"years": 18}, born, TODAY).answer
    assert decide(age, {"years": 17}, born, TODAY).answer
    assert not decide(age, {"years": 1}, [licence(LicenceState.ACTIVE, birth_date=None)], TODAY).answer
    in_force = catalogue.predicate("business-licence-in-force")
    assert decide(in_force, {}, [licence(LicenceState.ACTIVE)], TODAY).answer
    assert not decide(in_force, {}, [licence(LicenceState.ISSUED)], TODAY).answer


def signed(catalogue: ServiceCatalogue, key: nacl.signing.SigningKey) -> str:
    predicate = catalogue.predicate("holder-age-at-least")
    outcome = decide(predicate, {"years": 18}, [licence(LicenceState.ACTIVE, birth_date="1985-03-12")], TODAY)
    return sign_answer(
        Signer("vault-1", key),
        issuer=ISSUER,
        predicate=predicate,
        parameters={"years": 18},
        outcome=outcome,
        grant_id=uuid.uuid4(),
        client_id="transport-bureau",
        at=datetime(2026, 11, 30, 9, tzinfo=UTC),
    ).token


def test_the_answer_carries_no_value_and_verifies_with_the_published_key(catalogue: ServiceCatalogue) -> None:
    key = nacl.signing.SigningKey.generate()
    token = signed(catalogue, key)

    verified = verify_answer(token, {"vault-1": key.verify_key}, issuer=ISSUER)

    assert verified.answer is True and verified.claims["licence_status"] == "active"
    assert "1985" not in json.dumps(verified.claims)
    assert verified.claims["question"] == {"zh": "是否年满18周岁", "en": "Is the holder at least 18 years old?"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_every_kind_of_tampering_fails(catalogue: ServiceCatalogue) -> None:
    key = nacl.signing.SigningKey.generate()
    token = signed(catalogue, key)
    keys = {"vault-1": key.verify_key}
    header, payload, signature = token.split(".")
    claims = json.loads(jws.b64url_decode(payload))
    forged = _b64(json.dumps(dict(claims, answer=False)).encode())
    other_key = nacl.signing.SigningKey.generate()
    cases = {
        "bad_signature": f"{header}.{forged}.{signature}",
        "unknown_key": token,  # checked against keys without vault-1 below
        "malformed": "not.a.jws.at-all",
        "wrong_type": jws.sign_compact({"alg": "EdDSA", "typ": "consent-receipt+jwt", "kid": "vault-1"}, claims, key),
        "incomplete": jws.sign_compact(
            {"alg": "EdDSA", "typ": "predicate-answer+jwt", "kid": "vault-1"}, dict(claims, answer="yes"), key
        ),
    }
    for reason, text in cases.items():
        with pytest.raises(AnswerInvalid) as caught:
            verify_answer(text, {"other": other_key.verify_key} if reason == "unknown_key" else keys)
        assert caught.value.reason == reason, reason
    with pytest.raises(AnswerInvalid) as caught:
        verify_answer(token, keys, issuer="https://elsewhere.example")
    assert caught.value.reason == "wrong_issuer"
    with pytest.raises(AnswerInvalid) as caught:  # signed by another key under the vault's kid
        verify_answer(signed(catalogue, other_key), keys)
    assert caught.value.reason == "bad_signature"

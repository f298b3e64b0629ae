"""Showings: a presentation with a vault-signed expiry and counter code, and the one-word verdict a counter sees."""

from __future__ import annotations

import nacl.signing
import pytest

from vault.crypto.jws import b64url_decode, b64url_encode
from vault.crypto.services import Signer
from vault.licences.showing import (
    LIFETIME_SECONDS,
    ShowingCheck,
    check_showing,
    make_showing,
    new_nonce,
    normalise_nonce,
    verdict,
)

PRESENTATION = "eyJhbGciOiJFZERTQSJ9.e30.c2ln~WyJzYWx0IiwibmFtZSIsIngiXQ~"
NOW = 1_800_000_000


@pytest.fixture
def signer() -> Signer:
    return Signer("vault-1", nacl.signing.SigningKey.generate())


def keys(signer: Signer) -> dict[str, nacl.signing.VerifyKey]:
    return {signer.kid: signer.verify_key}


def test_a_showing_verifies_until_it_expires(signer: Signer) -> None:
    text, expires = make_showing(PRESENTATION, signer, now=NOW)
    assert expires == NOW + LIFETIME_SECONDS and text.startswith(PRESENTATION)
    check = check_showing(text, vault_keys=keys(signer), now=NOW + LIFETIME_SECONDS - 1)
    assert check.ok and check.presentation == PRESENTATION
    assert check_showing(text, vault_keys=keys(signer), now=expires).reason == "showing_expired"


def test_a_showing_is_bound_to_its_presentation_its_signature_and_its_counter(signer: Signer) -> None:
    text, _ = make_showing(PRESENTATION, signer, now=NOW, nonce="ABC234")
    jwt = text.rpartition("~")[2]
    other = PRESENTATION.replace("WyJzYWx0", "WyJzYWx1")
    assert check_showing(other + jwt, vault_keys=keys(signer), now=NOW).reason == "bad_showing_signature"
    header, payload, signature = jwt.split(".")
    later = b64url_encode(b64url_decode(payload).replace(str(NOW + LIFETIME_SECONDS).encode(), b"9999999999"))
    forged = f"{PRESENTATION}{header}.{later}.{signature}"
    assert check_showing(forged, vault_keys=keys(signer), now=NOW).reason == "bad_showing_signature"
    stranger = {"vault-1": nacl.signing.SigningKey.generate().verify_key}
    assert check_showing(text, vault_keys=stranger, now=NOW).reason == "bad_showing_signature"
    assert check_showing(text, vault_keys=keys(signer), now=NOW, nonce="XYZ789").reason == "wrong_nonce"
    assert check_showing(text, vault_keys=keys(signer), now=NOW, nonce="ABC234").ok


def test_a_plain_presentation_is_not_a_showing_and_the_verdict_says_ask_for_a_fresh_one(signer: Signer) -> None:
    check = check_showing(PRESENTATION, vault_keys=keys(signer), now=NOW)
    assert check == ShowingCheck("not_a_showing", PRESENTATION)
    assert verdict(check, "ok") == "not_fresh"
    assert verdict(ShowingCheck("ok", PRESENTATION), "ok") == "in_force"
    assert verdict(ShowingCheck("ok", PRESENTATION), "suspended") == "suspended"
    assert verdict(ShowingCheck("ok", PRESENTATION), "digest_mismatch") == "not_genuine"
    assert verdict(ShowingCheck("showing_expired", PRESENTATION), "ok") == "presentation_expired"
    assert verdict(ShowingCheck("bad_showing_signature", PRESENTATION), "ok") == "not_genuine"
    assert verdict(ShowingCheck("not_a_showing"), None) == "not_genuine"


def test_counter_codes_are_short_unambiguous_and_read_back_forgivingly() -> None:
    code = new_nonce()
    assert len(code) == 6 and normalise_nonce(code.lower()[:3] + "-" + code[3:]) == code
    assert normalise_nonce("ABC10O") is None and normalise_nonce("ABC") is None

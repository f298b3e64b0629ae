"""Interoperability with the reference SD-JWT implementation (the `sd-jwt` package, with jwcrypto).

Known behaviour of the reference verifier that these tests pin down:
- it silently ignores a disclosure whose digest is not in `_sd` (RFC 9901 section 7.1 says reject), so a
  changed disclosure is "rejected" there only in the sense that its value never reaches the claims;
- it checks neither `typ` nor `exp`, so those checks are ours alone.
"""

from __future__ import annotations

import json
from typing import Any

import nacl.signing
import pytest
from jwcrypto.jwk import JWK
from jwcrypto.jws import InvalidJWSSignature
from sd_jwt.common import SDObj
from sd_jwt.holder import SDJWTHolder
from sd_jwt.issuer import SDJWTIssuer
from sd_jwt.verifier import SDJWTVerifier

from vault.crypto.jws import b64url_decode, b64url_encode, canonical_json, public_jwk
from vault.licences.sdjwt import (
    StatusRef,
    decode_disclosure,
    disclosure_map,
    issue_sd_jwt,
    present,
    split,
    verify_presentation,
)

ISSUER = "https://traffic.example.gov.cn"
KID = "traffic-2025"
VCT = "https://licences.example.gov.cn/types/driving-licence"
IAT = 1_750_000_000
EXP = IAT + 6 * 365 * 86400
NOW = IAT + 86400
FIELDS: dict[str, Any] = {
    "number": "44030519900101123X",
    "name": "张三",
    "class": "C1",
    "valid_until": "2030-05-01",
    "issuing_authority": "深圳市公安局交通警察支队",
}
KEY = nacl.signing.SigningKey(b"\x33" * 32)
OTHER_KEY = nacl.signing.SigningKey(b"\x44" * 32)
PLAIN_CLAIMS = {"iss", "iat", "exp", "vct", "status"}


def _jwk(key: nacl.signing.SigningKey) -> JWK:
    return JWK.from_json(json.dumps(public_jwk(key.verify_key, KID)))


def _reference_verify(presentation: str, key: nacl.signing.SigningKey = KEY) -> dict[str, Any]:
    verifier = SDJWTVerifier(presentation, lambda iss, header: _jwk(key))
    payload: dict[str, Any] = verifier.get_verified_payload()
    return payload


def _ours(presentation: str, key: nacl.signing.SigningKey = KEY) -> Any:
    return verify_presentation(presentation, resolve_key=lambda iss, kid: key.verify_key, now=NOW)


@pytest.fixture
def licence() -> str:
    return issue_sd_jwt(
        issuer=ISSUER,
        kid=KID,
        key=KEY,
        vct=VCT,
        fields=FIELDS,
        iat=IAT,
        exp=EXP,
        status=StatusRef(idx=7, uri="https://traffic.example.gov.cn/statuslists/1"),
    )


@pytest.mark.parametrize("chosen", [["name", "class"], ["number"], [], list(FIELDS)], ids=["two", "one", "none", "all"])
def test_reference_verifier_accepts_our_presentations(licence: str, chosen: list[str]) -> None:
    payload = _reference_verify(present(licence, chosen))
    assert {name: payload[name] for name in set(payload) - PLAIN_CLAIMS} == {name: FIELDS[name] for name in chosen}
    assert payload["iss"] == ISSUER and payload["vct"] == VCT
    assert _ours(present(licence, chosen)).claims == {name: FIELDS[name] for name in chosen}


def test_changed_disclosure_is_refused_by_both(licence: str) -> None:
    jwt = split(licence)[0]
    salt, name, _ = decode_disclosure(disclosure_map(licence)["class"])
    forged = b64url_encode(canonical_json([salt, name, "A1"]))
    presentation = "~".join([jwt, forged, disclosure_map(licence)["name"], ""])
    payload = _reference_verify(presentation)
    assert "class" not in payload and payload["name"] == "张三"
    assert _ours(presentation).reason == "digest_mismatch"


def test_undecodable_disclosure_is_refused_by_both(licence: str) -> None:
    jwt = split(licence)[0]
    presentation = f"{jwt}~{b64url_encode(b'not json')}~"
    with pytest.raises(ValueError):
        _reference_verify(presentation)
    assert _ours(presentation).reason == "digest_mismatch"


def test_changed_signature_is_refused_by_both(licence: str) -> None:
    head, body, signature = split(present(licence, ["name"]))[0].split(".")
    raw = b64url_decode(signature)
    flipped = b64url_encode(raw[:-1] + bytes([raw[-1] ^ 0x01]))
    presentation = "~".join([f"{head}.{body}.{flipped}", disclosure_map(licence)["name"], ""])
    with pytest.raises(InvalidJWSSignature):
        _reference_verify(presentation)
    assert _ours(presentation).reason == "bad_signature"


def test_wrong_issuer_key_is_refused_by_both(licence: str) -> None:
    presentation = present(licence, ["name", "class"])
    with pytest.raises(InvalidJWSSignature):
        _reference_verify(presentation, key=OTHER_KEY)
    assert _ours(presentation, key=OTHER_KEY).reason == "bad_signature"


def test_reference_holder_presentation_verifies_with_ours(licence: str) -> None:
    holder = SDJWTHolder(licence)
    holder.create_presentation({"number": True, "valid_until": True})
    result = _ours(holder.sd_jwt_presentation)
    assert result.ok, result.reason
    assert result.claims == {"number": "44030519900101123X", "valid_until": "2030-05-01"}


def test_reference_issuer_licence_verifies_with_ours() -> None:
    # The reference issuer writes disclosures with \\u escapes and spaces: digests are over the exact bytes.
    private = JWK(kty="OKP", crv="Ed25519", d=b64url_encode(bytes(KEY)), x=b64url_encode(bytes(KEY.verify_key)))
    claims: dict[Any, Any] = {"iss": ISSUER, "iat": IAT, "exp": EXP, "vct": VCT}
    claims.update({SDObj(name): value for name, value in FIELDS.items()})
    issued = SDJWTIssuer(
        claims,
        private,
        sign_alg="EdDSA",
        add_decoy_claims=True,
        extra_header_parameters={"typ": "dc+sd-jwt", "kid": KID},
    ).sd_jwt_issuance
    result = _ours(issued)
    assert result.ok, result.reason
    assert result.claims == FIELDS
    narrowed = _ours(present(issued, ["name"]))
    assert narrowed.ok and narrowed.claims == {"name": "张三"}

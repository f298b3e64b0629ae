"""Issuer-signed SD-JWT VC licences: issuance, presentation and every verification outcome."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.crypto.jws import b64url_decode, b64url_encode, canonical_json, decode_unverified, sign_compact
from vault.licences.errors import LicenceError
from vault.licences.sdjwt import (
    REASONS,
    StatusRef,
    UnknownField,
    Verified,
    decode_disclosure,
    digest,
    disclosure_map,
    issue_sd_jwt,
    make_disclosure,
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
STATUS = StatusRef(idx=42, uri="https://traffic.example.gov.cn/statuslists/1")
# A synthetic driving licence (机动车驾驶证); the number is a made-up resident ID with a valid check character.
FIELDS: dict[str, Any] = {
    "number": "44030519900101123X",
    "name": "张三",
    "sex": "男",
    "address": "广东省深圳市福田区福华一路1号",
    "class": "C1",
    "valid_from": "2024-05-01",
    "valid_until": "2030-05-01",
    "issuing_authority": "深圳市公安局交通警察支队",
}
KEY = nacl.signing.SigningKey(b"\x11" * 32)
OTHER_KEY = nacl.signing.SigningKey(b"\x22" * 32)


def _issue(**overrides: Any) -> str:
    args: dict[str, Any] = {
        "issuer": ISSUER,
        "kid": KID,
        "key": KEY,
        "vct": VCT,
        "fields": FIELDS,
        "iat": IAT,
        "exp": EXP,
        "status": STATUS,
    }
    args.update(overrides)
    return issue_sd_jwt(**args)


def _resolver(key: nacl.signing.SigningKey = KEY) -> Callable[[str, str], nacl.signing.VerifyKey | None]:
    keys = {(ISSUER, KID): key.verify_key}
    return lambda iss, kid: keys.get((iss, kid))


def _verify(presentation: str, **kwargs: Any) -> Verified:
    kwargs.setdefault("resolve_key", _resolver())
    kwargs.setdefault("now", NOW)
    return verify_presentation(presentation, **kwargs)


def _payload(sd_jwt: str) -> dict[str, Any]:
    return json.loads(decode_unverified(split(sd_jwt)[0])[1])


def _hand_made(payload: dict[str, Any], disclosures: list[str], header: dict[str, Any] | None = None) -> str:
    """An SD-JWT signed by the real issuer key but assembled by hand, to reach the issuer-side checks."""
    header = header or {"alg": "EdDSA", "typ": "dc+sd-jwt", "kid": KID}
    return "~".join([sign_compact(header, payload, KEY), *disclosures, ""])


def _base_payload(disclosures: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "iss": ISSUER,
        "iat": IAT,
        "vct": VCT,
        "_sd_alg": "sha-256",
        "_sd": sorted(digest(d) for d in disclosures),
        **extra,
    }


# --- issuance --------------------------------------------------------------------------------------------


def test_issued_header_and_payload() -> None:
    sd_jwt = _issue(extra_claims={"issuing_country": "CN"})
    header, payload_bytes, _, _ = decode_unverified(split(sd_jwt)[0])
    payload = json.loads(payload_bytes)
    assert header == {"alg": "EdDSA", "typ": "dc+sd-jwt", "kid": KID}
    assert set(payload) == {"iss", "iat", "exp", "vct", "_sd_alg", "_sd", "status", "issuing_country"}
    assert payload["status"] == {"status_list": {"idx": 42, "uri": STATUS.uri}}
    assert (payload["iss"], payload["iat"], payload["exp"], payload["vct"]) == (ISSUER, IAT, EXP, VCT)
    assert payload["_sd_alg"] == "sha-256"
    # No field value, and no subject identifier, is in the clear.
    assert "sub" not in payload
    # compare whole values, not substrings: a short value like "C1" may occur by chance inside a digest
    leaves = {json.dumps(v, ensure_ascii=False) for v in payload.values()} | set(payload["_sd"])
    assert not any(value in leaves or json.dumps(value, ensure_ascii=False) in leaves for value in FIELDS.values())
    assert not any(str(value).encode() in payload_bytes for value in FIELDS.values() if len(str(value)) >= 8)


def test_every_field_is_a_salted_disclosure_listed_in_sd() -> None:
    sd_jwt = _issue()
    assert sd_jwt.endswith("~")
    _, disclosures = split(sd_jwt)
    payload = _payload(sd_jwt)
    assert len(disclosures) == len(FIELDS)
    salts = set()
    for disclosure in disclosures:
        salt, name, value = decode_disclosure(disclosure)
        assert FIELDS[name] == value
        assert len(b64url_decode(salt)) == 16
        salts.add(salt)
        assert payload["_sd"].count(digest(disclosure)) == 1
    assert len(salts) == len(FIELDS)


def test_disclosures_carry_utf8_not_escapes() -> None:
    raw = b64url_decode(disclosure_map(_issue())["name"])
    assert "张三".encode() in raw and b"\\u" not in raw


def test_sd_is_sorted_and_padded_with_decoys() -> None:
    counts = set()
    for _ in range(30):
        payload = _payload(_issue())
        assert payload["_sd"] == sorted(payload["_sd"])
        decoys = len(payload["_sd"]) - len(FIELDS)
        assert 2 <= decoys <= 6
        counts.add(decoys)
    # The number of digests varies from licence to licence, so it does not give the number of fields away.
    assert len(counts) > 1


def test_optional_claims_are_left_out() -> None:
    payload = _payload(_issue(exp=None, status=None))
    assert "exp" not in payload and "status" not in payload


def test_two_issuances_share_no_digest() -> None:
    assert not set(_payload(_issue())["_sd"]) & set(_payload(_issue())["_sd"])


def test_known_digest_of_a_disclosure() -> None:
    # RFC 9901 section 4.2.1's example disclosure and its SHA-256 digest.
    disclosure = "WyJfMjZiYzRMVC1hYzZxMktJNmNCVzVlcyIsICJmYW1pbHlfbmFtZSIsICJNw7ZiaXVzIl0"
    assert digest(disclosure) == "X9yH0Ajrdm1Oij4tWso9UzzKJvPoDxwmuEcO3XAdRC0"
    assert decode_disclosure(disclosure) == ("_26bc4LT-ac6q2KI6cBW5es", "family_name", "Möbius")


@pytest.mark.parametrize("name", ["iss", "exp", "vct", "status", "cnf", "_sd", "_sd_alg", "...", "nbf"])
def test_reserved_names_cannot_be_fields(name: str) -> None:
    with pytest.raises(ValueError):
        _issue(fields={**FIELDS, name: "x"})


@pytest.mark.parametrize("name", ["sub", "iss", "_sd", "status"])
def test_extra_claims_cannot_take_reserved_names_or_sub(name: str) -> None:
    with pytest.raises(ValueError):
        _issue(extra_claims={name: "x"})


def test_a_name_cannot_be_both_field_and_extra_claim() -> None:
    with pytest.raises(ValueError):
        _issue(extra_claims={"class": "C1"})


# --- split, disclosure_map, present ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "~", "a.b.c", "a.b.c~d1", "a.b.c~d1~kb.jwt.sig", "~d1~", "a.b.c~~d1~", "a.b.c~张~"],
)
def test_split_refuses_other_shapes(text: str) -> None:
    with pytest.raises(ValueError):
        split(text)


def test_split_and_disclosure_map() -> None:
    sd_jwt = _issue()
    jwt, disclosures = split(sd_jwt)
    assert sd_jwt == "~".join([jwt, *disclosures, ""])
    by_name = disclosure_map(sd_jwt)
    assert list(by_name) == list(FIELDS)
    assert set(by_name.values()) == set(disclosures)
    assert split(f"{jwt}~") == (jwt, [])


def test_disclosure_map_refuses_two_disclosures_of_one_name() -> None:
    jwt, disclosures = split(_issue())
    extra = make_disclosure("name", "李四")
    with pytest.raises(ValueError):
        disclosure_map("~".join([jwt, *disclosures, extra, ""]))


def test_present_chooses_exactly_the_fields() -> None:
    sd_jwt = _issue()
    jwt = split(sd_jwt)[0]
    presentation = present(sd_jwt, ["class", "name", "class"])
    assert presentation.startswith(jwt + "~") and presentation.endswith("~")
    chosen = split(presentation)[1]
    assert chosen == [disclosure_map(sd_jwt)["name"], disclosure_map(sd_jwt)["class"]]
    assert present(sd_jwt, []) == f"{jwt}~"


def test_present_refuses_unknown_fields() -> None:
    with pytest.raises(UnknownField) as info:
        present(_issue(), ["name", "blood_type"])
    assert info.value.name == "blood_type"
    assert isinstance(info.value, LicenceError)


def test_present_refuses_a_bare_string() -> None:
    with pytest.raises(TypeError):
        present(_issue(), "name")


# --- verification: success -------------------------------------------------------------------------------


def test_full_licence_verifies() -> None:
    result = _verify(_issue())
    assert result == Verified(ok=True, reason="ok", issuer=ISSUER, vct=VCT, claims=FIELDS, exp=EXP, status_ref=STATUS)


def test_presentation_reveals_only_the_chosen_fields() -> None:
    result = _verify(present(_issue(), ["name", "class", "valid_until"]))
    assert result.ok
    assert result.claims == {"name": "张三", "class": "C1", "valid_until": "2030-05-01"}


def test_presentation_with_no_fields_still_proves_the_licence() -> None:
    result = _verify(present(_issue(), []))
    assert result.ok and result.claims == {} and result.vct == VCT


def test_resolver_is_asked_for_issuer_and_kid() -> None:
    asked: list[tuple[str, str]] = []

    def resolve(iss: str, kid: str) -> nacl.signing.VerifyKey:
        asked.append((iss, kid))
        return KEY.verify_key

    assert _verify(_issue(), resolve_key=resolve).ok
    assert asked == [(ISSUER, KID)]


def test_non_string_values_survive() -> None:
    fields = {"points": 12, "endorsements": ["C1", "C2"], "restrictions": {"glasses": True}, "note": None}
    assert _verify(_issue(fields=fields)).claims == fields


# --- verification: failures ------------------------------------------------------------------------------


def test_unknown_issuer_or_key() -> None:
    assert _verify(_issue(), resolve_key=lambda iss, kid: None).reason == "unknown_issuer_or_key"
    assert _verify(_issue(kid="retired-2019")).reason == "unknown_issuer_or_key"
    assert _verify(_issue(issuer="https://forger.example")).reason == "unknown_issuer_or_key"


def test_wrong_issuer_key_is_a_bad_signature() -> None:
    result = _verify(_issue(key=OTHER_KEY))
    assert (result.ok, result.reason, result.claims, result.issuer) == (False, "bad_signature", {}, None)


def test_tampered_payload_is_a_bad_signature() -> None:
    jwt, disclosures = split(_issue())
    head, body, signature = jwt.split(".")
    payload = json.loads(b64url_decode(body))
    payload["exp"] = EXP + 10 * 365 * 86400
    forged = ".".join([head, b64url_encode(canonical_json(payload)), signature])
    assert _verify("~".join([forged, *disclosures, ""])).reason == "bad_signature"


def test_changed_signature_is_a_bad_signature() -> None:
    jwt, disclosures = split(_issue())
    head, body, signature = jwt.split(".")
    raw = b64url_decode(signature)
    flipped = b64url_encode(raw[:10] + bytes([raw[10] ^ 0x40]) + raw[11:])
    assert _verify("~".join([f"{head}.{body}.{flipped}", *disclosures, ""])).reason == "bad_signature"


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "EdDSA", "typ": "vc+sd-jwt", "kid": KID},
        {"alg": "EdDSA", "typ": "JWT", "kid": KID},
        {"alg": "EdDSA", "kid": KID},
    ],
)
def test_wrong_type(header: dict[str, Any]) -> None:
    disclosures = [make_disclosure("name", "张三")]
    assert _verify(_hand_made(_base_payload(disclosures), disclosures, header)).reason == "wrong_type"


def test_alg_none_is_the_wrong_type() -> None:
    disclosures = [make_disclosure("name", "张三")]
    jwt = _hand_made(_base_payload(disclosures), disclosures).split("~")[0]
    unsigned = b64url_encode(b'{"alg":"none","typ":"dc+sd-jwt","kid":"traffic-2025"}')
    forged = ".".join([unsigned, jwt.split(".")[1], ""])
    assert _verify("~".join([forged, *disclosures, ""])).reason == "wrong_type"


def test_changed_disclosure_is_a_digest_mismatch() -> None:
    sd_jwt = _issue()
    jwt, _ = split(sd_jwt)
    salt, name, _ = decode_disclosure(disclosure_map(sd_jwt)["class"])
    forged = b64url_encode(canonical_json([salt, name, "A1"]))
    result = _verify("~".join([jwt, forged, ""]))
    assert (result.ok, result.reason, result.claims) == (False, "digest_mismatch", {})
    # The signature held, so the verifier can still say whose licence was tampered with.
    assert result.issuer == ISSUER


def test_disclosure_from_another_licence_is_a_digest_mismatch() -> None:
    jwt = split(_issue())[0]
    borrowed = disclosure_map(_issue(fields={**FIELDS, "class": "A1"}))["class"]
    assert _verify("~".join([jwt, borrowed, ""])).reason == "digest_mismatch"


def test_same_disclosure_twice() -> None:
    sd_jwt = _issue()
    jwt, disclosures = split(sd_jwt)
    assert _verify("~".join([jwt, disclosures[0], disclosures[0], ""])).reason == "duplicate_disclosure"


def test_two_signed_disclosures_of_one_name() -> None:
    disclosures = [make_disclosure("class", "C1"), make_disclosure("class", "A1")]
    assert _verify(_hand_made(_base_payload(disclosures), disclosures)).reason == "duplicate_disclosure"


def test_disclosed_name_may_not_override_a_signed_claim() -> None:
    disclosures = [make_disclosure("class", "A1")]
    payload = _base_payload(disclosures, **{"class": "C1"})
    assert _verify(_hand_made(payload, disclosures)).reason == "malformed"


def _disclosure_of(value: list[Any]) -> str:
    return b64url_encode(canonical_json(value))


@pytest.mark.parametrize(
    "disclosure",
    [
        _disclosure_of(["salt", "C1"]),  # an array-element disclosure: not in this profile
        _disclosure_of(["salt", "name", "张三", "extra"]),
        _disclosure_of([1, "name", "张三"]),
        _disclosure_of(["salt", 7, "张三"]),
        _disclosure_of(["salt", "_sd", ["x"]]),
        _disclosure_of(["salt", "...", "x"]),
        _disclosure_of(["salt", "address", {"_sd": ["abc"]}]),  # nested disclosures are refused
        _disclosure_of(["salt", "endorsements", [{"...": "abc"}]]),
        b64url_encode(b'{"salt": "name"}'),
        b64url_encode(b"\xff\xfe"),
    ],
)
def test_signed_but_unusable_disclosures_are_malformed(disclosure: str) -> None:
    assert _verify(_hand_made(_base_payload([disclosure]), [disclosure])).reason == "malformed"


@pytest.mark.parametrize(
    "change",
    [
        {"_sd_alg": "sha-512"},
        {"_sd_alg": None},
        {"_sd": "abc"},
        {"_sd": [1, 2]},
        {"vct": None},
        {"vct": 5},
        {"iat": None},
        {"iat": "2025-01-01"},
        {"exp": "2030-01-01"},
        {"exp": True},
        {"iss": 5},
        {"status": {"status_list": {"idx": -1, "uri": STATUS.uri}}},
        {"status": {"status_list": {"idx": "1", "uri": STATUS.uri}}},
        {"status": {"status_list": {"idx": 1}}},
        {"status": {"other_mechanism": {}}},
        {"status": "revoked"},
    ],
)
def test_malformed_payloads(change: dict[str, Any]) -> None:
    disclosures = [make_disclosure("name", "张三")]
    payload = {**_base_payload(disclosures), **change}
    payload = {name: value for name, value in payload.items() if value is not None}
    assert _verify(_hand_made(payload, disclosures)).reason == "malformed"


def test_a_digest_listed_twice_is_malformed() -> None:
    disclosures = [make_disclosure("name", "张三")]
    payload = _base_payload(disclosures)
    payload["_sd"] = payload["_sd"] * 2
    assert _verify(_hand_made(payload, disclosures)).reason == "malformed"


def test_missing_kid_is_malformed() -> None:
    disclosures = [make_disclosure("name", "张三")]
    header = {"alg": "EdDSA", "typ": "dc+sd-jwt"}
    assert _verify(_hand_made(_base_payload(disclosures), disclosures, header)).reason == "malformed"


def test_critical_header_is_malformed() -> None:
    disclosures = [make_disclosure("name", "张三")]
    header = {"alg": "EdDSA", "typ": "dc+sd-jwt", "kid": KID, "crit": ["x"], "x": 1}
    assert _verify(_hand_made(_base_payload(disclosures), disclosures, header)).reason == "malformed"


@pytest.mark.parametrize(
    "presentation",
    [
        "",
        "~",
        "garbage",
        "a.b.c~",
        "a.b.c~d~",
        b64url_encode(b'{"alg":"EdDSA","typ":"dc+sd-jwt","kid":"k"}') + ".e30.AA~",  # no iss
        42,
        None,
    ],
)
def test_garbage_is_malformed(presentation: Any) -> None:
    assert _verify(presentation).reason == "malformed"


def test_key_binding_jwt_is_not_accepted() -> None:
    assert _verify(_issue() + "eyJhbGciOiJFZERTQSJ9.e30.AA").reason == "malformed"


# --- time and status -------------------------------------------------------------------------------------


def test_expiry() -> None:
    sd_jwt = _issue()
    assert _verify(sd_jwt, now=EXP - 1).ok
    expired = _verify(sd_jwt, now=EXP)
    assert (expired.ok, expired.reason, expired.claims, expired.exp) == (False, "expired", {}, EXP)
    assert _verify(_issue(exp=None), now=EXP * 10).ok


@pytest.mark.parametrize(
    ("value", "reason"),
    [(0, "ok"), (1, "revoked"), (2, "suspended"), (None, "status_unavailable"), (3, "status_unavailable")],
)
def test_status_list_value(value: int | None, reason: str) -> None:
    asked: list[tuple[str, int]] = []

    def status_of(uri: str, idx: int) -> int | None:
        asked.append((uri, idx))
        return value

    result = _verify(_issue(), status_of=status_of)
    assert (result.ok, result.reason) == (reason == "ok", reason)
    assert result.status_ref == STATUS
    assert asked == [(STATUS.uri, STATUS.idx)]
    assert result.claims == (FIELDS if reason == "ok" else {})


def test_status_is_only_checked_when_there_is_one_and_a_checker() -> None:
    def never(uri: str, idx: int) -> int | None:
        raise AssertionError("no status to check")

    assert _verify(_issue(status=None), status_of=never).ok
    assert _verify(_issue()).ok  # no checker: the caller chose not to check status


def test_expiry_is_decided_before_status() -> None:
    assert _verify(_issue(), now=EXP, status_of=lambda uri, idx: 1).reason == "expired"


def test_every_reason_is_declared() -> None:
    assert len(set(REASONS)) == 11 and "ok" in REASONS


# --- never raises ----------------------------------------------------------------------------------------

_PRESENTATION = present(_issue(), ["name", "class"])


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(_PRESENTATION) - 1), st.characters(codec="ascii"))
def test_any_one_character_change_is_refused(position: int, char: str) -> None:
    if _PRESENTATION[position] == char:
        char = "A" if char != "A" else "B"
    mutated = _PRESENTATION[:position] + char + _PRESENTATION[position + 1 :]
    result = _verify(mutated)
    assert not result.ok and result.reason in REASONS and result.claims == {}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text: str) -> None:
    assert _verify(text).reason in REASONS

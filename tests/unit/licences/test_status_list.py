"""Token Status List: the draft's worked examples, packing, compression limits and the signed token."""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping

import nacl.signing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vault.crypto.jws import b64url_decode, b64url_encode, decode_unverified, sign_compact
from vault.licences import status_list
from vault.licences.status_list import (
    INVALID,
    SUSPENDED,
    VALID,
    StatusListError,
    decode_list,
    encode_list,
    inflate,
    pack,
    read_status_list_jwt,
    status_at,
    status_list_jwt,
)

# draft-ietf-oauth-status-list, "Status List" section: 16 one-bit statuses pack to B9 A3.
DRAFT_1BIT = [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]
DRAFT_1BIT_LST = "eNrbuRgAAhcBXQ"
# ... and the two-bit example: twelve statuses pack to C9 44 F9.
DRAFT_2BIT = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3]
DRAFT_2BIT_LST = "eNo76fITAAPfAgc"

LIST_URI = "https://traffic.example.gov.cn/statuslists/1"
ISSUER = "https://traffic.example.gov.cn"
NOW = 1_750_000_000


@pytest.fixture
def key() -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(b"\x07" * 32)


def test_status_values_match_the_draft() -> None:
    assert (VALID, INVALID, SUSPENDED) == (0, 1, 2)


def test_draft_one_bit_example() -> None:
    assert pack(DRAFT_1BIT, 1) == bytes([0xB9, 0xA3])
    assert encode_list(DRAFT_1BIT, bits=1) == DRAFT_1BIT_LST
    assert decode_list(DRAFT_1BIT_LST, 1) == DRAFT_1BIT


def test_draft_two_bit_example() -> None:
    assert pack(DRAFT_2BIT, 2) == bytes([0xC9, 0x44, 0xF9])
    assert encode_list(DRAFT_2BIT) == DRAFT_2BIT_LST
    assert decode_list(DRAFT_2BIT_LST, 2) == DRAFT_2BIT
    packed = inflate(DRAFT_2BIT_LST)
    assert [status_at(packed, 2, idx) for idx in range(12)] == DRAFT_2BIT


def test_lst_is_zlib_at_best_compression() -> None:
    compressed = b64url_decode(encode_list([0] * 1000 + [1]))
    assert compressed[0] == 0x78 and compressed[1] == 0xDA  # zlib header, level 9


def test_the_last_byte_is_zero_padded() -> None:
    assert decode_list(encode_list([SUSPENDED, INVALID, VALID], bits=2), 2) == [2, 1, 0, 0]
    assert decode_list(encode_list([1], bits=1), 1) == [1, 0, 0, 0, 0, 0, 0, 0]
    assert encode_list([]) == b64url_encode(zlib.compress(b"", 9))


@given(
    st.sampled_from([1, 2, 4, 8]).flatmap(
        lambda bits: st.tuples(st.just(bits), st.lists(st.integers(0, (1 << bits) - 1), max_size=300))
    )
)
def test_round_trip_for_every_width(case: tuple[int, list[int]]) -> None:
    bits, values = case
    decoded = decode_list(encode_list(values, bits), bits)
    assert decoded[: len(values)] == values
    assert all(v == 0 for v in decoded[len(values) :])
    assert len(decoded) * bits % 8 == 0


@pytest.mark.parametrize("bits", [0, 3, 5, 16, True])
def test_only_the_draft_widths_are_allowed(bits: int) -> None:
    with pytest.raises(ValueError):
        encode_list([0], bits)
    with pytest.raises(ValueError):
        decode_list(DRAFT_1BIT_LST, bits)


@pytest.mark.parametrize(("values", "bits"), [([2], 1), ([4], 2), ([16], 4), ([256], 8), ([-1], 2), ([True], 2)])
def test_a_status_must_fit_its_width(values: list[int], bits: int) -> None:
    with pytest.raises(ValueError):
        encode_list(values, bits)


def test_status_at_refuses_indexes_outside_the_list() -> None:
    packed = pack(DRAFT_2BIT, 2)
    assert status_at(packed, 2, 11) == 3
    for idx in (-1, 12, 10_000):
        with pytest.raises(IndexError):
            status_at(packed, 2, idx)


@pytest.mark.parametrize(
    "lst",
    [
        "not base64!",
        "eNrbuRgAAhcBXQ==",
        b64url_encode(b"plain bytes, not zlib"),
        b64url_encode(zlib.compress(b"\x01\x02")[:-3]),  # truncated stream
        b64url_encode(zlib.compress(b"\x01\x02") + b"junk"),  # trailing data
    ],
)
def test_inflate_refuses_broken_lists(lst: str) -> None:
    with pytest.raises(StatusListError) as info:
        inflate(lst)
    assert info.value.reason == "malformed"


def test_inflate_refuses_a_decompression_bomb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_list, "MAX_LIST_BYTES", 1024)
    bomb = b64url_encode(zlib.compress(bytes(1025), 9))
    with pytest.raises(StatusListError) as info:
        inflate(bomb)
    assert info.value.reason == "too_large"
    assert len(inflate(b64url_encode(zlib.compress(bytes(1024), 9)))) == 1024


# --- the signed Status List Token ------------------------------------------------------------------------


def _token(key: nacl.signing.SigningKey, **overrides: object) -> str:
    args: dict[str, object] = {
        "sub": LIST_URI,
        "iss": ISSUER,
        "kid": "traffic-2025",
        "key": key,
        "values": DRAFT_2BIT,
        "iat": NOW - 60,
        "exp": NOW + 3600,
        "ttl": 300,
    }
    args.update(overrides)
    return status_list_jwt(**args)  # type: ignore[arg-type]


def _signed(key: nacl.signing.SigningKey, header: Mapping[str, object], claims: Mapping[str, object]) -> str:
    return sign_compact(header, claims, key)


def _claims(**overrides: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "sub": LIST_URI,
        "iss": ISSUER,
        "iat": NOW - 60,
        "exp": NOW + 3600,
        "ttl": 300,
        "status_list": {"bits": 2, "lst": DRAFT_2BIT_LST},
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


HEADER = {"alg": "EdDSA", "typ": "statuslist+jwt", "kid": "traffic-2025"}


def test_token_shape(key: nacl.signing.SigningKey) -> None:
    header, payload, _, _ = decode_unverified(_token(key))
    assert header == HEADER
    assert json.loads(payload) == _claims()


def test_token_round_trip(key: nacl.signing.SigningKey) -> None:
    listed = read_status_list_jwt(_token(key), key.verify_key, now=NOW, expected_sub=LIST_URI, expected_iss=ISSUER)
    assert (listed.sub, listed.iss, listed.iat, listed.exp, listed.ttl, listed.bits) == (
        LIST_URI,
        ISSUER,
        NOW - 60,
        NOW + 3600,
        300,
        2,
    )
    assert [listed.status(idx) for idx in range(12)] == DRAFT_2BIT
    assert len(listed) == 12
    with pytest.raises(IndexError):
        listed.status(12)


def test_one_bit_token(key: nacl.signing.SigningKey) -> None:
    listed = read_status_list_jwt(_token(key, values=DRAFT_1BIT, bits=1), key.verify_key, now=NOW)
    assert [listed.status(idx) for idx in range(16)] == DRAFT_1BIT


@pytest.mark.parametrize(("overrides"), [{"ttl": 0}, {"ttl": -5}, {"exp": NOW - 60}])
def test_issuing_refuses_nonsense_lifetimes(key: nacl.signing.SigningKey, overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _token(key, **overrides)


def _reason(token: str, key: nacl.signing.VerifyKey, **kwargs: object) -> str:
    with pytest.raises(StatusListError) as info:
        read_status_list_jwt(token, key, now=kwargs.pop("now", NOW), **kwargs)  # type: ignore[arg-type]
    return info.value.reason


def test_expiry_is_checked(key: nacl.signing.SigningKey) -> None:
    token = _token(key)
    assert read_status_list_jwt(token, key.verify_key, now=NOW + 3599).exp == NOW + 3600
    assert _reason(token, key.verify_key, now=NOW + 3600) == "expired"


def test_wrong_key_and_tampering(key: nacl.signing.SigningKey) -> None:
    other = nacl.signing.SigningKey(b"\x08" * 32)
    assert _reason(_token(key), other.verify_key) == "bad_signature"
    head, _, signature = _token(key).split(".")
    all_valid = b64url_encode(json.dumps(_claims(status_list={"bits": 2, "lst": encode_list([0] * 12)})).encode())
    assert _reason(f"{head}.{all_valid}.{signature}", key.verify_key) == "bad_signature"
    assert _reason("not a token", key.verify_key) == "malformed"


def test_typ_must_be_statuslist_jwt(key: nacl.signing.SigningKey) -> None:
    for typ in ("JWT", "dc+sd-jwt", None):
        header = {**HEADER, "typ": typ} if typ else {"alg": "EdDSA"}
        assert _reason(_signed(key, header, _claims()), key.verify_key) == "wrong_type"


@pytest.mark.parametrize(
    "overrides",
    [
        {"sub": None},
        {"sub": 7},
        {"iss": 7},
        {"iat": None},
        {"iat": "2025"},
        {"exp": None},
        {"exp": True},
        {"ttl": 0},
        {"ttl": "300"},
        {"status_list": None},
        {"status_list": "eNo"},
        {"status_list": {"bits": 3, "lst": DRAFT_2BIT_LST}},
        {"status_list": {"bits": 2}},
        {"status_list": {"bits": 2, "lst": 5}},
        {"status_list": {"bits": 2, "lst": DRAFT_2BIT_LST, "extra": 1}},
        {"status_list": {"bits": 2, "lst": "!!"}},
    ],
)
def test_malformed_claims_are_refused(key: nacl.signing.SigningKey, overrides: dict[str, object]) -> None:
    assert _reason(_signed(key, HEADER, _claims(**overrides)), key.verify_key) == "malformed"


def test_ttl_and_iss_are_optional(key: nacl.signing.SigningKey) -> None:
    listed = read_status_list_jwt(_signed(key, HEADER, _claims(ttl=None, iss=None)), key.verify_key, now=NOW)
    assert listed.ttl is None and listed.iss is None


def test_subject_and_issuer_must_match_the_licence(key: nacl.signing.SigningKey) -> None:
    token = _token(key)
    assert _reason(token, key.verify_key, expected_sub=LIST_URI + "x") == "wrong_subject"
    assert _reason(token, key.verify_key, expected_iss="https://other.example") == "wrong_issuer"


def test_algorithm_and_critical_headers(key: nacl.signing.SigningKey) -> None:
    body = _token(key).split(".")[1]
    unsigned = b64url_encode(b'{"alg":"none","typ":"statuslist+jwt"}')
    assert _reason(f"{unsigned}.{body}.", key.verify_key) == "bad_signature"
    critical = _signed(key, {**HEADER, "crit": ["x"], "x": 1}, _claims())
    assert _reason(critical, key.verify_key) == "malformed"

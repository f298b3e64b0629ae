"""Token Status List (IETF draft-ietf-oauth-status-list): packed, compressed, signed licence statuses.

Each licence points at one index of one list. The list is a byte array holding `bits` bits per index,
counted from the least significant bit of each byte; it travels zlib-compressed and base64url-encoded as
`lst` inside a signed `statuslist+jwt`, so a verifier can check a licence offline from a cached list.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeGuard

import nacl.signing

from vault.crypto.errors import JwsError
from vault.crypto.jws import ALG, b64url_decode, b64url_encode, json_object, sign_compact, verify_compact
from vault.licences.errors import LicenceError

VALID = 0
INVALID = 1
SUSPENDED = 2

STATUS_LIST_TYP = "statuslist+jwt"
ALLOWED_BITS = (1, 2, 4, 8)
# A bound on inflation, so a tiny hostile `lst` cannot expand into gigabytes (a zip bomb).
MAX_LIST_BYTES = 16 * 1024 * 1024


class StatusListError(LicenceError):
    """A status list or Status List Token was refused; `reason` says why.

    Reasons: "malformed", "bad_signature", "wrong_type", "expired", "wrong_subject", "wrong_issuer",
    "too_large".
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _check_bits(bits: int) -> None:
    if bits not in ALLOWED_BITS or isinstance(bits, bool):
        raise ValueError(f"bits must be one of {ALLOWED_BITS}, not {bits!r}")


def pack(values: Sequence[int], bits: int) -> bytes:
    """Pack statuses `bits` at a time, least significant bit first, zero-padding the last byte."""
    _check_bits(bits)
    limit = 1 << bits
    packed = bytearray((len(values) * bits + 7) // 8)
    for idx, value in enumerate(values):
        if isinstance(value, bool) or not 0 <= value < limit:
            raise ValueError(f"status {value!r} at index {idx} does not fit in {bits} bits")
        offset = idx * bits
        packed[offset // 8] |= value << (offset % 8)
    return bytes(packed)


def encode_list(values: Sequence[int], bits: int = 2) -> str:
    """The `lst` string for `values`: packed, zlib-compressed at the best level, base64url without padding."""
    return b64url_encode(zlib.compress(pack(values, bits), level=9))


def inflate(lst: str) -> bytes:
    """The packed byte array inside `lst`; raise StatusListError("malformed" or "too_large")."""
    try:
        compressed = b64url_decode(lst)
    except ValueError as exc:
        raise StatusListError("malformed") from exc
    inflater = zlib.decompressobj()
    try:
        packed = inflater.decompress(compressed, MAX_LIST_BYTES)
    except zlib.error as exc:
        raise StatusListError("malformed") from exc
    if inflater.unconsumed_tail:
        raise StatusListError("too_large")
    # Truncated streams and trailing garbage are both signs of a list that is not what was signed.
    if not inflater.eof or inflater.unused_data:
        raise StatusListError("malformed")
    return packed


def status_at(lst_bytes: bytes, bits: int, idx: int) -> int:
    """The status at `idx` of a packed list; IndexError for a negative index or one past the last byte."""
    _check_bits(bits)
    if isinstance(idx, bool) or not 0 <= idx < len(lst_bytes) * 8 // bits:
        raise IndexError(f"status index {idx!r} is outside the list")
    offset = idx * bits
    return (lst_bytes[offset // 8] >> (offset % 8)) & ((1 << bits) - 1)


def decode_list(lst: str, bits: int) -> list[int]:
    """Every status in `lst`, including the zero padding up to the end of the last byte."""
    _check_bits(bits)
    packed = inflate(lst)
    return [status_at(packed, bits, idx) for idx in range(len(packed) * 8 // bits)]


@dataclass(frozen=True)
class StatusList:
    """A verified Status List Token: who published it, for how long it holds, and the packed statuses."""

    sub: str
    iss: str | None
    iat: int
    exp: int
    ttl: int | None
    bits: int
    packed: bytes

    def __len__(self) -> int:
        return len(self.packed) * 8 // self.bits

    def status(self, idx: int) -> int:
        """The status at `idx` (VALID, INVALID, SUSPENDED or an application value); IndexError outside."""
        return status_at(self.packed, self.bits, idx)


def pack_sparse(size: int, statuses: Mapping[int, int], bits: int = 2) -> bytes:
    """A packed list of `size` entries, all VALID but those in `statuses`: cheap for a large, mostly-valid list."""
    _check_bits(bits)
    limit = 1 << bits
    packed = bytearray((size * bits + 7) // 8)
    for idx, value in statuses.items():
        if not 0 <= idx < size or not 0 <= value < limit:
            raise ValueError(f"status {value!r} at index {idx} does not fit the list")
        offset = idx * bits
        packed[offset // 8] |= value << (offset % 8)
    return bytes(packed)


def status_list_jwt(
    *,
    sub: str,
    iss: str,
    kid: str,
    key: nacl.signing.SigningKey,
    values: Sequence[int] | None = None,
    packed: bytes | None = None,
    iat: int,
    exp: int,
    ttl: int,
    bits: int = 2,
) -> str:
    """A signed Status List Token (typ statuslist+jwt) for `values` or already `packed` statuses.

    `sub` is the URI it is published at.
    """
    if ttl <= 0 or exp <= iat:
        raise ValueError("ttl must be positive and exp later than iat")
    if (values is None) == (packed is None):
        raise ValueError("give either values or packed")
    raw = pack(values, bits) if values is not None else packed
    assert raw is not None
    header = {"alg": ALG, "typ": STATUS_LIST_TYP, "kid": kid}
    claims = {
        "sub": sub,
        "iss": iss,
        "iat": iat,
        "exp": exp,
        "ttl": ttl,
        "status_list": {"bits": bits, "lst": b64url_encode(zlib.compress(raw, level=9))},
    }
    return sign_compact(header, claims, key)


def _int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def read_status_list_jwt(
    token: str,
    key: nacl.signing.VerifyKey,
    *,
    now: int,
    expected_sub: str | None = None,
    expected_iss: str | None = None,
) -> StatusList:
    """Verify a Status List Token under `key` at time `now` and return its list.

    Checks the EdDSA signature, typ "statuslist+jwt", the claims' shapes and that `now` is before `exp`
    (a list without `exp` is refused: a stale list could hide a revocation for ever). When given,
    `expected_sub` is the `uri` of the licence's status reference and `expected_iss` its issuer.
    Raises StatusListError; never returns an unchecked list.
    """
    try:
        header, payload = verify_compact(token, key)
        claims = json_object(payload)
    except JwsError as exc:
        reason = "bad_signature" if exc.reason in ("bad_signature", "unsupported_alg") else "malformed"
        raise StatusListError(reason) from exc
    if header.get("typ") != STATUS_LIST_TYP:
        raise StatusListError("wrong_type")
    sub, iss, iat, exp, ttl = (claims.get(name) for name in ("sub", "iss", "iat", "exp", "ttl"))
    status_list = claims.get("status_list")
    if not isinstance(sub, str) or not (iss is None or isinstance(iss, str)):
        raise StatusListError("malformed")
    if not _int(iat) or not _int(exp) or not (ttl is None or (_int(ttl) and ttl > 0)):
        raise StatusListError("malformed")
    if not isinstance(status_list, dict) or set(status_list) - {"bits", "lst", "aggregation_uri"}:
        raise StatusListError("malformed")
    bits, lst = status_list.get("bits"), status_list.get("lst")
    if not _int(bits) or bits not in ALLOWED_BITS or not isinstance(lst, str):
        raise StatusListError("malformed")
    if now >= exp:
        raise StatusListError("expired")
    if expected_sub is not None and sub != expected_sub:
        raise StatusListError("wrong_subject")
    if expected_iss is not None and iss != expected_iss:
        raise StatusListError("wrong_issuer")
    return StatusList(sub=sub, iss=iss, iat=iat, exp=exp, ttl=ttl, bits=bits, packed=inflate(lst))

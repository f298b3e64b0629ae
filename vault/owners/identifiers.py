"""Owner identifiers: the resident ID number (GB 11643-1999) and the unified social credit code (GB 32100-2015).

Parsing normalises and validates, and each failure raises `InvalidIdentifier` naming the one rule that broke.
Messages never include the identifier itself, only a single offending character or the birth date, and never
the correct check character: told it, anyone could complete a guessed identifier and probe the vault with it.
Only `InvalidIdentifier.owner_hint`, for the owner typing their own number, names the check character expected.
"""

from __future__ import annotations

import string
from datetime import date

from vault.owners.errors import IdentifierKind, InvalidIdentifier

__all__ = [
    "CREDIT_CODE_ALPHABET",
    "credit_code_check_char",
    "mask_identifier",
    "parse_credit_code",
    "parse_resident_id",
    "resident_id_check_char",
    "synthetic_credit_code",
    "synthetic_resident_id",
]

IDENTIFIER_LENGTH = 18

_DIGITS = frozenset(string.digits)

RESIDENT_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
RESIDENT_ID_CHECK_CHARS = "10X98765432"
EARLIEST_BIRTH_DATE = date(1900, 1, 1)

# The letters I, O, Z, S and V are left out so they cannot be mistaken for 1, 0, 2, 5 and U.
CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_CODE_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_CREDIT_CODE_VALUES = {char: value for value, char in enumerate(CREDIT_CODE_ALPHABET)}

# ASCII only: str.upper() would turn some non-ASCII letters into ASCII ones ("ß" into "SS") and change lengths.
_ASCII_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)


def _ascii_upper(text: str) -> str:
    # str.upper() is the same on ASCII text, and translate() with a table costs more than the rest of the parse
    return text.upper() if text.isascii() else text.translate(_ASCII_UPPER)


_LABELS: dict[IdentifierKind, str] = {
    "resident_id": "resident ID number",
    "credit_code": "unified social credit code",
}


def parse_resident_id(text: str, *, today: date | None = None) -> str:
    """Return the resident ID number in text, normalised: whitespace stripped, a final 'x' made 'X'.

    Raises InvalidIdentifier (kind "resident_id") with rule "length", "alphabet", "birth_date" or
    "check_character", checked in that order. The birth date must be a real date from 1900-01-01 to today
    (the `today` argument, by default the current local date).
    """
    value = _ascii_upper(text.strip())
    _check_length("resident_id", value)
    for position, char in enumerate(value[:-1], start=1):
        if char not in _DIGITS:
            raise _alphabet_error("resident_id", "0-9 (and X as the last)", char, position)
    if value[-1] not in _DIGITS and value[-1] != "X":
        raise _alphabet_error("resident_id", "0-9 (and X as the last)", value[-1], IDENTIFIER_LENGTH)
    _check_birth_date(value[6:14], today or date.today())
    _check_check_char("resident_id", resident_id_check_char(value[:-1]), value[-1])
    return value


def parse_credit_code(text: str) -> str:
    """Return the unified social credit code in text, normalised: whitespace stripped, letters upper case.

    Raises InvalidIdentifier (kind "credit_code") with rule "length", "alphabet" or "check_character",
    checked in that order.
    """
    value = _ascii_upper(text.strip())
    _check_length("credit_code", value)
    for position, char in enumerate(value, start=1):
        if char not in _CREDIT_CODE_VALUES:
            raise _alphabet_error("credit_code", "0-9 A-H J-N P-R T U W-Y", char, position)
    _check_check_char("credit_code", credit_code_check_char(value[:-1]), value[-1])
    return value


def resident_id_check_char(first17: str) -> str:
    """Return the GB 11643 check character (ISO 7064 MOD 11-2) for the first 17 digits of a resident ID.

    Raises ValueError unless first17 is exactly 17 ASCII digits.
    """
    if len(first17) != len(RESIDENT_ID_WEIGHTS) or not _DIGITS.issuperset(first17):
        raise ValueError("a resident ID check character needs exactly 17 digits")
    total = sum(int(char) * weight for char, weight in zip(first17, RESIDENT_ID_WEIGHTS, strict=True))
    return RESIDENT_ID_CHECK_CHARS[total % 11]


def credit_code_check_char(first17: str) -> str:
    """Return the GB 32100 check character for the first 17 characters of a unified social credit code.

    Lower-case letters are accepted. Raises ValueError unless first17 is 17 characters of the code alphabet.
    """
    chars = first17.translate(_ASCII_UPPER)
    if len(chars) != len(CREDIT_CODE_WEIGHTS) or not all(char in _CREDIT_CODE_VALUES for char in chars):
        raise ValueError("a credit code check character needs exactly 17 characters of 0-9 A-H J-N P-R T U W-Y")
    total = sum(_CREDIT_CODE_VALUES[char] * weight for char, weight in zip(chars, CREDIT_CODE_WEIGHTS, strict=True))
    # 31 - 0 would be 31, which the standard writes as 0.
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def mask_identifier(value: str) -> str:
    """Return value with all but its first 3 and last 4 characters replaced by '*'.

    An 18-character identifier becomes 3 characters, 11 stars and 4 characters. A value of 7 characters or
    fewer is masked entirely, since keeping 7 would show all of it.
    """
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def synthetic_resident_id(region: str, birth: date, sequence: int) -> str:
    """Return a resident ID number built from its parts, with a correct check character, for demo data.

    region is the 6-digit administrative division code and sequence a number from 0 to 999. Raises
    ValueError for a malformed part or a birth date before 1900-01-01 or after today.
    """
    if len(region) != 6 or not _DIGITS.issuperset(region):
        raise ValueError("region must be 6 digits")
    if not 0 <= sequence <= 999:
        raise ValueError(f"sequence must be from 0 to 999, got {sequence}")
    if not EARLIEST_BIRTH_DATE <= birth <= date.today():
        raise ValueError(f"birth date must be from 1900-01-01 to today, got {birth.isoformat()}")
    first17 = f"{region}{birth:%Y%m%d}{sequence:03d}"
    return first17 + resident_id_check_char(first17)


def synthetic_credit_code(registration_dept: str, org_type: str, region: str, body: str) -> str:
    """Return a unified social credit code built from its parts, with a correct check character, for demo data.

    registration_dept and org_type are one character each, region the 6-digit administrative division code,
    body the 9-character organisation code (its own inner check digit is not checked). Letters may be lower
    case. Raises ValueError for a malformed part.
    """
    parts = {"registration_dept": (registration_dept, 1), "org_type": (org_type, 1), "body": (body, 9)}
    for name, (part, length) in parts.items():
        if len(part) != length or not all(char in _CREDIT_CODE_VALUES for char in part.translate(_ASCII_UPPER)):
            noun = "character" if length == 1 else "characters"
            raise ValueError(f"{name} must be {length} {noun} of 0-9 A-H J-N P-R T U W-Y")
    if len(region) != 6 or not _DIGITS.issuperset(region):
        raise ValueError("region must be 6 digits")
    first17 = f"{registration_dept}{org_type}{region}{body}".translate(_ASCII_UPPER)
    return first17 + credit_code_check_char(first17)


def _check_length(kind: IdentifierKind, value: str) -> None:
    if len(value) != IDENTIFIER_LENGTH:
        raise InvalidIdentifier(
            kind, "length", f"{_LABELS[kind]} must be {IDENTIFIER_LENGTH} characters, got {len(value)}"
        )


def _alphabet_error(kind: IdentifierKind, allowed: str, char: str, position: int) -> InvalidIdentifier:
    # Positions count from 1, as a person reading the printed identifier would count them.
    message = f"{_LABELS[kind]} has a character outside {allowed}: {char!r} at position {position}"
    return InvalidIdentifier(kind, "alphabet", message)


def _check_birth_date(digits: str, today: date) -> None:
    try:
        birth = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise InvalidIdentifier(
            "resident_id", "birth_date", f"resident ID number has an impossible birth date {digits}"
        ) from None
    if birth < EARLIEST_BIRTH_DATE:
        raise InvalidIdentifier(
            "resident_id", "birth_date", f"resident ID number has a birth date before 1900-01-01: {digits}"
        )
    if birth > today:
        raise InvalidIdentifier(
            "resident_id", "birth_date", f"resident ID number has a birth date after today: {digits}"
        )


def _check_check_char(kind: IdentifierKind, expected: str, actual: str) -> None:
    if actual != expected:
        message = f"{_LABELS[kind]} check character does not match the other characters: check for a typing mistake"
        error = InvalidIdentifier(kind, "check_character", message)
        error.owner_hint = f"{_LABELS[kind]} check character is wrong: expected {expected!r}, got {actual!r}"
        raise error

"""Resident ID numbers and unified social credit codes: validation, its errors, masking and synthesis."""

from __future__ import annotations

import pickle
import string
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.owners import identifiers as ids
from vault.owners.errors import InvalidIdentifier, OwnerError

# Fixed so results do not depend on the day the suite runs.
TODAY = date(2024, 6, 30)
ALPHABET = ids.CREDIT_CODE_ALPHABET
RESIDENT_SAMPLE = "11010519491231002X"
CREDIT_SAMPLE = "91350100M000100Y43"

bounded = settings(max_examples=60, deadline=None, database=None)

regions = st.text(string.digits, min_size=6, max_size=6)
births = st.dates(min_value=date(1900, 1, 1), max_value=TODAY)
sequences = st.integers(min_value=0, max_value=999)
code_chars = st.sampled_from(ALPHABET)
bodies = st.text(ALPHABET, min_size=9, max_size=9)


@st.composite
def resident_ids(draw: st.DrawFn) -> str:
    return ids.synthetic_resident_id(draw(regions), draw(births), draw(sequences))


@st.composite
def credit_codes(draw: st.DrawFn) -> str:
    return ids.synthetic_credit_code(draw(code_chars), draw(code_chars), draw(regions), draw(bodies))


def parse_resident(text: str) -> str:
    return ids.parse_resident_id(text, today=TODAY)


def leaks(message: str, identifier: str) -> bool:
    """Whether message holds 9 or more consecutive characters of identifier (a birth date alone is 8)."""
    return any(identifier[i : i + 9] in message for i in range(len(identifier) - 8))


def substitute(value: str, position: int, char: str) -> str:
    return value[:position] + char + value[position + 1 :]


class TestErrors:
    def test_invalid_identifier_belongs_to_the_owners_domain_and_is_a_value_error(self) -> None:
        error = InvalidIdentifier("credit_code", "length", "unified social credit code must be 18 characters, got 3")
        assert isinstance(error, OwnerError)
        assert isinstance(error, ValueError)
        assert (error.kind, error.rule) == ("credit_code", "length")
        assert str(error) == error.message == "unified social credit code must be 18 characters, got 3"

    def test_invalid_identifier_survives_pickling(self) -> None:
        error = InvalidIdentifier(
            "resident_id", "birth_date", "resident ID number has an impossible birth date 19990231"
        )
        copy = pickle.loads(pickle.dumps(error))  # noqa: S301 -- round-trips our own object
        assert (copy.kind, copy.rule, str(copy)) == (error.kind, error.rule, str(error))


class TestResidentId:
    def test_well_known_sample_is_valid(self) -> None:
        assert parse_resident(RESIDENT_SAMPLE) == RESIDENT_SAMPLE
        assert ids.resident_id_check_char(RESIDENT_SAMPLE[:17]) == "X"

    def test_check_character_worked_by_hand(self) -> None:
        # 1*7+1*9+0*10+1*5+0*8+5*4+1*2+9*1+4*6+9*3+1*7+2*9+3*10+1*5+0*8+0*4+2*2 = 167; 167 mod 11 = 2 -> "X".
        total = sum(int(c) * w for c, w in zip(RESIDENT_SAMPLE[:17], ids.RESIDENT_ID_WEIGHTS, strict=True))
        assert total == 167
        assert "10X98765432"[total % 11] == "X"

    def test_normalises_lower_case_x_and_surrounding_whitespace(self) -> None:
        assert parse_resident(" \t11010519491231002x\n") == RESIDENT_SAMPLE
        assert parse_resident("\u300011010519491231002X\u3000") == RESIDENT_SAMPLE

    def test_default_today_is_the_real_date(self) -> None:
        assert ids.parse_resident_id(RESIDENT_SAMPLE) == RESIDENT_SAMPLE

    @pytest.mark.parametrize(
        ("text", "got"),
        [
            ("", 0),
            ("1101051949123100", 16),
            ("11010519491231002", 17),
            ("11010519491231002X0", 19),
            ("110105 19491231002X", 19),
        ],
    )
    def test_wrong_length(self, text: str, got: int) -> None:
        with pytest.raises(InvalidIdentifier) as caught:
            parse_resident(text)
        assert (caught.value.kind, caught.value.rule) == ("resident_id", "length")
        assert str(caught.value) == f"resident ID number must be 18 characters, got {got}"

    @pytest.mark.parametrize(
        ("text", "char", "position"),
        [
            ("1101A519491231002X", "A", 5),
            ("X10105194912310020", "X", 1),
            ("1101051949123100XX", "X", 17),
            ("11010519491231002Y", "Y", 18),
            ("110105 1949123100X", " ", 7),
            ("11010519491231002\u00df", "\u00df", 18),
            (
                "\uff11\uff11\uff10\uff11\uff10\uff15\uff11\uff19\uff14\uff19\uff11\uff12\uff13\uff11\uff10\uff10\uff12X",
                "\uff11",
                1,
            ),
        ],
    )
    def test_character_outside_alphabet(self, text: str, char: str, position: int) -> None:
        with pytest.raises(InvalidIdentifier) as caught:
            parse_resident(text)
        assert (caught.value.kind, caught.value.rule) == ("resident_id", "alphabet")
        assert str(caught.value) == (
            f"resident ID number has a character outside 0-9 (and X as the last): {char!r} at position {position}"
        )

    @pytest.mark.parametrize(
        ("birth", "message"),
        [
            ("19990231", "an impossible birth date 19990231"),
            ("19991301", "an impossible birth date 19991301"),
            ("19990000", "an impossible birth date 19990000"),
            ("19000229", "an impossible birth date 19000229"),
            ("18991231", "a birth date before 1900-01-01: 18991231"),
            ("00000101", "an impossible birth date 00000101"),
            ("20240701", "a birth date after today: 20240701"),
            ("99991231", "a birth date after today: 99991231"),
        ],
    )
    def test_bad_birth_date(self, birth: str, message: str) -> None:
        first17 = f"110105{birth}002"
        with pytest.raises(InvalidIdentifier) as caught:
            parse_resident(first17 + ids.resident_id_check_char(first17))
        assert (caught.value.kind, caught.value.rule) == ("resident_id", "birth_date")
        assert str(caught.value) == f"resident ID number has {message}"

    @pytest.mark.parametrize("birth", ["19000101", "20000229", "20240630"])
    def test_boundary_birth_dates_are_accepted(self, birth: str) -> None:
        first17 = f"110105{birth}002"
        assert parse_resident(first17 + ids.resident_id_check_char(first17))

    def test_wrong_check_character(self) -> None:
        with pytest.raises(InvalidIdentifier) as caught:
            parse_resident("110105194912310023")
        assert (caught.value.kind, caught.value.rule) == ("resident_id", "check_character")
        message = "resident ID number check character does not match the other characters: check for a typing mistake"
        assert str(caught.value) == message  # never the correct one: it would complete a guessed number
        assert caught.value.owner_hint == "resident ID number check character is wrong: expected 'X', got '3'"

    @pytest.mark.parametrize("first17", ["", "1101051949123100", "1101051949123100X", "110105194912310021"])
    def test_check_char_needs_17_digits(self, first17: str) -> None:
        with pytest.raises(ValueError, match="exactly 17 digits"):
            ids.resident_id_check_char(first17)

    @bounded
    @given(region=regions, birth=births, sequence=sequences)
    def test_every_synthetic_id_is_valid(self, region: str, birth: date, sequence: int) -> None:
        value = ids.synthetic_resident_id(region, birth, sequence)
        assert parse_resident(value) == value
        assert parse_resident(f"  {value.lower()} ") == value
        assert value[:6] == region
        assert value[6:14] == birth.strftime("%Y%m%d")
        assert int(value[14:17]) == sequence

    @bounded
    @given(value=resident_ids())
    def test_every_single_substitution_fails(self, value: str) -> None:
        for position in range(18):
            allowed = string.digits + ("X" if position == 17 else "")
            for char in allowed:
                if char == value[position]:
                    continue
                changed = substitute(value, position, char)
                with pytest.raises(InvalidIdentifier) as caught:
                    parse_resident(changed)
                assert caught.value.rule in ("birth_date", "check_character")
                assert not leaks(str(caught.value), changed)

    @bounded
    @given(value=resident_ids(), position=st.integers(0, 17), char=st.characters(exclude_characters="0123456789xX"))
    def test_substitution_outside_alphabet_fails_on_alphabet(self, value: str, position: int, char: str) -> None:
        changed = substitute(value, position, char)
        # Whitespace at either end would be stripped and show up as a length error instead.
        if changed.strip() != changed:
            return
        with pytest.raises(InvalidIdentifier) as caught:
            parse_resident(changed)
        assert caught.value.rule == "alphabet"
        assert f"at position {position + 1}" in str(caught.value)
        assert not leaks(str(caught.value), changed)

    @bounded
    @given(value=resident_ids(), data=st.data())
    def test_no_error_message_holds_the_identifier(self, value: str, data: st.DataObject) -> None:
        broken = [
            value[:-1],
            value + "1",
            substitute(value, data.draw(st.integers(0, 16)), "X"),
            value[:10] + "13" + value[12:],
            substitute(value, 17, "X" if value[17] != "X" else "0"),
        ]
        for text in broken:
            with pytest.raises(InvalidIdentifier) as caught:
                parse_resident(text)
            assert not leaks(str(caught.value), text)
            assert not leaks(str(caught.value), value)

    def test_synthetic_id_refuses_bad_parts(self) -> None:
        with pytest.raises(ValueError, match="region must be 6 digits"):
            ids.synthetic_resident_id("11010", date(1990, 1, 1), 1)
        with pytest.raises(ValueError, match="region must be 6 digits"):
            ids.synthetic_resident_id("11010A", date(1990, 1, 1), 1)
        with pytest.raises(ValueError, match="sequence must be from 0 to 999"):
            ids.synthetic_resident_id("110105", date(1990, 1, 1), 1000)
        with pytest.raises(ValueError, match="sequence must be from 0 to 999"):
            ids.synthetic_resident_id("110105", date(1990, 1, 1), -1)
        with pytest.raises(ValueError, match="birth date must be from 1900-01-01 to today"):
            ids.synthetic_resident_id("110105", date(1899, 12, 31), 1)
        with pytest.raises(ValueError, match="birth date must be from 1900-01-01 to today"):
            ids.synthetic_resident_id("110105", date.today() + timedelta(days=1), 1)


class TestCreditCode:
    def test_commonly_cited_sample_is_valid(self) -> None:
        assert ids.parse_credit_code(CREDIT_SAMPLE) == CREDIT_SAMPLE
        assert ids.credit_code_check_char(CREDIT_SAMPLE[:17]) == "3"

    def test_check_character_worked_by_hand(self) -> None:
        # Values 9 1 3 5 0 1 0 0 M=21 0 0 0 1 0 0 Y=30 4 against the weights sum to 1640; 1640 mod 31 = 28.
        values = [ALPHABET.index(c) for c in CREDIT_SAMPLE[:17]]
        total = sum(v * w for v, w in zip(values, ids.CREDIT_CODE_WEIGHTS, strict=True))
        assert total == 1640
        assert ALPHABET[31 - total % 31] == "3"

    def test_weights_are_powers_of_three_mod_31(self) -> None:
        assert tuple(pow(3, i, 31) for i in range(17)) == ids.CREDIT_CODE_WEIGHTS

    def test_check_value_31_is_written_0(self) -> None:
        # A body whose weighted sum is 0 mod 31 would give 31 - 0 = 31, which the standard writes as "0".
        assert ids.credit_code_check_char("0" * 17) == "0"
        assert ids.parse_credit_code("0" * 18) == "0" * 18

    def test_normalises_lower_case_and_whitespace(self) -> None:
        assert ids.parse_credit_code("  91350100m000100y43\t") == CREDIT_SAMPLE

    @pytest.mark.parametrize(("text", "got"), [("", 0), (CREDIT_SAMPLE[:17], 17), (CREDIT_SAMPLE + "0", 19)])
    def test_wrong_length(self, text: str, got: int) -> None:
        with pytest.raises(InvalidIdentifier) as caught:
            ids.parse_credit_code(text)
        assert (caught.value.kind, caught.value.rule) == ("credit_code", "length")
        assert str(caught.value) == f"unified social credit code must be 18 characters, got {got}"

    @pytest.mark.parametrize("char", ["I", "O", "Z", "S", "V", "i", "-", " ", "\u00df", "\uff11"])
    def test_character_outside_alphabet(self, char: str) -> None:
        with pytest.raises(InvalidIdentifier) as caught:
            ids.parse_credit_code(substitute(CREDIT_SAMPLE, 8, char))
        assert (caught.value.kind, caught.value.rule) == ("credit_code", "alphabet")
        shown = char.upper() if char in string.ascii_lowercase else char
        assert str(caught.value) == (
            f"unified social credit code has a character outside 0-9 A-H J-N P-R T U W-Y: {shown!r} at position 9"
        )

    def test_wrong_check_character(self) -> None:
        with pytest.raises(InvalidIdentifier) as caught:
            ids.parse_credit_code(CREDIT_SAMPLE[:17] + "4")
        assert (caught.value.kind, caught.value.rule) == ("credit_code", "check_character")
        assert "'3'" not in str(caught.value) and "expected" not in str(caught.value)
        assert caught.value.owner_hint == "unified social credit code check character is wrong: expected '3', got '4'"

    @pytest.mark.parametrize("first17", ["", CREDIT_SAMPLE[:16], CREDIT_SAMPLE, "91350100I000100Y4"])
    def test_check_char_needs_17_code_characters(self, first17: str) -> None:
        with pytest.raises(ValueError, match="exactly 17 characters"):
            ids.credit_code_check_char(first17)

    @bounded
    @given(dept=code_chars, org=code_chars, region=regions, body=bodies)
    def test_every_synthetic_code_is_valid(self, dept: str, org: str, region: str, body: str) -> None:
        value = ids.synthetic_credit_code(dept, org, region, body)
        assert ids.parse_credit_code(value) == value
        assert ids.parse_credit_code(f" {value.lower()} ") == value
        assert value[:17] == dept + org + region + body
        assert ids.synthetic_credit_code(dept.lower(), org.lower(), region, body.lower()) == value

    @bounded
    @given(value=credit_codes())
    def test_every_single_substitution_fails(self, value: str) -> None:
        for position in range(18):
            for char in ALPHABET:
                if char == value[position]:
                    continue
                changed = substitute(value, position, char)
                with pytest.raises(InvalidIdentifier) as caught:
                    ids.parse_credit_code(changed)
                assert caught.value.rule == "check_character"
                assert not leaks(str(caught.value), changed)

    @bounded
    @given(value=credit_codes(), position=st.integers(0, 17), char=st.characters())
    def test_substitution_outside_alphabet_fails_on_alphabet(self, value: str, position: int, char: str) -> None:
        changed = substitute(value, position, char)
        if char in ALPHABET + ALPHABET.lower() or changed.strip() != changed:
            return
        with pytest.raises(InvalidIdentifier) as caught:
            ids.parse_credit_code(changed)
        assert caught.value.rule == "alphabet"
        assert not leaks(str(caught.value), changed)

    def test_synthetic_code_refuses_bad_parts(self) -> None:
        with pytest.raises(ValueError, match="registration_dept must be 1 character of"):
            ids.synthetic_credit_code("91", "1", "350100", "M000100Y4")
        with pytest.raises(ValueError, match="org_type must be 1 character of"):
            ids.synthetic_credit_code("9", "I", "350100", "M000100Y4")
        with pytest.raises(ValueError, match="region must be 6 digits"):
            ids.synthetic_credit_code("9", "1", "35010A", "M000100Y4")
        with pytest.raises(ValueError, match="body must be 9 characters"):
            ids.synthetic_credit_code("9", "1", "350100", "M000100Y")
        with pytest.raises(ValueError, match="body must be 9 characters"):
            ids.synthetic_credit_code("9", "1", "350100", "M000100YO")


class TestMasking:
    def test_eighteen_characters_keep_three_and_four(self) -> None:
        assert ids.mask_identifier(RESIDENT_SAMPLE) == "110" + "*" * 11 + "002X"
        assert ids.mask_identifier(CREDIT_SAMPLE) == "913" + "*" * 11 + "0Y43"

    @pytest.mark.parametrize(("value", "masked"), [("", ""), ("1234567", "*******"), ("12345678", "123*5678")])
    def test_short_values(self, value: str, masked: str) -> None:
        assert ids.mask_identifier(value) == masked

    @bounded
    @given(value=st.one_of(resident_ids(), credit_codes()))
    def test_masked_identifier_keeps_length_and_hides_the_middle(self, value: str) -> None:
        masked = ids.mask_identifier(value)
        assert len(masked) == len(value)
        assert masked[:3] == value[:3] and masked[-4:] == value[-4:]
        assert set(masked[3:-4]) == {"*"}

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vault.licences.masking import REDACTED, MaskKind, MaskRule, mask, parse_mask_rule


@pytest.mark.parametrize(
    ("value", "rule", "expected"),
    [
        ("110101199003071234", "keep:3:4", "110***********1234"),
        ("11010119900307123X", "keep:6:1", "110101***********X"),
        ("张三", "keep:1:0", "张*"),
        ("张三丰", "keep:1:0", "张**"),
        ("阿依古丽·买买提", "keep:1:0", "阿*******"),
        ("京AD12345", "keep:2:2", "京A****45"),
        ("LSVAU2180N2183294", "keep:0:4", "*************3294"),
        ("1990-05-17", "year", "1990-**-**"),
        ("北京市朝阳区建国路1号", "redact", REDACTED),
        ("blob:sha256:ab12", "redact", REDACTED),
        ("北京市公安局朝阳分局", "full", "北京市公安局朝阳分局"),
    ],
)
def test_mask_applies_the_rule(value: str, rule: str, expected: str) -> None:
    assert mask(value, rule) == expected


@pytest.mark.parametrize(
    ("value", "rule", "expected"),
    [
        ("张", "keep:1:0", "*"),
        ("京A12345", "keep:2:2", "京A****5"),
        ("12345678", "keep:3:4", "123****8"),
        ("1234567", "keep:3:4", "123****"),
        ("1234", "keep:0:4", "**34"),
        ("12", "keep:3:4", "1*"),
        ("", "keep:3:4", ""),
    ],
)
def test_short_values_are_never_more_than_half_shown(value: str, rule: str, expected: str) -> None:
    assert mask(value, rule) == expected


def test_redact_hides_the_length_too() -> None:
    assert mask("x", "redact") == mask("a much longer address", "redact") == mask("", "redact")


@pytest.mark.parametrize("value", ["1990", "1990/05/17", "17 May 1990", ""])
def test_year_redacts_what_is_not_an_iso_date(value: str) -> None:
    assert mask(value, "year") == REDACTED


def test_keep_counts_characters_after_nfc_normalisation() -> None:
    decomposed = "Zoe\u0301 Li"  # "Zoé Li" with a combining acute accent
    assert mask(decomposed, "keep:1:0") == "Z*****"


@pytest.mark.parametrize(
    ("rule", "parsed"),
    [
        ("full", MaskRule(MaskKind.FULL)),
        ("redact", MaskRule(MaskKind.REDACT)),
        ("year", MaskRule(MaskKind.YEAR)),
        ("keep:3:4", MaskRule(MaskKind.KEEP, 3, 4)),
        ("keep:0:0", MaskRule(MaskKind.KEEP, 0, 0)),
        ("keep:10:12", MaskRule(MaskKind.KEEP, 10, 12)),
    ],
)
def test_parse_mask_rule(rule: str, parsed: MaskRule) -> None:
    assert parse_mask_rule(rule) == parsed


@pytest.mark.parametrize(
    "rule", ["", "keep", "keep:3", "keep:3:4:5", "keep:-1:2", "keep:03:4", "keep:a:b", "keep:100:1", "FULL", " full"]
)
def test_malformed_rules_are_refused(rule: str) -> None:
    with pytest.raises(ValueError, match="is not a mask rule"):
        parse_mask_rule(rule)
    with pytest.raises(ValueError, match="is not a mask rule"):
        mask("张三", rule)


@given(value=st.text(), first=st.integers(0, 20), last=st.integers(0, 20))
def test_keep_preserves_length_and_hides_at_least_half(value: str, first: int, last: int) -> None:
    normalised = unicodedata.normalize("NFC", value)
    masked = mask(value, f"keep:{first}:{last}")
    assert len(masked) == len(normalised)
    shown = sum(1 for original, out in zip(normalised, masked, strict=True) if original == out != "*")
    assert shown <= len(normalised) // 2
    assert shown <= first + last

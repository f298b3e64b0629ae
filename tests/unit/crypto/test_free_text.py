"""check_text: NFC, bounded, and free of characters that hide or rewrite what a reader sees."""

from __future__ import annotations

import unicodedata

import pytest

from vault.crypto.free_text import TextProblem, check_text


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("a\x00b", "U+0000"),
        ("\x1b[31mred", "U+001B"),
        ("tab\there", "U+0009"),
        ("line\nbreak", "U+000A"),
        ("abc\u202edef", "bidirectional"),
        ("abc\u2067def", "bidirectional"),
        ("x\ud800", "surrogate"),
        ("x\U000e0000", "not an assigned"),
        ("x" * 11, "at most 10"),
    ],
)
def test_each_rule_is_named_and_the_text_never_echoed(text: str, rule: str) -> None:
    with pytest.raises(TextProblem) as raised:
        check_text(text, max_length=10)
    assert rule in str(raised.value) and text not in str(raised.value)


def test_text_comes_back_nfc_and_stripped() -> None:
    assert check_text("  Jose\u0301 ", max_length=10) == "José"
    assert check_text("two\nlines", max_length=10, multiline=True) == "two\nlines"
    assert check_text("e\u0301" * 10, max_length=10) == "é" * 10  # counted after normalisation


def _refused_by_category(char: str, multiline: bool) -> bool:
    """The rule spelled out per character, independently of check_text's shortcut for printable text."""
    category = unicodedata.category(char)
    allowed = " \n" if multiline else " "
    bidi = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    return (
        category in ("Cs", "Cn")
        or char in bidi
        or ((category == "Cc" or category.startswith("Z")) and char not in allowed)
    )


def test_every_code_point_is_judged_as_the_rule_says() -> None:
    planes = [*range(0x30000), *range(0xE0000, 0xE0200), 0xF0000, 0x10FFFD, 0x10FFFF]  # every plane in use
    for code in planes:
        char = chr(code)
        for multiline in (False, True):
            try:
                check_text(f"a{char}b", max_length=10, multiline=multiline)
                refused = False
            except TextProblem:
                refused = True
            assert refused == _refused_by_category(char, multiline), (hex(code), multiline)

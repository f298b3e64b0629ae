"""Free text from agencies about an owner (a case reference, a CIBA binding message, an official's name).

`clean_text` applies the vault's one text rule (vault.crypto.free_text.check_text: NFC, length, no controls,
bidi or surrogates) and adds what an identifier-like field needs: not empty, no invisible format characters, a
declared pattern. The text is then sealed under the owner's key with vault.crypto.free_text.OwnerTexts, so
erasure destroys it; the access log keeps at most the note's id and a keyed hash (`text_digest`), never the text.
"""

from __future__ import annotations

import re
import unicodedata

from vault.crypto.blind_index import blind_index
from vault.crypto.free_text import TextProblem, check_text
from vault.owners.errors import InvalidText

# Cc control, Cf format (bidi overrides, zero-width), Cs surrogates, Co private use, Cn unassigned, line breaks.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def clean_text(value: object, *, field: str, max_length: int, pattern: re.Pattern[str] | None = None) -> str:
    """The text NFC-normalised and stripped; raises InvalidText naming `field` and the rule it broke.

    Refused: a non-string, empty text, more than `max_length` characters, any control, format (bidi, zero
    width), surrogate, private-use or unassigned character, and text that does not match `pattern` if given.
    """
    if not isinstance(value, str):
        raise InvalidText(field, "must be a string")
    try:
        check_text(value, max_length=max_length)
    except TextProblem as error:
        raise InvalidText(field, str(error)) from None
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise InvalidText(field, "must not be empty")
    if len(text) > max_length:
        raise InvalidText(field, f"must be at most {max_length} characters, got {len(text)}")
    for position, char in enumerate(text, start=1):
        category = unicodedata.category(char)
        if category in _REFUSED_CATEGORIES:
            problem = f"has a control or formatting character (U+{ord(char):04X}) at position {position}"
            raise InvalidText(field, problem)
    if pattern is not None and not pattern.fullmatch(text):
        raise InvalidText(field, f"does not match the required format {_shown(pattern)}")
    return text


def _shown(pattern: re.Pattern[str]) -> str:
    """The pattern as a reader (and an OAuth error, which allows no backslash) can show it."""
    shown = pattern.pattern.replace("\\d", "[0-9]")
    return shown if "\\" not in shown else "declared for it in policies/mandates.toml"


def text_digest(index_key: bytes, kind: str, text: str) -> str:
    """A keyed hash of the text (hex), to group records by it without keeping it; same text, same digest."""
    return blind_index(index_key, f"text:{kind}", text).hex()

"""Owner-scoped free text: bounded, clean, and encrypted under the owner's key so that erasure destroys it.

Anyone who writes text about an owner that is not a licence value (an agency's case reference, a CIBA binding
message, an issuer's reason or official) first passes it through `clean_text`, then stores it with
`OwnerTexts.put`. The access log keeps at most a keyed hash of such text (see `text_digest`), never the text.
"""

from __future__ import annotations

import re
import unicodedata
import uuid

from sqlalchemy.orm import Session
from sqlmodel import select

from vault.crypto.blind_index import blind_index
from vault.crypto.envelope import FieldContext
from vault.crypto.errors import CryptoError
from vault.crypto.services import KeyService
from vault.owners.errors import InvalidText
from vault.owners.models import OwnerText

# Cc control, Cf format (bidi overrides, zero-width), Cs surrogates, Co private use, Cn unassigned, line breaks.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def clean_text(value: object, *, field: str, max_length: int, pattern: re.Pattern[str] | None = None) -> str:
    """The text NFC-normalised and stripped; raises InvalidText naming `field` and the rule it broke.

    Refused: a non-string, empty text, more than `max_length` characters, any control, format (bidi, zero
    width), surrogate, private-use or unassigned character, and text that does not match `pattern` if given.
    """
    if not isinstance(value, str):
        raise InvalidText(field, "must be a string")
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


class OwnerTexts:
    """Free text about owners, each value encrypted under its owner's data key."""

    def __init__(self, keys: KeyService) -> None:
        self.keys = keys

    def put(self, session: Session, owner_id: uuid.UUID, purpose: str, subject: str, text: str) -> OwnerText:
        """Store `text` for (owner, purpose, subject), replacing an earlier one; the text must be clean already."""
        row = self._row(session, owner_id, purpose, subject)
        if row is None:
            row = OwnerText(owner_id=owner_id, purpose=purpose, subject=subject, ciphertext=b"")
            session.add(row)
        dek = self.keys.owner_key(session, owner_id)
        row.ciphertext = dek.encrypt_text(text, _ctx(row))
        session.flush()
        return row

    def get(self, session: Session, owner_id: uuid.UUID, purpose: str, subject: str) -> str | None:
        """The text, or None when there is none or the owner was erased (the key is gone)."""
        row = self._row(session, owner_id, purpose, subject)
        if row is None:
            return None
        try:
            return self.keys.owner_key(session, owner_id).decrypt_text(row.ciphertext, _ctx(row))
        except CryptoError:
            return None

    @staticmethod
    def _row(session: Session, owner_id: uuid.UUID, purpose: str, subject: str) -> OwnerText | None:
        return session.scalars(
            select(OwnerText).where(
                OwnerText.owner_id == owner_id, OwnerText.purpose == purpose, OwnerText.subject == subject
            )
        ).first()


def _ctx(row: OwnerText) -> FieldContext:
    # the purpose and subject are bound into the associated data: a ciphertext moved to another row fails
    return FieldContext(owner_id=row.owner_id, record_id=row.id, field=f"{row.purpose}:{row.subject}")

"""Free text that may concern an owner: checked (length, characters, NFC) and sealed under that owner's key.

`check_text` is the one rule for text a client sends: NFC-normalised, within a length, and free of what could
hide or rewrite what a reader sees or break storage (C0/C1 controls such as NUL and ANSI escapes, bidirectional
overrides and isolates, lone surrogates, non-characters). `OwnerTexts` stores such text encrypted under the
owner's data key, so erasing the owner destroys it; the access log then names only the note's random id.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Sequence

from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from vault.clock import utcnow
from vault.crypto.envelope import DataKey, FieldContext
from vault.crypto.errors import KeyDestroyed
from vault.crypto.models import OwnerText
from vault.crypto.services import KeyService
from vault.db import insert_many

# bidirectional formatting characters (Trojan Source, CVE-2021-42574) and the invisible marks around them
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_ALLOWED_SPACE = frozenset(" ")
_ALLOWED_MULTILINE = frozenset(" \n")


class TextProblem(ValueError):
    """The text breaks a rule; the message names the rule and never repeats the text."""


def check_text(value: str, *, max_length: int, multiline: bool = False) -> str:
    """`value` NFC-normalised and stripped; raises TextProblem naming the first rule broken.

    Length counts characters after normalisation. Tabs, carriage returns and other whitespace controls are
    refused (a newline only where `multiline`); so are characters of categories Cc, Cs and Cn, and bidi controls.
    """
    # printable text (C's own check) has no control, separator but space, surrogate, unassigned or format
    # character, which covers every bidi control: only text that is not needs the per-character walk
    for position, char in enumerate("" if value.isprintable() else value):
        category = unicodedata.category(char)
        if category == "Cs":
            raise TextProblem(f"character {position + 1} is a lone surrogate (not valid Unicode text)")
        if char in _BIDI:
            raise TextProblem(f"character {position + 1} is a bidirectional control (U+{ord(char):04X})")
        allowed = _ALLOWED_MULTILINE if multiline else _ALLOWED_SPACE
        if (category == "Cc" or category.startswith("Z")) and char not in allowed:
            raise TextProblem(f"character {position + 1} is a control or separator character (U+{ord(char):04X})")
        if category == "Cn":
            raise TextProblem(f"character {position + 1} is not an assigned character (U+{ord(char):04X})")
    text = unicodedata.normalize("NFC", value).strip()
    if len(text) > max_length:
        raise TextProblem(f"at most {max_length} characters")
    return text


class OwnerTexts:
    """Seal and open owner-scoped free text. Each note is bound to its owner, id and kind by associated data."""

    def __init__(self, keys: KeyService) -> None:
        self.keys = keys

    @staticmethod
    def _ctx(row: OwnerText) -> FieldContext:
        return FieldContext(owner_id=row.owner_id, record_id=row.id, field=f"note:{row.kind}")

    def seal(self, session: Session, owner_id: uuid.UUID, kind: str, text: str) -> uuid.UUID:
        """Store `text` (already checked) under the owner's key; returns the note's id, the only thing to log."""
        row = OwnerText(owner_id=owner_id, kind=kind, text_ct=b"")
        row.text_ct = self.keys.owner_key(session, owner_id).encrypt_text(text, self._ctx(row))
        session.add(row)
        session.flush()
        return row.id

    def seal_many(
        self, session: Session, owners: Sequence[tuple[uuid.UUID, DataKey]], kind: str, text: str
    ) -> list[uuid.UUID]:
        """seal() of one text for each (owner, that owner's key), in one multi-row insert; the notes' ids."""
        now, rows, ids = utcnow(), [], []
        for owner_id, dek in owners:
            note_id = uuid.uuid4()
            ids.append(note_id)
            ctx = FieldContext(owner_id=owner_id, record_id=note_id, field=f"note:{kind}")
            rows.append(
                {
                    "id": note_id,
                    "owner_id": owner_id,
                    "kind": kind,
                    "text_ct": dek.encrypt_text(text, ctx),
                    "created_at": now,
                }
            )
        insert_many(session.connection(), SQLModel.metadata.tables[OwnerText.__tablename__], rows)
        return ids

    def open(self, session: Session, note_id: uuid.UUID) -> str | None:
        """The note's text; None if there is no such note or its owner was erased."""
        row = session.get(OwnerText, note_id)
        if row is None:
            return None
        try:
            return self.keys.owner_key(session, row.owner_id).decrypt_text(row.text_ct, self._ctx(row))
        except KeyDestroyed:
            return None

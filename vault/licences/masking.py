"""Masking of licence field values for display, by the rule a licence type gives each field.

Rules:
  ``full``            nothing hidden (public fields);
  ``redact``          the whole value hidden, its length too (photos, addresses);
  ``year``            an ISO date keeps its year only: 1990-05-17 → 1990-**-**;
  ``keep:<F>:<L>``    keep the first F and last L characters, one ``*`` for each hidden one:
                      keep:3:4 on an ID number → 110***********1234, keep:1:0 on 张三 → 张*.

Whatever the rule, a ``keep`` mask never shows more than half of a value's characters, so a value shorter
than the rule expects is still mostly hidden (keep:3:4 on ``12345678`` → ``123****8``).
Characters are counted after NFC normalisation, so a Chinese name is masked character by character.
"""

import re
import unicodedata
from dataclasses import dataclass
from enum import Enum

MASK_CHAR = "*"
REDACTED = "***"

_KEEP = re.compile(r"keep:(0|[1-9][0-9]?):(0|[1-9][0-9]?)")
_ISO_DATE = re.compile(r"([0-9]{4})-[0-9]{2}-[0-9]{2}")

RULE_SYNTAX = "full, redact, year or keep:<first>:<last>"


class MaskKind(Enum):
    FULL = "full"
    REDACT = "redact"
    YEAR = "year"
    KEEP = "keep"


@dataclass(frozen=True)
class MaskRule:
    kind: MaskKind
    first: int = 0
    last: int = 0


def parse_mask_rule(rule: str) -> MaskRule:
    """Parse a mask rule; raise ValueError, with a message quoting the rule, if it is not one."""
    if rule in ("full", "redact", "year"):
        return MaskRule(MaskKind(rule))
    match = _KEEP.fullmatch(rule)
    if match is None:
        raise ValueError(f"{rule!r} is not a mask rule ({RULE_SYNTAX})")
    return MaskRule(MaskKind.KEEP, int(match[1]), int(match[2]))


def mask(value: str, rule: str) -> str:
    """Return ``value`` masked by ``rule``; raise ValueError if the rule is malformed."""
    parsed = parse_mask_rule(rule)
    if parsed.kind is MaskKind.FULL:
        return value
    if parsed.kind is MaskKind.REDACT:
        return REDACTED
    if parsed.kind is MaskKind.YEAR:
        date = _ISO_DATE.fullmatch(value)
        return f"{date[1]}-**-**" if date else REDACTED
    return _keep(unicodedata.normalize("NFC", value), parsed.first, parsed.last)


def _keep(value: str, first: int, last: int) -> str:
    shown = min(first + last, len(value) // 2)
    head = min(first, shown)
    tail = shown - head
    hidden = len(value) - head - tail
    return value[:head] + MASK_CHAR * hidden + value[len(value) - tail :]

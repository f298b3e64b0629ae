"""What can go wrong with the access log, its notes, its tiles and its witnesses."""

from __future__ import annotations


class AuditError(Exception):
    """An event or checkpoint named does not exist, or a proof cannot be made."""


class NotIntegrated(AuditError):
    """The event is recorded but the sequencer has not yet given it a place in the tree."""


class NoteError(ValueError):
    """A signed note, checkpoint or verifier key is malformed or does not verify."""


class TileError(AuditError):
    """The stored tiles do not hold what the tree's size says they must."""


class WitnessError(Exception):
    """A witness could not be reached or answered something other than a cosignature."""

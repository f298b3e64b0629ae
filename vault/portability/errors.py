"""Errors of the export domain."""

from __future__ import annotations


class ExportError(Exception):
    """An export cannot be read at all (not JSON, not of this format); the message says which."""

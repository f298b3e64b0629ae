"""JSON from outside, with its nesting bounded.

Python's json module recurses once per level: a body of a few kilobytes of brackets raised RecursionError deep
in the parser (a 500, or a dropped connection). Here the parser's own recursion guard is turned into a clear
error, and whatever it did parse is then checked, without recursion, against a much smaller bound.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32  # the deepest legitimate body (an issuer's values in variables) nests 4 levels


class TooDeep(ValueError):
    """The document nests arrays and objects deeper than allowed."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(f"the JSON body nests arrays and objects more than {max_depth} levels deep")
        self.max_depth = max_depth


def depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether arrays and objects in `value` nest deeper than `max_depth`: level by level, no recursion."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(max_depth):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True


def loads(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads, refusing with TooDeep (a ValueError) a document nested deeper than `max_depth`."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise TooDeep(max_depth) from None
    if depth_exceeds(value, max_depth):
        raise TooDeep(max_depth)
    return value

"""Nesting bounds on JSON sent by clients."""

from __future__ import annotations

import pytest

from vault.jsonbounds import MAX_DEPTH, TooDeep, depth_exceeds, loads


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_documents_up_to_the_bound_parse() -> None:
    assert loads('{"a": {"b": [1, {"c": "[[[[[["}]}}') == {"a": {"b": [1, {"c": "[[[[[["}]}}
    assert loads(nested(MAX_DEPTH)) is not None
    assert loads("1") == 1


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 1_000_000])
def test_deeper_documents_are_refused_with_a_clear_error(depth: int) -> None:
    # without the bound, 5,000 levels raised RecursionError from json.loads
    with pytest.raises(TooDeep, match=f"more than {MAX_DEPTH} levels deep"):
        loads(nested(depth))


def test_depth_is_measured_without_recursion() -> None:
    value: list[object] = []
    for _ in range(10_000):
        value = [value]
    assert depth_exceeds(value, 10_000) and not depth_exceeds(value, 10_001)  # 10,001 levels
    assert not depth_exceeds([[], {"a": [{}]}], 4) and depth_exceeds([[], {"a": [{}]}], 3)

"""Depth and alias measurement, and the body limit, on their own."""

from __future__ import annotations

import time
import tracemalloc

import pytest
from graphql import DocumentNode, parse
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from vault.api.errors import BadUserInput
from vault.api.limits import MAX_TOKENS, BodyLimit, Limits, check_list, document_shape, refusals


@pytest.mark.parametrize(
    ("document", "shape"),
    [
        ("{ a }", (0, 0, 1, 1)),
        ("{ a { b } }", (1, 0, 2, 2)),
        ("{ x: a { y: b { c } } }", (2, 2, 3, 3)),
        ("query Q { a { ...F } } fragment F on T { b { c } d: e }", (2, 1, 4, 4)),
        ("{ a { ... on T { b { c } } } }", (2, 0, 3, 3)),
        ("{ __schema { types { fields { name } } } }", (0, 0, 4, 4)),
        ("{ a { ...F ...F } } fragment F on T { x: b }", (1, 2, 3, 3)),
        ("{ a { ...Cycle } } fragment Cycle on T { b { ...Cycle } }", (2, 0, 2, 2)),
        ("{ a { ...Unknown } }", (1, 0, 1, 1)),
        ("{ t: __typename u: __typename }", (0, 2, 2, 2)),
        ('{ a(names: ["x", "y", "z"]) { b c } }', (1, 0, 3, 7)),
    ],
)
def test_document_shape(document: str, shape: tuple[int, int, int, int]) -> None:
    [(_, measured)] = document_shape(parse(document)).items()
    assert (measured.depth, measured.aliases, measured.fields, measured.cost) == shape


def test_list_sizes_come_from_literals_and_variables() -> None:
    document = parse('query($n: [String!]) { a(n: $n) { b fields(names: ["x", "y"]) { c } } }')
    [shape] = document_shape(document, {"n": ["1", "2", "3", "4"]}).values()
    assert shape.fields == 4 and shape.cost == 1 + 4 * (1 + 1 + 2 * 1)


def test_fragment_fan_out_is_counted_by_arithmetic() -> None:
    chain = " ".join(f"fragment F{i} on T {{ ...F{i + 1} ...F{i + 1} ...F{i + 1} }}" for i in range(40))
    document = parse("{ a { ...F0 } } " + chain + " fragment F40 on T { x: b }")
    [shape] = document_shape(document).values()
    assert (shape.depth, shape.aliases, shape.fields) == (1, 3**40, 1 + 3**40)


def test_named_operations_are_measured_separately() -> None:
    shapes = document_shape(parse("query A { a { b } } query B { x: a }"))
    assert {name: (s.depth, s.aliases) for name, s in shapes.items()} == {"A": (1, 0), "B": (0, 1)}


def bomb(depth: int, leaf: str = "b") -> DocumentNode:
    chain = " ".join(f"fragment F{i} on T {{ ...F{i + 1} ...F{i + 1} }}" for i in range(depth))
    return parse(f"{{ a {{ ...F0 }} }} {chain} fragment F{depth} on T {{ {leaf} }}", max_tokens=100_000)


@pytest.mark.parametrize("depth", [10, 30, MAX_TOKENS // 12])  # 12 tokens a level: the deepest /graphql parses
def test_a_fragment_bomb_of_any_depth_is_refused_at_once(depth: int) -> None:
    # without a field count and cost (remove them from refusals) only aliases and depth were limited
    document = bomb(depth)
    tracemalloc.start()
    started = time.process_time()  # CPU time: other processes on the machine do not count
    problems = refusals(document, None, None, Limits())
    elapsed = time.process_time() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert any("fields once its fragments are expanded" in p for p in problems)
    assert elapsed < 0.05, elapsed  # the acceptance figure; measured with tracing on, which slows it
    assert peak < 2_000_000, peak  # memory in proportion to the document, not to its expansion


def test_a_chain_of_fragments_longer_than_the_stack_is_measured_without_recursion() -> None:
    [shape] = document_shape(bomb(5_000)).values()
    assert shape.fields == 1 + 2**5_000


def test_cycles_and_unknown_fragments_are_reported_by_the_measure() -> None:
    problems = refusals(
        parse("{ a { ...A } } fragment A on T { ...B } fragment B on T { b { ...A } }"), None, None, Limits()
    )
    assert problems == ["Cannot spread fragment 'A' within itself (A -> B -> A)."]
    assert refusals(parse("{ a { ...Missing } }"), None, None, Limits()) == ["Unknown fragment 'Missing'."]


def test_several_operations_need_an_operation_name() -> None:
    document = parse("query A { a } query B { b }")
    assert refusals(document, None, None, Limits()) == [
        "the document has 2 operations: name the one to run in operationName"
    ]
    assert refusals(document, None, "B", Limits()) == []


def test_check_list_refuses_long_lists() -> None:
    check_list("names", None, 2)
    check_list("names", ["a", "b"], 2)
    with pytest.raises(BadUserInput) as refused:
        check_list("names", ["a", "b", "c"], 2)
    assert refused.value.extensions == {"code": "BAD_USER_INPUT", "argument": "names"}


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    body = await Request(scope, receive).body()
    await PlainTextResponse(str(len(body)))(scope, receive, send)


def test_body_limit() -> None:
    client = TestClient(BodyLimit(echo, max_bytes=10))
    assert client.post("/", content=b"x" * 10).text == "10"
    assert client.post("/", content=b"x" * 11).status_code == 413
    assert client.post("/", content=iter([b"x" * 6, b"x" * 6])).status_code == 413
    assert client.post("/", content=iter([b"x" * 5, b"x" * 5])).text == "10"
    assert client.post("/", content=b"x", headers={"Content-Length": "abc"}).status_code == 400

"""Depth and alias measurement, and the body limit, on their own."""

from __future__ import annotations

import pytest
from graphql import parse
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from vault.api.errors import BadUserInput
from vault.api.limits import BodyLimit, check_list, document_shape


@pytest.mark.parametrize(
    ("document", "shape"),
    [
        ("{ a }", (0, 0)),
        ("{ a { b } }", (1, 0)),
        ("{ x: a { y: b { c } } }", (2, 2)),
        ("query Q { a { ...F } } fragment F on T { b { c } d: e }", (2, 1)),
        ("{ a { ... on T { b { c } } } }", (2, 0)),
        ("{ __schema { types { fields { name } } } }", (0, 0)),
        ("{ a { ...F ...F } } fragment F on T { x: b }", (1, 2)),
        ("{ a { ...Cycle } } fragment Cycle on T { b { ...Cycle } }", (2, 0)),
        ("{ a { ...Unknown } }", (1, 0)),
    ],
)
def test_document_shape(document: str, shape: tuple[int, int]) -> None:
    [(_, measured)] = document_shape(parse(document)).items()
    assert measured == shape


def test_fragment_fan_out_is_counted_by_arithmetic() -> None:
    chain = " ".join(f"fragment F{i} on T {{ ...F{i + 1} ...F{i + 1} ...F{i + 1} }}" for i in range(40))
    document = parse("{ a { ...F0 } } " + chain + " fragment F40 on T { x: b }")
    assert document_shape(document) == {"anonymous": (1, 3**40)}


def test_named_operations_are_measured_separately() -> None:
    shapes = document_shape(parse("query A { a { b } } query B { x: a }"))
    assert shapes == {"A": (1, 0), "B": (0, 1)}


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

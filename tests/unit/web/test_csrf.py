"""The pieces of the CSRF defence and the next= check, on their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vault.web.auth import safe_next
from vault.web.csrf import make_pre_token, origin_of, pre_token_valid

KEY = bytes(range(32))
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("https://Vault.Example:443/path?q", "https://vault.example"),
        ("http://vault.example:80", "http://vault.example"),
        ("https://[::1]:8443/", "https://[::1]:8443"),
        ("https://user:pw@vault.example/", "https://vault.example"),
        ("null", None),
        ("javascript:alert(1)", None),
        ("https://vault.example:99999/", None),
        ("//vault.example", None),
    ],
)
def test_origin_of(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


def test_a_pre_session_token_is_bound_to_its_cookie_and_expires() -> None:
    token = make_pre_token(KEY, "cookie-a", NOW)
    assert pre_token_valid(KEY, "cookie-a", token, NOW + timedelta(hours=1, minutes=59))
    assert not pre_token_valid(KEY, "cookie-b", token, NOW)
    assert not pre_token_valid(bytes(32), "cookie-a", token, NOW)
    assert not pre_token_valid(KEY, "cookie-a", token, NOW + timedelta(hours=2, seconds=1))
    assert not pre_token_valid(KEY, "cookie-a", token, NOW - timedelta(minutes=2))  # issued in the future
    issued, _, mac = token.partition(".")
    assert not pre_token_valid(KEY, "cookie-a", f"{int(issued) + 1}.{mac}", NOW)
    for garbage in ("", ".", "x.y", "١٢٣.abc", f"{issued}.", "9" * 40 + ".x"):
        assert not pre_token_valid(KEY, "cookie-a", garbage, NOW)


@pytest.mark.parametrize("good", ["/", "/licences", "/grants?state=active&page=2", "/a/b#c", "/%2F%2Fstill-a-path"])
def test_next_accepts_paths_of_this_site(good: str) -> None:
    assert safe_next(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "//evil",
        "https://evil",
        "/\\evil",
        "\\evil",
        "/a\\b",
        "evil",
        "",
        "/\x7f",
        "/\u2028x",
        "/ x",
        None,
        3,
        "/" * 3000,
    ],
)
def test_next_refuses_everything_else(bad: object) -> None:
    assert safe_next(bad) is None

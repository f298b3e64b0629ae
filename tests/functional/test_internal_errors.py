"""Any unhandled error, wherever it happens, is a 500 naming a correlation id that the log line also names."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.routing import Route
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient

from tests.oauth_helpers import BASE
from tests.unit.api.support import police_token
from vault.api.app import GraphQLView
from vault.oauth.server import OAuthService
from vault.web.app import create_app
from vault.wiring import Vault

SECRET_DETAIL = "a bug that must not reach the client"


def explode(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError(SECRET_DETAIL)


async def explode_async(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError(SECRET_DETAIL)


@pytest.fixture
def http(demo_vault: Vault) -> Iterator[TestClient]:
    app = create_app(vault=demo_vault)
    app.router.routes.append(Route("/boom", explode_async))
    with TestClient(app, base_url=BASE) as client:  # raise_server_exceptions: nothing may escape the app
        yield client


def assert_correlated(response: Any, caplog: pytest.LogCaptureFixture) -> str:
    assert response.status_code == 500
    assert SECRET_DETAIL not in response.text
    body = response.json()
    assert set(body) == {"error", "correlation_id"} and body["error"] == "internal_error"
    error_id: str = body["correlation_id"]
    [record] = [r for r in caplog.records if error_id in r.getMessage()]
    assert record.levelno == logging.ERROR and record.exc_info and SECRET_DETAIL in str(record.exc_info[1])
    return error_id


def test_a_failing_page_is_json_with_a_correlation_id(http: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    # without ErrorBoundary the TestClient re-raised, and the 500 was an HTML page with no id in it or the log
    assert_correlated(http.get("/boom"), caplog)


def test_a_browser_gets_a_page_showing_the_id(http: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    response = http.get("/boom", headers={"Accept": "text/html"})
    assert response.status_code == 500 and response.headers["content-type"].startswith("text/html")
    error_id = response.headers["x-correlation-id"]
    assert error_id in response.text and SECRET_DETAIL not in response.text
    assert any(error_id in r.getMessage() for r in caplog.records)
    assert response.headers["x-frame-options"] == "DENY"


def test_a_failing_oauth_endpoint(
    http: TestClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(OAuthService, "_no_duplicates", explode)
    response = http.post("/oauth/token", data={"grant_type": "client_credentials"}, headers={"Accept": "text/html"})
    assert_correlated(response, caplog)


def test_graphql_outside_execution(
    http: TestClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = police_token(http)
    monkeypatch.setattr(GraphQLView, "parse_http_body", explode_async)
    response = http.post("/graphql", json={"query": "{ __typename }"}, headers={"Authorization": f"Bearer {token}"})
    assert_correlated(response, caplog)


def test_static_files(http: TestClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(StaticFiles, "get_response", explode_async)
    assert_correlated(http.get("/static/app.css"), caplog)


def test_the_log_line_keeps_no_query_string(http: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    response = http.get("/boom?name=zhang-san")
    error_id = assert_correlated(response, caplog)
    assert not [r for r in caplog.records if error_id in r.getMessage() and "zhang-san" in r.getMessage()]

"""Authlib's authorization server on Starlette, modelled on its Flask integration.

Authlib's hooks are synchronous: every OAuth call runs in a worker thread inside one database unit of work,
which the hooks reach through `current_session()`. Starlette reads the body first (async), then hands Authlib a
request object that needs no further I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from vault.db import Database

_session: ContextVar[Session | None] = ContextVar("oauth_session", default=None)
T = TypeVar("T")


def current_session() -> Session:
    session = _session.get()
    if session is None:
        raise RuntimeError("OAuth storage hooks run only inside a unit of work")
    return session


@contextmanager
def unit_of_work(db: Database) -> Iterator[Session]:
    with db.session() as session:
        token = _session.set(session)
        try:
            yield session
        finally:
            _session.reset(token)


async def in_unit_of_work(db: Database, fn: Callable[..., T], *args: Any) -> T:
    """Run a synchronous OAuth step off the event loop, in one transaction that commits if it returns."""

    def run() -> T:
        with unit_of_work(db):
            return fn(*args)

    return await run_in_threadpool(run)


class Payload(OAuth2Payload):
    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in items:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist

    def duplicates(self) -> list[str]:
        return sorted(key for key, values in self._datalist.items() if len(values) > 1)


class VaultOAuth2Request(OAuth2Request):
    """An OAuth2Request whose query and form were read before it was built; `uri` is the public URL."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: dict[str, str],
        query: Sequence[tuple[str, str]],
        form: Sequence[tuple[str, str]],
    ) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self._args = dict(query)
        self._form = dict(form)
        self.payload = Payload([*query, *form])
        self.form_payload = Payload(form)
        self.dpop_required = False  # set by the endpoint: production mode requires DPoP of every agency
        self.dpop_jkt: str | None = None  # the thumbprint of the key a verified DPoP proof was signed with

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


async def from_starlette(request: Request, public_url: str) -> VaultOAuth2Request:
    """Read query and form (async), keep every repeated value so duplicates can be refused."""
    form: list[tuple[str, str]] = []
    if request.method == "POST":
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip() == "application/x-www-form-urlencoded":
            data = await request.form()
            form = [(k, v) for k, v in data.multi_items() if isinstance(v, str)]
    uri = public_url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
    headers = {k.title(): v for k, v in request.headers.items()}
    if len(request.headers.getlist("dpop")) > 1:
        headers["Dpop"] = "several DPoP headers"  # RFC 9449 §4.3: exactly one proof; this one fails its check
    return VaultOAuth2Request(request.method, uri, headers, list(request.query_params.multi_items()), form)

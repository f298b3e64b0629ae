"""ASGI entry point: `uvicorn server:app`. Settings come from VAULT_* environment variables."""

from __future__ import annotations

from vault import memory
from vault.web.app import create_app

memory.one_heap()  # when started by `uvicorn server:app`; `vault serve` has already asked
app = create_app()
memory.settle()

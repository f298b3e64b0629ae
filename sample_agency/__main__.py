"""`make agency`: serve the sample agency on http://127.0.0.1:8001 (VAULT_URL names the vault)."""

from __future__ import annotations

import os

import uvicorn

from sample_agency.app import create_app

if __name__ == "__main__":
    port = int(os.environ.get("AGENCY_PORT", "8001"))
    uvicorn.run(create_app(os.environ.get("VAULT_URL", "http://127.0.0.1:8000")), host="127.0.0.1", port=port)

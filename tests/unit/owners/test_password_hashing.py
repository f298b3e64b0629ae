"""Passwords are hashed with argon2id at the production parameters; the rest of the suite hashes cheaply."""

from __future__ import annotations

import subprocess
import sys

import pytest
from argon2 import extract_parameters

from tests.conftest import PROJECT_ROOT
from vault.owners import accounts

PASSWORD = "correct horse battery"


@pytest.mark.production_password_hashing
def test_passwords_are_hashed_with_argon2id_at_the_recommended_cost() -> None:
    hashed = accounts.hash_password(PASSWORD)
    params = extract_parameters(hashed)
    assert hashed.startswith("$argon2id$")
    assert params.memory_cost >= 64 * 1024 and params.time_cost >= 3, params  # RFC 9106's low-memory choice
    assert extract_parameters(accounts.unknown_login_hash()) == params  # an unknown login costs what a known one does


def test_the_other_tests_hash_with_argon2id_too_at_the_smallest_cost() -> None:
    hashed = accounts.hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$") and extract_parameters(hashed).memory_cost < 64 * 1024
    assert extract_parameters(accounts.unknown_login_hash()) == extract_parameters(hashed)


def test_importing_the_accounts_module_makes_no_hash() -> None:
    """Every CLI command imports it: an argon2 hash on import cost each of them ~0.1 s of CPU for nothing."""
    code = "import vault.owners.accounts as a; print(len(a._unknown_login_hashes))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert out.stdout.strip() == "0"

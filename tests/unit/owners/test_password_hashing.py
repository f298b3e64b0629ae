"""Passwords are hashed with argon2id at the production parameters; the rest of the suite hashes cheaply."""

from __future__ import annotations

import pytest
from argon2 import extract_parameters

from vault.owners import accounts

PASSWORD = "correct horse battery"


@pytest.mark.production_password_hashing
def test_passwords_are_hashed_with_argon2id_at_the_recommended_cost() -> None:
    hashed = accounts.hash_password(PASSWORD)
    params = extract_parameters(hashed)
    assert hashed.startswith("$argon2id$")
    assert params.memory_cost >= 64 * 1024 and params.time_cost >= 3, params  # RFC 9106's low-memory choice
    assert extract_parameters(accounts._DUMMY_HASH) == params  # an unknown login costs what a known one does


def test_the_other_tests_hash_with_argon2id_too_at_the_smallest_cost() -> None:
    hashed = accounts.hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$") and extract_parameters(hashed).memory_cost < 64 * 1024
    assert extract_parameters(accounts._DUMMY_HASH) == extract_parameters(hashed)

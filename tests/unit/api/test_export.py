"""graphql/schema.graphql is the schema the code builds, and every example operation validates against it."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import build_schema, parse, validate

from tests.unit.api.support import OPERATIONS
from vault.api.export import SCHEMA_FILE, export_schema, schema_sdl

OPERATION_FILES = sorted(OPERATIONS.glob("*.graphql"))


def test_the_checked_in_schema_is_the_code_schema() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_sdl(), (
        "graphql/schema.graphql is stale: run `vault graphql export`"
    )


def test_export_writes_the_schema(tmp_path: Path) -> None:
    target = tmp_path / "out" / "schema.graphql"
    export_schema(target)
    assert target.read_text(encoding="utf-8") == schema_sdl()


def test_there_are_agency_and_issuer_operations() -> None:
    names = {path.stem.split("-")[0] for path in OPERATION_FILES}
    assert names == {"agency", "issuer"}
    assert not list(OPERATIONS.parent.rglob("*.py"))  # nothing there may shadow graphql-core


@pytest.mark.parametrize("path", OPERATION_FILES, ids=lambda p: p.name)
def test_each_operation_validates_against_the_exported_schema(path: Path) -> None:
    schema = build_schema(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert validate(schema, parse(path.read_text(encoding="utf-8"))) == []

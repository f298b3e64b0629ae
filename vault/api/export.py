"""`vault graphql export`: the schema as SDL, checked into graphql/schema.graphql (a test keeps the two equal)."""

from __future__ import annotations

from pathlib import Path

from vault.api.schema import build_schema

SCHEMA_FILE = Path(__file__).resolve().parent.parent.parent / "graphql" / "schema.graphql"


def schema_sdl() -> str:
    """The schema's SDL, the same in both modes (production only switches introspection off)."""
    return build_schema(production=True).as_str().rstrip("\n") + "\n"


def export_schema(path: Path) -> None:
    """Write the schema's SDL to `path`, creating its directory if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(schema_sdl(), encoding="utf-8")

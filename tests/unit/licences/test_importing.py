"""Importing a file of licences: streamed, checked per row, committed per batch, reported, safe to run again."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests import factories
from tests.unit.licences.test_bulk import add_person
from vault.licences.bulk import BulkIssuer
from vault.licences.importing import ImportRefused, Progress, format_of, import_file
from vault.licences.models import Licence
from vault.licences.pipeline import Pipeline, WorkerSetup
from vault.wiring import Vault


def licence_rows(owner: str, count: int) -> list[dict[str, str]]:
    return [
        {
            "owner": owner,
            "type": "driving-licence",
            **{k: str(v) for k, v in factories.driving_licence_values(name="批量居民").items()},
        }
        for _ in range(count)
    ]


def write(path: Path, rows: list[dict[str, str]]) -> Path:
    if path.suffix == ".csv":
        names = list(dict.fromkeys(k for r in rows for k in r))
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(names)
            writer.writerows([[r.get(n, "") for n in names] for r in rows])
    else:
        lines = [
            json.dumps(
                {
                    "owner": r["owner"],
                    "type": r["type"],
                    "values": {k: v for k, v in r.items() if k not in ("owner", "type")},
                }
            )
            for r in rows
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(
    vault: Vault, path: Path, batch: int = 3, pipeline: Pipeline | None = None
) -> tuple[object, list[list[str]], str]:
    report, progress = io.StringIO(), io.StringIO()
    result = import_file(
        path,
        format_of(path, None),
        issuer=BulkIssuer(vault.licences),
        unit_of_work=vault.db.session,
        report=report,
        progress=Progress(progress, total=7, every=0.0),
        actor="operator:test",
        batch_size=batch,
        pipeline=pipeline,
    )
    return result, list(csv.reader(io.StringIO(report.getvalue()))), progress.getvalue()


def licences(vault: Vault) -> int:
    with vault.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Licence)) or 0)


@pytest.fixture
def pipeline(vault: Vault) -> Iterator[Pipeline]:
    settings = vault.settings
    setup = WorkerSetup(settings.database_url, settings.policies_dir, settings.public_url, vault.keyring.in_memory())
    with Pipeline(BulkIssuer(vault.licences), vault.db, setup, workers=2) as running:
        yield running


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
@pytest.mark.parametrize("pipelined", [False, True], ids=["in-one-process", "pipelined"])
def test_import_reports_bad_rows_commits_good_ones_and_runs_again_safely(
    vault: Vault, tmp_path: Path, suffix: str, pipelined: bool, request: pytest.FixtureRequest
) -> None:
    pipeline = request.getfixturevalue("pipeline") if pipelined else None
    owner = add_person(vault)
    rows = licence_rows(owner, 7)
    rows[1]["name"] = "别人"  # not the holder on record
    rows[4]["class"] = ""
    rows[5]["owner"] = "110101199001011237"  # names nobody
    path = write(tmp_path / f"rows{suffix}", rows)
    before = licences(vault)
    result, report, progress = run(vault, path, pipeline=pipeline)
    assert (result.total, result.issued, result.already_issued, result.invalid) == (7, 4, 0, 3)  # type: ignore[attr-defined]
    assert report == [
        ["row", "field", "reason"],
        ["2", "name", "field 'name': is not the holder's name on record"],
        ["5", "class", "field 'class': a value is required"],
        ["6", "owner", "no owner with this identifier"],
    ]
    assert licences(vault) - before == 4
    assert "7/7 rows (100%)" in progress and "rows/s" in progress and "ETA" in progress
    assert "3/7 rows" in progress  # one line per batch of three, then the last

    again, report, _ = run(vault, path, pipeline=pipeline)
    assert (again.issued, again.already_issued, again.invalid) == (0, 4, 3)  # type: ignore[attr-defined]
    assert licences(vault) - before == 4
    for text in ("批量居民", "别人", owner, rows[0]["licence_number"]):
        assert text not in json.dumps(report, ensure_ascii=False)


def test_rows_that_cannot_be_read_are_reported_and_the_rest_imported(vault: Vault, tmp_path: Path) -> None:
    owner = add_person(vault)
    good = write(tmp_path / "good.jsonl", licence_rows(owner, 1)).read_text(encoding="utf-8")
    path = tmp_path / "mixed.jsonl"
    lines = ['{"owner": "1101', "[1, 2]", '{"owner": 5, "type": "driving-licence"}', '{"owner": "x", "typo": 1}']
    path.write_text("\n".join([*lines, "", good]), encoding="utf-8")
    result, report, _ = run(vault, path)
    assert (result.total, result.issued, result.invalid) == (5, 1, 4)  # type: ignore[attr-defined]
    assert [r[:2] for r in report[1:]] == [["1", "row"], ["2", "row"], ["3", "owner"], ["4", "row"]]
    csv_path = tmp_path / "short.csv"
    csv_path.write_text(f"owner,type,name\n{owner},driving-licence\n", encoding="utf-8")
    _, report, _ = run(vault, csv_path)
    assert report[1] == ["1", "row", "has 2 cells; the header has 3"]


def test_a_file_that_cannot_be_imported_is_refused_before_anything_is_written(vault: Vault, tmp_path: Path) -> None:
    with pytest.raises(ImportRefused, match="extension"):
        format_of(tmp_path / "rows.xlsx", None)
    path = tmp_path / "rows.csv"
    path.write_text("owner,licence_number\n", encoding="utf-8")
    with pytest.raises(ImportRefused, match="no type column"):
        run(vault, path)

"""`vault licences import` as staff run it: a real process, progress on stderr, a report, nothing in plaintext."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import pytest

from tests.functional.test_cli import _files_containing, vault_cli
from vault.owners.identifiers import synthetic_resident_id

CANARY_NAME = "金丝雀导入员"
CANARY_ID = synthetic_resident_id("110101", date(1999, 9, 9), 778)
CANARY_ADDRESS = "金丝雀导入路77号"
CANARY_PLATE = "金A·C0778"


def vehicle(plate: str, name: str = CANARY_NAME, **changes: str) -> dict[str, str]:
    values = {
        "plate_number": plate,
        "vehicle_type": "K33",
        "owner_name": name,
        "address": CANARY_ADDRESS,
        "use_character": "非营运",
        "brand_model": "演示牌DEMO7150",
        "vin": "LDEMO000000000778",
        "engine_number": "E00000778",
        "registration_date": "2021-06-01",
        "issue_date": "2021-06-01",
        "file_number": "F000000778",
        "approved_passengers": "5",
    }
    return {**values, **changes}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "var"
    vault_cli(data, "db", "upgrade")
    vault_cli(data, "owners", "add-person", "--id-number", CANARY_ID, "--name", CANARY_NAME)
    return data


def rows() -> list[tuple[str, str, dict[str, str]]]:
    return [
        (CANARY_ID, "vehicle-licence", vehicle(CANARY_PLATE)),
        (CANARY_ID, "vehicle-licence", vehicle("金A·C0779", name="金丝雀冒名者")),  # not the holder on record
        (CANARY_ID, "vehicle-licence", vehicle("金A·C0780", approved_passengers="五")),
        (CANARY_ID, "vehicle-licence", vehicle("金A·C0781")),
    ]


def write_csv(path: Path) -> Path:
    names = list(vehicle(""))
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["owner", "type", *names])
        writer.writerows([[o, t, *(v[n] for n in names)] for o, t, v in rows()])
    return path


def write_jsonl(path: Path) -> Path:
    lines = [json.dumps({"owner": o, "type": t, "values": v}, ensure_ascii=False) for o, t, v in rows()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("write", [write_csv, write_jsonl])
def test_import_shows_progress_reports_bad_rows_and_is_safe_to_run_again(
    data_dir: Path, tmp_path: Path, write: object
) -> None:
    source = write(tmp_path / ("rows.csv" if write is write_csv else "rows.jsonl"))  # type: ignore[operator]
    first = vault_cli(data_dir, "licences", "import", str(source), check=False)
    assert first.returncode == 1  # some rows were invalid
    assert "2 issued, 0 already issued, 2 invalid of 4 rows" in first.stdout
    assert "4/4 rows (100%)" in first.stderr and "rows/s" in first.stderr and "ETA" in first.stderr
    report_path = source.with_name(source.name + ".errors.csv")
    assert str(report_path) in first.stderr
    report = list(csv.reader(report_path.read_text(encoding="utf-8").splitlines()))
    assert report == [
        ["row", "field", "reason"],
        ["2", "owner_name", "field 'owner_name': is not the holder's name on record"],
        ["3", "approved_passengers", "field 'approved_passengers': not an integer"],
    ]
    again = vault_cli(data_dir, "licences", "import", str(source), "--report", str(tmp_path / "again.csv"), check=False)
    assert "0 issued, 2 already issued, 2 invalid of 4 rows" in again.stdout
    listing = vault_cli(data_dir, "licences", "list", "--owner", CANARY_ID)
    assert listing.stdout.count("vehicle-licence") == 2

    needles = [CANARY_NAME, CANARY_ID, CANARY_ADDRESS, CANARY_PLATE, "金丝雀冒名者"]
    outputs = first.stdout + first.stderr + again.stdout + again.stderr + listing.stdout
    assert not [n for n in needles if n in outputs]
    assert not [n for n in needles if n in report_path.read_text(encoding="utf-8")]
    assert not _files_containing(data_dir, [n.encode() for n in needles])  # database, its WAL, the logs


def test_an_unknown_format_or_missing_file_is_refused(data_dir: Path, tmp_path: Path) -> None:
    odd = tmp_path / "rows.xlsx"
    odd.write_text("x", encoding="utf-8")
    refused = vault_cli(data_dir, "licences", "import", str(odd), check=False)
    assert refused.returncode == 2 and "--format" in refused.stderr
    missing = vault_cli(data_dir, "licences", "import", str(tmp_path / "none.csv"), check=False)
    assert missing.returncode == 2 and "no file" in missing.stderr

"""`vault licences import FILE`: a department's back catalogue from CSV or JSON Lines, streamed, in batches.

The file is read a batch at a time (never whole), each row checked as the issuer mutation checks it, each batch
issued and committed in one transaction (licences/bulk.py). Rows that fail go to an error report: the row's
number, the field and the rule it broke, never a value. Re-running the same file issues nothing twice: a row
whose number was already issued to the same owner is counted as already issued.

CSV: a header row with `owner`, `type` and one column per field name; an empty cell is an absent value.
JSON Lines: one object per line, {"owner": "...", "type": "...", "values": {"name": "value" or integer, ...}}.
Rows are numbered from 1 in the order they appear; the CSV header and blank lines are not rows.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO

from sqlalchemy.orm import Session

from vault.licences.bulk import BulkIssuer, BulkRow, RowProblem, RowStatus
from vault.licences.errors import LicenceError
from vault.licences.pipeline import Pipeline, issue_in_one_transaction

log = logging.getLogger("vault.licences.importing")

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# Rows per transaction. Each licence changes pages at random places in large indexes, and a commit writes every page
# it changed to the WAL: a page changed by several licences of one transaction is written once. 10,000 rows wrote
# about half as much as 1,000 and were about 1.6 times as fast (docs/performance.md), for one lock held a few
# seconds at a time and about 200 MB in each worker process.
BATCH = 10_000


class ImportRefused(LicenceError):
    """The file cannot be imported at all (unknown format, no header, missing columns); nothing was written."""


def format_of(path: Path, given: str | None) -> str:
    if given is not None:
        return given
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise ImportRefused(
            f"cannot tell the format of {path.name} from its extension: name it .csv or .jsonl, or pass --format"
        ) from None


Parsed = tuple[int, BulkRow | RowProblem]


def _csv_rows(stream: TextIO) -> Iterator[Parsed]:
    reader = csv.reader(stream)
    header = next(reader, None)
    if header is None:
        raise ImportRefused("the file is empty: a CSV import needs a header row")
    names = [h.strip() for h in header]
    missing = [c for c in ("owner", "type") if c not in names]
    if missing:
        raise ImportRefused(f"the header has no {' or '.join(missing)} column")
    if len(set(names)) != len(names):
        raise ImportRefused("the header names a column more than once")
    owner_at, type_at = names.index("owner"), names.index("type")
    fields = [(n, name) for n, name in enumerate(names) if n not in (owner_at, type_at)]
    number = 0
    for cells in reader:
        if not cells or all(not c.strip() for c in cells):
            continue
        number += 1
        if len(cells) != len(names):
            yield number, RowProblem("row", f"has {len(cells)} cells; the header has {len(names)}")
            continue
        values = [(name, cells[n]) for n, name in fields if cells[n].strip()]
        yield number, BulkRow(cells[owner_at], cells[type_at], values)


def _jsonl_rows(stream: TextIO) -> Iterator[Parsed]:
    number = 0
    for line in stream:
        if not line.strip():
            continue
        number += 1
        try:
            record = json.loads(line)
        except ValueError:
            yield number, RowProblem("row", "is not valid JSON")
            continue
        if not isinstance(record, dict):
            yield number, RowProblem("row", "is not a JSON object")
            continue
        owner, type_code, values = record.get("owner"), record.get("type"), record.get("values", {})
        unknown = sorted(set(record) - {"owner", "type", "values"})
        if unknown:
            yield number, RowProblem("row", f"has unknown keys: {', '.join(k[:40] for k in unknown)}")
        elif not isinstance(owner, str):
            yield number, RowProblem("owner", "must be a string (a resident ID number or credit code)")
        elif not isinstance(type_code, str):
            yield number, RowProblem("type", "must be a string (a licence type code)")
        elif not isinstance(values, dict):
            yield number, RowProblem("values", "must be an object of field names to values")
        elif any(not isinstance(v, str | int) or isinstance(v, bool) for v in values.values()):
            bad = next(k for k, v in values.items() if not isinstance(v, str | int) or isinstance(v, bool))
            yield number, RowProblem(str(bad)[:100], "a value must be a string or an integer")
        else:
            yield number, BulkRow(owner, type_code, list(values.items()))


def read_rows(stream: TextIO, fmt: str) -> Iterator[Parsed]:
    """Each row of the file in turn, parsed or with the problem that stops it being read; streamed."""
    return _csv_rows(stream) if fmt == "csv" else _jsonl_rows(stream)


def count_rows(path: Path, fmt: str) -> int:
    """How many rows the file has (for progress): one pass, nothing kept."""
    with path.open(encoding="utf-8-sig", newline="") as stream:
        if fmt == "csv":
            return max(0, sum(1 for cells in csv.reader(stream) if any(c.strip() for c in cells)) - 1)
        return sum(1 for line in stream if line.strip())


@dataclass
class ImportResult:
    total: int = 0
    issued: int = 0
    already_issued: int = 0
    invalid: int = 0
    seconds: float = 0.0


class Progress:
    """done/total, rows per second and the time left, on one line of stderr (rewritten in place on a terminal)."""

    def __init__(self, out: TextIO, total: int, every: float = 1.0) -> None:
        self.out, self.total, self.every = out, total, every
        self.start = self.last = time.monotonic()
        self.tty = out.isatty()

    def line(self, result: ImportResult) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = result.total / elapsed
        left = (self.total - result.total) / rate if rate and self.total > result.total else 0.0
        eta = f"{int(left // 60)}m{int(left % 60):02d}s"
        percent = 100 * result.total / self.total if self.total else 100.0
        return (
            f"{result.total:,}/{self.total:,} rows ({percent:.0f}%)  {rate:,.0f} rows/s  ETA {eta}  "
            f"issued {result.issued:,}  already issued {result.already_issued:,}  invalid {result.invalid:,}"
        )

    def update(self, result: ImportResult, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < (self.every if self.tty else self.every * 5):
            return
        self.last = now
        end = "\n" if final or not self.tty else ""
        self.out.write(("\r" if self.tty else "") + self.line(result) + end)
        self.out.flush()


def _batches(rows: Iterator[Parsed], size: int) -> Iterator[list[Parsed]]:
    batch: list[Parsed] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def import_file(
    path: Path,
    fmt: str,
    *,
    issuer: BulkIssuer,
    unit_of_work: Callable[[], AbstractContextManager[Session]],
    report: IO[str],
    progress: Progress | None = None,
    actor: str,
    batch_size: int = BATCH,
    pipeline: Pipeline | None = None,
) -> ImportResult:
    """Import the file a batch per transaction; every invalid row gets a line in `report` (CSV: row,field,reason).

    With a `pipeline` (already entered), worker processes prepare the batches while this process writes them;
    without, each batch is checked and written in its own transaction here. A batch that fails for another
    reason than a lost race raises after the batches before it committed: running the same file again carries
    on where it stopped (rows already issued are counted, not issued again).
    """
    result = ImportResult()
    writer = csv.writer(report)
    writer.writerow(["row", "field", "reason"])
    started = time.monotonic()
    with path.open(encoding="utf-8-sig", newline="") as stream:
        batches = _batches(read_rows(stream, fmt), batch_size)
        parsed: deque[list[Parsed]] = deque()

        def rows_of(batches: Iterator[list[Parsed]]) -> Iterator[list[BulkRow]]:
            for batch in batches:
                parsed.append(batch)
                yield [row for _, row in batch if isinstance(row, BulkRow)]

        if pipeline is not None:
            issued = pipeline.issue(rows_of(batches), unit_of_work=unit_of_work, actor=actor)
        else:
            issued = (
                issue_in_one_transaction(issuer, unit_of_work, rows, issuer_code=None, actor=actor)
                for rows in rows_of(batches)
            )
        for outcomes in issued:
            batch = parsed.popleft()
            rows = [n for n, row in batch if isinstance(row, BulkRow)]
            failed = [(n, problem) for n, problem in batch if isinstance(problem, RowProblem)]
            for number, outcome in zip(rows, outcomes, strict=True):
                if outcome.status is RowStatus.ISSUED:
                    result.issued += 1
                elif outcome.status is RowStatus.ALREADY_ISSUED:
                    result.already_issued += 1
                else:
                    failed += [(number, p) for p in outcome.problems] or [(number, RowProblem("row", "invalid"))]
            for number, problem in sorted(failed, key=lambda f: f[0]):
                writer.writerow([number, problem.field, problem.message])
            result.invalid += len({n for n, _ in failed})
            result.total += len(batch)
            if progress is not None:
                progress.update(result)
    result.seconds = time.monotonic() - started
    if progress is not None:
        progress.update(result, final=True)
    log.info(
        "licences imported: %d rows, %d issued, %d already issued, %d invalid, %.1f s",
        result.total,
        result.issued,
        result.already_issued,
        result.invalid,
        result.seconds,
    )
    return result

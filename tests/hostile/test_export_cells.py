"""Every record in ``export_cells/`` exported as CSV from the real S3 archive: no cell of the
file starts as a spreadsheet formula would, removing one leading ' gives every value back
exactly, and the NDJSON export of the same record holds the values as they were (raw).

A file holds ``{"why": ..., "fields": {field: value, ...}}``: the record's fields that carry
the hostile values (the rest are the archive tests' defaults)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest

from audit_logging.schema import FIELD_NAMES
from audit_logging.settings import Settings
from tests.archive._archive import archive_command, put_archive, record_at

pytestmark = pytest.mark.services

FILES = sorted((Path(__file__).parent / "export_cells").glob("*.json"))
# OWASP's list of what a spreadsheet takes as the start of a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MOMENT = dt.datetime(2025, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
DAY = ("--since", "2025-05-06", "--until", "2025-05-06")


def test_the_corpus_is_there() -> None:
    assert FILES


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_a_csv_export_runs_no_cell_as_a_formula(
    path: Path, settings: Settings, tmp_path: Path,
) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    assert case.get("why"), f"{path.name}: say why this file is here"
    record = record_at(MOMENT, **case["fields"])
    for name, value in case["fields"].items():
        # The record holds the hostile value: otherwise this file tests nothing.
        assert record[name] == value, name
    put_archive(settings, [record])

    target = tmp_path / "out.csv"
    done = archive_command(settings, "export", *DAY, "--format", "csv", "-o", str(target))
    assert done.returncode == 0, done.stderr
    header, *rows = csv.reader(io.StringIO(target.read_bytes().decode("utf-8"), newline=""))
    assert header == list(FIELD_NAMES)
    (row,) = rows
    cells = dict(zip(header, row, strict=True))
    for name, cell in cells.items():
        assert not cell.startswith(FORMULA_STARTS), (name, cell)
    for name, value in case["fields"].items():
        assert cells[name].removeprefix("'") == value, name

    raw = archive_command(settings, "export", *DAY, "--format", "ndjson")
    assert raw.returncode == 0, raw.stderr
    (exported,) = [json.loads(line) for line in raw.stdout.splitlines()]
    assert exported == record

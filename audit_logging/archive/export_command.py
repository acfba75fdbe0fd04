"""``export``: the archived records of a time range that match the API's filters, as NDJSON,
CSV or Parquet, streamed one day at a time (memory holds one day's matches, whatever the
range), from the archive itself, so also past the index's retention.

A file is written under a temporary name beside it and renamed once complete: a failed or
interrupted export leaves no file that looks whole.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from audit_logging.archive.cli import (
    EXIT_DIFFERENCES,
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    add_filters,
    add_range,
    record_filter,
)
from audit_logging.archive.parquet import ARROW_SCHEMA, records_from_table
from audit_logging.archive.progress import Progress
from audit_logging.archive.search import ArchiveSearch
from audit_logging.archive.store import ArchiveStore, UnreadableFileError
from audit_logging.record import record_to_json
from audit_logging.schema import FIELD_NAMES as FIELDS
from audit_logging.settings import Settings

FORMATS: Final = ("ndjson", "csv", "parquet")
COLUMNS: Final = tuple(ARROW_SCHEMA.names)


class Writer(Protocol):
    def write(self, table: pa.Table) -> None: ...
    def close(self) -> None: ...


class NdjsonWriter:
    """One record per line, exactly as the stream carried it (UTF-8 JSON)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out

    def write(self, table: pa.Table) -> None:
        self.out.write(b"".join(record_to_json(r) + b"\n" for r in records_from_table(table)))

    def close(self) -> None:
        self.out.flush()


# A spreadsheet takes a cell starting with one of these as a formula (or, for tab and CR,
# may drop them and read the rest so): OWASP's CSV injection guidance. A ' in front makes
# the cell text; a cell starting with ' itself gets one more, so one leading ' always comes
# off to give the value back.
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
_TEXT_MARK: Final = "'"


class CsvWriter:
    """A header of the record's fields, then a row per record; ``changes``, ``extra`` and
    ``truncated`` as compact JSON, an absent value as an empty cell. Always escaped against
    formula injection (:func:`spreadsheet_safe`): the values are whatever the audited app's
    users typed, and a CSV file is for opening in a spreadsheet (NDJSON and Parquet are the
    raw forms, for programs)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        self.rows = csv.writer(self.text)
        self.rows.writerow(FIELDS)

    def write(self, table: pa.Table) -> None:
        self.rows.writerows([spreadsheet_safe(_cell(r.get(name))) for name in FIELDS]
                            for r in records_from_table(table))

    def close(self) -> None:
        self.text.flush()
        self.text.detach()


def spreadsheet_safe(cell: str) -> str:
    """``cell`` with a ' in front if a spreadsheet would run it as a formula (or if it starts
    with ' already, so that removing one leading ' always gives the value back)."""
    if cell.startswith((*FORMULA_STARTS, _TEXT_MARK)):
        return _TEXT_MARK + cell
    return cell


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


class ParquetWriter:
    """The archive's own columns and types, zstd-compressed: what Athena or DuckDB read."""

    def __init__(self, out: IO[bytes]) -> None:
        self.writer = pq.ParquetWriter(out, ARROW_SCHEMA, compression="zstd")

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self.writer.write_table(table.cast(ARROW_SCHEMA))

    def close(self) -> None:
        self.writer.close()


_WRITERS: Final[dict[str, type[NdjsonWriter | CsvWriter | ParquetWriter]]] = {
    "ndjson": NdjsonWriter, "csv": CsvWriter, "parquet": ParquetWriter,
}


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "export",
        help="write the archived records of a time range, filtered as the API filters",
        description="Write the archived records of a time range that match every filter "
        "given, oldest first, from the archive (so also past the index's retention).",
    )
    add_range(parser)
    add_filters(parser)
    parser.add_argument("--format", choices=FORMATS, default="ndjson",
                        help="ndjson (default): one JSON record per line; csv (cells escaped"
                        " against spreadsheet formulas); parquet")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write to FILE, which must not exist (default: standard output;"
                        " parquet needs a file)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    search = record_filter(args, settings)
    output = Path(args.output) if args.output not in (None, "-") else None
    if output is None and args.format == "parquet":
        raise UsageError("--format parquet needs --output FILE (it is not a stream format)")
    if output is not None and (output.exists() or output.is_symlink()):
        raise UsageError(f"--output {output} exists: remove it or choose another name")
    if output is not None and not output.parent.is_dir():
        raise UsageError(f"--output {output}: there is no folder {output.parent}")
    # An export reads each file once: nothing to keep.
    searcher = ArchiveSearch(ArchiveStore(settings, cache_bytes=0))
    days = searcher.day_range(search)  # within the archive's days: no listing of empty years
    files = searcher.store.files(*days) if days is not None else []
    progress = Progress("export", days=len({f.day for f in files}))
    skipped: list[UnreadableFileError] = []
    with _destination(output) as out:
        writer = _WRITERS[args.format](out)
        for _, table in searcher.each_day(search, files, COLUMNS, skipped):
            writer.write(table)
            progress.add(records=table.num_rows, days=1)
        writer.close()
    progress.finish()
    where = str(output) if output is not None else "standard output"
    print(f"export: {progress.records:,} records from {progress.days_done} days in "
          f"{progress.elapsed():.1f} s to {where}", file=sys.stderr)
    if skipped:
        # The rest is exported: an auditor gets what can be read, and is told what cannot.
        for unreadable in skipped:
            print(f"export: passed over: {unreadable}", file=sys.stderr)
        print(f"export: {len(skipped)} archive file(s) could not be read; records in them "
              "are not in the export", file=sys.stderr)
        return EXIT_DIFFERENCES
    return EXIT_OK


@contextlib.contextmanager
def _destination(output: Path | None) -> Iterator[IO[bytes]]:
    if output is None:
        try:
            yield sys.stdout.buffer
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            # The reader went away (| head): say so once, without a traceback.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(EXIT_FAILED) from None
        return
    # A name of its own beside the target (mkstemp: readable by its owner only), removed
    # whatever happens; another export to the same target meanwhile is not touched.
    fd, name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".partial")
    partial = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.link(partial, output)  # never over a file made meanwhile
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()

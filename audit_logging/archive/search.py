"""Searching the archive: a page of matching records, newest first, with the total; one record
by its log_id; every matching record, day by day, for an export.

Memory stays bounded whatever the range: a page holds at most twice ``offset + size`` rows
(the newest kept so far) and the rows of one gathering for free text; an export holds one
day's matching rows at a time, sorted there, newest first with ``log_id`` breaking ties (the
order the index answers in).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Final, Literal

import pyarrow as pa
import pyarrow.dataset as ds

from audit_logging.archive import matching
from audit_logging.archive.layout import ArchiveFile
from audit_logging.archive.parquet import ARROW_SCHEMA, records_from_table
from audit_logging.archive.store import ArchiveStore, UnreadableFileError

Order = list[tuple[str, Literal["ascending", "descending"]]]
NEWEST_FIRST: Final[Order] = [("timestamp", "descending"), ("log_id", "descending")]
OLDEST_FIRST: Final[Order] = [("timestamp", "ascending"), ("log_id", "ascending")]
ALL_COLUMNS: Final = tuple(ARROW_SCHEMA.names)
# Rows the cheap filters kept, gathered before free text is evaluated on them.
_RESIDUAL_ROWS: Final = 16_384


@dataclasses.dataclass(frozen=True)
class Page:
    total: int  # every match in the range, whatever page this is
    records: list[dict[str, Any]]
    # Keys of files in the range that are no readable archive file: their records, if
    # any, are in neither the total nor the records.
    unreadable: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class After:
    """The last record of the previous page: the next page starts below it."""

    timestamp: dt.datetime
    log_id: str


def log_id_day(log_id: str) -> dt.date | None:
    """The UTC day a UUIDv7 log_id was made (its first 48 bits are Unix milliseconds)."""
    try:
        value = uuid.UUID(log_id)
    except ValueError:
        return None
    if value.version != 7:
        return None
    millis = value.int >> 80
    return dt.datetime.fromtimestamp(millis / 1000, dt.UTC).date()


class ArchiveSearch:
    def __init__(self, store: ArchiveStore) -> None:
        self.store = store
        self._totals = _Totals()

    def day_range(self, search: matching.Filter) -> tuple[dt.date, dt.date] | None:
        """The days a search can touch: its time bounds, narrowed to the archive's first month
        and to tomorrow (a record's clock may run ahead a little), so a far-away bound costs
        no listing. None when no day can match."""
        found = self.store.first_month()
        if found is None:
            return None
        first = found
        if search.start is not None:
            first = max(first, search.start.moment.astimezone(dt.UTC).date())
        last = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
        if search.end is not None:
            end = search.end.moment.astimezone(dt.UTC)
            end_day = end.date()
            if not search.end.inclusive and end.time() == dt.time():
                end_day -= dt.timedelta(days=1)
            last = min(last, end_day)
        return (first, last) if first <= last else None

    def _matches(
        self,
        search: matching.Filter,
        files: Sequence[ArchiveFile],
        columns: Sequence[str],
        skipped: list[UnreadableFileError],
        *,
        deadline: float | None = None,
        extra: ds.Expression | None = None,
    ) -> Iterator[pa.Table]:
        """The matching rows of ``files``, a table at a time. The cheap filters go to the
        scan; free text and networks are then evaluated on the rows those kept only, gathered
        into tables of up to :data:`_RESIDUAL_ROWS` (each evaluation compiles its regular
        expressions once)."""
        pushed = matching.pushed_down(search)
        if extra is not None:
            pushed = extra if pushed is None else pushed & extra
        text = matching.residual(search)
        mask = matching.ip_mask(search)
        read = list(dict.fromkeys([*columns, *matching.residual_columns(search)]))
        wanted = list(columns)

        def finish(batches: list[pa.RecordBatch]) -> pa.Table:
            # One chunk: Arrow compiles an expression's regular expressions once per chunk.
            table = pa.Table.from_batches(batches, schema=batches[0].schema).combine_chunks()
            if table.num_rows and text is not None:
                table = table.filter(text)
            if table.num_rows and mask is not None:
                table = table.filter(mask(table.column("ip_address")))
            return table.select(wanted)

        held: list[pa.RecordBatch] = []
        rows = 0
        for batch in self.store.scan(files, read, pushed, skipped, deadline):
            if not batch.num_rows:
                continue
            held.append(batch)
            rows += batch.num_rows
            if rows >= _RESIDUAL_ROWS or (text is None and mask is None):
                yield finish(held)
                held, rows = [], 0
        if held:
            yield finish(held)

    def page(
        self,
        search: matching.Filter,
        *,
        offset: int,
        size: int,
        after: After | None = None,
        columns: Sequence[str] = ALL_COLUMNS,
        window: tuple[dt.date, dt.date] | None = None,
        seconds: float | None = None,
    ) -> Page:
        """Records ``offset`` to ``offset + size`` of the matches, newest first; with
        ``after``, the ``size`` records below it (``offset`` is then ignored). ``window``
        narrows the days read (the part of a search the archive answers). After
        ``seconds``, the search stops with :class:`SearchTooLongError`.

        One scan counts every match and keeps the newest ``offset + size`` rows below the
        cursor, at most twice that many at a time: every file is read once, whole (requests,
        not bytes, are what reading S3 costs most)."""
        deadline = None if seconds is None else time.monotonic() + seconds
        days = window or self.day_range(search)
        if days is None:
            return Page(0, [])
        files = self.store.files(*days)
        keep = size + (0 if after is not None else offset)
        below = None if after is None else matching.before(after.timestamp, after.log_id)
        read = list(dict.fromkeys([*columns, "timestamp", "log_id"]))
        # The next pages of a cursor share the first one's total: with it known, the scan
        # skips the row groups above the cursor instead of counting them again.
        counted = _search_digest(search, files)
        known = self._totals.get(counted) if below is not None else None
        total = 0
        best = _Newest(keep)
        skipped: list[UnreadableFileError] = []
        for table in self._matches(search, files, read, skipped, deadline=deadline,
                                   extra=below if known is not None else None):
            total += table.num_rows
            if keep and table.num_rows:
                best.add(table if below is None else table.filter(below))
        if known is None:
            self._totals.put(counted, total)
        else:
            total = known
        rows = best.result().slice(0 if after is not None else offset, size)
        return Page(total, records_from_table(rows.select(list(columns))),
                    tuple(s.key for s in skipped))

    def find(self, log_id: str) -> dict[str, Any] | None:
        """The archived record of ``log_id``, from the files of the day its UUIDv7 names
        (and the days beside it: a record logged at midnight may carry the day before).
        Raises :class:`UnreadableFileError` when it is not found and one of those files
        cannot be read: the record may be in it, so "none" would not be known."""
        day = log_id_day(log_id)
        if day is None:
            return None
        one_day = dt.timedelta(days=1)
        skipped: list[UnreadableFileError] = []
        for near in (day, day - one_day, day + one_day):
            files = self.store.files(near, near)
            for batch in self.store.scan(files, ALL_COLUMNS, ds.field("log_id") == log_id,
                                         skipped):
                if batch.num_rows:  # found: the files not yet read are not needed
                    return records_from_table(pa.Table.from_batches([batch.slice(0, 1)]))[0]
        if skipped:
            raise skipped[0]
        return None

    def each_day(
        self,
        search: matching.Filter,
        files: Sequence[ArchiveFile],
        columns: Sequence[str] = ALL_COLUMNS,
        skipped: list[UnreadableFileError] | None = None,
    ) -> Iterator[tuple[dt.date, pa.Table]]:
        """Every match in ``files``, one day's table at a time, oldest first (an export's
        memory holds one day of matches). A file that cannot be read is added to
        ``skipped`` and passed over, or, without ``skipped``, raises."""
        by_day: dict[dt.date, list[ArchiveFile]] = {}
        for file in files:
            by_day.setdefault(file.day, []).append(file)
        read = list(dict.fromkeys([*columns, "timestamp", "log_id"]))
        for day in sorted(by_day):
            found: list[UnreadableFileError] = []
            parts = list(self._matches(search, by_day[day], read, found))
            if found and skipped is None:
                raise found[0]
            if skipped is not None:
                skipped.extend(found)
            table = pa.concat_tables(parts) if parts else ARROW_SCHEMA.empty_table().select(read)
            yield day, table.sort_by(OLDEST_FIRST).select(list(columns))


def _search_digest(search: matching.Filter, files: Sequence[ArchiveFile]) -> bytes:
    """What a total depends on, in 32 bytes: every filter's value (a session key too, which
    a filter's repr hides) and each file of the range, by key and size."""
    def bound(value: matching.Bound | None) -> list[Any] | None:
        return None if value is None else [value.moment.isoformat(), value.inclusive]

    described = json.dumps([sorted(search.exact.items()), search.ip_address, bound(search.start),
                            bound(search.end), search.search_term])
    digest = hashlib.blake2b(described.encode(), digest_size=32)
    for file in files:
        digest.update(f"\n{file.key}\t{file.size}".encode())
    return digest.digest()


class _Totals:
    """The totals of recent searches, by filter and the exact files read (a file added to
    the range makes another key)."""

    KEPT: Final = 256

    def __init__(self) -> None:
        self._totals: collections.OrderedDict[bytes, int] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> int | None:
        with self._lock:
            found = self._totals.get(key)
            if found is not None:
                self._totals.move_to_end(key)
            return found

    def put(self, key: bytes, total: int) -> None:
        with self._lock:
            self._totals[key] = total
            while len(self._totals) > self.KEPT:
                self._totals.popitem(last=False)


class _Newest:
    """The ``keep`` newest rows seen, merged a table at a time: memory holds at most twice
    that many."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.parts: list[pa.Table] = []
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        self.parts.append(table)
        self.rows += table.num_rows
        if self.rows > 2 * self.keep:
            merged = self.result()
            self.parts, self.rows = [merged], merged.num_rows

    def result(self) -> pa.Table:
        if not self.parts:
            return ARROW_SCHEMA.empty_table()
        return pa.concat_tables(self.parts).sort_by(NEWEST_FIRST).slice(0, self.keep)

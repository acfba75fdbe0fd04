"""Searching the archive: a page of matching records, newest first, with the total; one record
by its log_id; every matching record, day by day, for an export.

Memory stays bounded whatever the range: counting keeps one number per day, and a page or an
export holds at most one day's matching rows at a time (sorted there, newest first with
``log_id`` breaking ties, the order the index answers in).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Final, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from audit_logging.archive import matching
from audit_logging.archive.layout import ArchiveFile
from audit_logging.archive.parquet import ARROW_SCHEMA, records_from_table
from audit_logging.archive.store import ArchiveStore

Order = list[tuple[str, Literal["ascending", "descending"]]]
NEWEST_FIRST: Final[Order] = [("timestamp", "descending"), ("log_id", "descending")]
OLDEST_FIRST: Final[Order] = [("timestamp", "ascending"), ("log_id", "ascending")]
ALL_COLUMNS: Final = tuple(ARROW_SCHEMA.names)


@dataclasses.dataclass(frozen=True)
class Page:
    total: int  # every match in the range, whatever page this is
    records: list[dict[str, Any]]


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

    def day_range(self, search: matching.Filter) -> tuple[dt.date, dt.date] | None:
        """The days a search can touch: its time bounds, narrowed to the archive's first day
        and to tomorrow (a record's clock may run ahead a little), so a far-away bound costs
        no listing. None when no day can match."""
        found = self.store.first_day()
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

    def counts(self, search: matching.Filter, files: Sequence[ArchiveFile]) -> dict[dt.date, int]:
        """How many records of each day match."""
        day_of_path = {self.store.path(f.key): f.day for f in files}
        counts: dict[dt.date, int] = {}
        mask = matching.ip_mask(search)
        columns = ["ip_address"] if mask is not None else []
        scanner = self.store.dataset(files).scanner(
            columns=columns, filter=matching.expression(search)
        )
        for tagged in scanner.scan_batches():
            batch = tagged.record_batch
            rows = batch.num_rows if mask is None else pc.sum(mask(batch.column(0))).as_py() or 0
            fragment = tagged.fragment
            assert isinstance(fragment, ds.FileFragment)
            day = day_of_path[fragment.path]
            counts[day] = counts.get(day, 0) + rows
        return counts

    def page(
        self,
        search: matching.Filter,
        *,
        offset: int,
        size: int,
        after: After | None = None,
        columns: Sequence[str] = ALL_COLUMNS,
        window: tuple[dt.date, dt.date] | None = None,
    ) -> Page:
        """Records ``offset`` to ``offset + size`` of the matches, newest first; with
        ``after``, the ``size`` records below it (``offset`` is then ignored). ``window``
        narrows the days read (the part of a search the archive answers)."""
        days = window or self.day_range(search)
        if days is None:
            return Page(0, [])
        files = self.store.files(*days)
        counts = self.counts(search, files)
        total = sum(counts.values())
        by_day: dict[dt.date, list[ArchiveFile]] = {}
        for file in files:
            by_day.setdefault(file.day, []).append(file)
        skip = 0 if after is not None else offset
        wanted: list[pa.Table] = []
        needed = size
        for day in sorted(by_day, reverse=True):
            if needed <= 0:
                break
            if after is not None and day > after.timestamp.astimezone(dt.UTC).date():
                continue
            matches = counts.get(day, 0)
            if after is None and skip >= matches:
                skip -= matches
                continue
            if matches == 0:
                continue
            table = self._day_matches(search, by_day[day], columns, after).sort_by(NEWEST_FIRST)
            part = table.slice(skip, needed).select(list(columns))
            skip = 0
            needed -= part.num_rows
            wanted.append(part)
        records = [r for t in wanted for r in records_from_table(t)]
        return Page(total, records)

    def _day_matches(
        self,
        search: matching.Filter,
        files: Sequence[ArchiveFile],
        columns: Sequence[str],
        after: After | None,
    ) -> pa.Table:
        expression = matching.expression(search)
        if after is not None:
            below = matching.before(after.timestamp, after.log_id)
            expression = below if expression is None else expression & below
        # The sort and the network filter need their columns even when not asked for.
        read = list(dict.fromkeys([*columns, "timestamp", "log_id", "ip_address"]))
        table = self.store.dataset(files).to_table(columns=read, filter=expression)
        mask = matching.ip_mask(search)
        if mask is not None:
            table = table.filter(mask(table.column("ip_address")))
        return table

    def find(self, log_id: str) -> dict[str, Any] | None:
        """The archived record of ``log_id``, from the files of the day its UUIDv7 names
        (and the days beside it: a record logged at midnight may carry the day before)."""
        day = log_id_day(log_id)
        if day is None:
            return None
        one_day = dt.timedelta(days=1)
        for near in (day, day - one_day, day + one_day):
            files = self.store.files(near, near)
            if not files:
                continue
            table = self.store.dataset(files).to_table(filter=ds.field("log_id") == log_id)
            if table.num_rows:
                return records_from_table(table.slice(0, 1))[0]
        return None

    def each_day(
        self,
        search: matching.Filter,
        files: Sequence[ArchiveFile],
        columns: Sequence[str] = ALL_COLUMNS,
    ) -> Iterator[tuple[dt.date, pa.Table]]:
        """Every match in ``files``, one day's table at a time, oldest first (an export's
        memory holds one day of matches)."""
        by_day: dict[dt.date, list[ArchiveFile]] = {}
        for file in files:
            by_day.setdefault(file.day, []).append(file)
        for day in sorted(by_day):
            table = self._day_matches(search, by_day[day], columns, None).sort_by(OLDEST_FIRST)
            yield day, table.select(list(columns))

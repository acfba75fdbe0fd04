"""Checking that the search index and the archive hold the same records, one day at a time.

For each day of the range:

* the archive's log_ids (the ``log_id`` column of the day's files) against the index's (the
  ``_id`` of every document whose timestamp falls in that UTC day, in any monthly index):
  *missing in the index* (archived, not indexed) and *missing in the archive* (indexed, not
  archived). Only for days whose month the index keeps (AUDIT_LOG_RETENTION_MONTHS): older
  ones are in the archive alone, on purpose;
* *duplicates*: a log_id in more than one row of the archive, in one file or in two;
* *offset problems*: what the files' names, metadata and row counts prove was archived twice
  (:mod:`.offsets` says what can and cannot be checked there);
* *unreadable files*: a file under the day's folder, named like an archive file, that is no
  archive file this package can read (damaged, cut short, empty, not Parquet, another schema).
  Its records cannot be counted or compared: the day's other files are checked as usual, and
  log_ids of the day the index holds that were in it show as missing in the archive. Its name
  still takes part in the offset checks that need names alone; its rows count as none (see
  :mod:`.offsets`). A file is read whole, every column decoded as ``export`` decodes it, so
  verify calls unreadable exactly the files a search or an export passes over.

S3 failing (a listing, a read) is no finding: it raises, and the command fails.

Not checked: that a record's content is the same in both tiers (only its presence), and that
the archive holds every record the stream carried (see :mod:`.offsets`). A day the consumer is
still writing differs while batches are in flight: check days that are over.

With a repairing :class:`~audit_logging.indexer.Indexer`, what the index misses is read back
from the archive's readable files and indexed, write-once, as ``reindex`` does.

Memory holds one day's log_ids (both tiers', as Arrow arrays) and, for the offset checks, one
small entry per archive file of the range.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from opensearchpy import helpers

from audit_logging.archive import layout
from audit_logging.archive.layout import ArchiveFile
from audit_logging.archive.offsets import FileSpan, named_offsets, offset_problems
from audit_logging.archive.parquet import ARROW_SCHEMA, records_from_table
from audit_logging.archive.reindex import PART_RECORDS, Notes, Tally, index_records, month_index
from audit_logging.archive.store import FOOTER_READERS, ArchiveStore, UnreadableFileError
from audit_logging.indexer import Indexer
from audit_logging.search_index import index_pattern

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

SAMPLE: Final = 10  # log_ids (or texts) shown for each difference of a day
_PAGE: Final = 10_000  # ids per page read from the index
_CHUNK: Final = 100_000  # ids gathered in Python before they become an Arrow array
_EMPTY: Final = pa.array([], pa.string())
# Every column, as export reads them: a file of another schema has a log_id column too.
_ALL_COLUMNS: Final = tuple(ARROW_SCHEMA.names)


@dataclasses.dataclass
class Found:
    """How many of one kind of difference a day has, and the first few, sorted."""

    count: int = 0
    sample: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def of(cls, values: pa.Array[Any] | pa.ChunkedArray[Any]) -> Found:
        first = pc.sort_indices(values)[:SAMPLE]
        return cls(len(values), [str(v) for v in pc.take(values, first).to_pylist()])

    def note(self, text: str) -> None:
        self.count += 1
        if len(self.sample) < SAMPLE:
            self.sample.append(text)


@dataclasses.dataclass
class DayCheck:
    day: dt.date
    files: int = 0
    archived: int = 0  # rows in the archive
    indexed: int | None = None  # documents in the index; None: past retention, not read
    missing_in_index: Found = dataclasses.field(default_factory=Found)
    missing_in_archive: Found = dataclasses.field(default_factory=Found)
    duplicates: Found = dataclasses.field(default_factory=Found)
    offset_problems: Found = dataclasses.field(default_factory=Found)
    # Files of the day that could not be read, by key: no repair mends them.
    unreadable: list[UnreadableFileError] = dataclasses.field(default_factory=list)
    repaired: Tally | None = None  # what --repair did with the records the index missed

    @property
    def index_checked(self) -> bool:
        return self.indexed is not None

    @property
    def still_missing(self) -> int:
        """Records the index misses after any repair (those it refused)."""
        if self.repaired is None:
            return self.missing_in_index.count
        return min(self.missing_in_index.count, self.repaired.refused)

    @property
    def differs(self) -> bool:
        return bool(self.missing_in_index.count or self.missing_in_archive.count
                    or self.duplicates.count or self.offset_problems.count or self.unreadable)

    @property
    def differs_still(self) -> bool:
        return bool(self.still_missing or self.missing_in_archive.count
                    or self.duplicates.count or self.offset_problems.count or self.unreadable)

    def passed_over(self, unreadable: Sequence[UnreadableFileError]) -> None:
        known = {u.key for u in self.unreadable}
        self.unreadable.extend(u for u in unreadable if u.key not in known)
        self.unreadable.sort(key=lambda u: u.key)


class Verifier:
    def __init__(
        self,
        store: ArchiveStore,
        client: OpenSearch,
        prefix: str,
        *,
        index_from: dt.date,
        repair: Indexer | None = None,
    ) -> None:
        """``index_from``: the first day the index keeps; ``repair``: index what it misses."""
        self.store = store
        self.client = client
        self.prefix = prefix
        self.index_from = index_from
        self.repair = repair
        self.notes = Notes()

    def check(
        self, first: dt.date, last: dt.date, on_day: Callable[[DayCheck], None] | None = None
    ) -> list[DayCheck]:
        """Each day from ``first`` to ``last``, checked (and repaired), ``on_day`` called as
        each is done; offset problems need every file of the range and are added last."""
        spans: list[FileSpan] = []
        checks: list[DayCheck] = []
        for month_first, month_last in _months(first, last):
            by_day: dict[dt.date, list[ArchiveFile]] = {}
            for file in self.store.files(month_first, month_last):
                by_day.setdefault(file.day, []).append(file)
            for day in layout.days(month_first, month_last):
                checks.append(self._day(day, by_day.get(day, []), spans))
                if on_day is not None:
                    on_day(checks[-1])
        by_day_check = {c.day: c for c in checks}
        for problem in offset_problems(spans):
            by_day_check[problem.day].offset_problems.note(problem.text)
        return checks

    def _day(self, day: dt.date, files: Sequence[ArchiveFile], spans: list[FileSpan]) -> DayCheck:
        check = DayCheck(day, files=len(files))
        ids = self._archive_ids(files, spans, check)
        check.archived = len(ids)
        counted = pc.value_counts(ids) if len(ids) else None
        unique = counted.field("values") if counted is not None else _EMPTY
        if counted is not None:
            twice = pc.filter(unique, pc.greater(counted.field("counts"), pa.scalar(1, pa.int64())))
            check.duplicates = Found.of(twice)
        if day < self.index_from:
            return check
        indexed = self._index_ids(day)
        check.indexed = len(indexed)
        indexed = pc.unique(indexed)
        missing = pc.filter(unique, pc.invert(pc.is_in(unique, value_set=indexed)))
        check.missing_in_index = Found.of(missing)
        check.missing_in_archive = Found.of(
            pc.filter(indexed, pc.invert(pc.is_in(indexed, value_set=unique)))
        )
        if self.repair is not None and len(missing):
            unreadable = {u.key for u in check.unreadable}
            readable = [f for f in files if f.key not in unreadable]
            check.repaired = self._repair(day, readable, missing, check)
        return check

    def _archive_ids(
        self, files: Sequence[ArchiveFile], spans: list[FileSpan], check: DayCheck
    ) -> pa.Array[Any]:
        if not files:
            return _EMPTY
        chunks: list[pa.Array[Any]] = []
        skipped: list[UnreadableFileError] = []
        # A damaged file is the store's to tell from S3 failing: it lands in ``skipped`` with
        # its key, while S3 failing raises (and the command fails, blaming S3).
        for batch in self.store.scan(files, _ALL_COLUMNS, skipped=skipped):
            chunks.append(batch.column("log_id"))
        check.passed_over(skipped)
        unreadable = {u.key for u in skipped}
        # Each readable file was just read whole, so its footer is sound: reading it fails
        # only if S3 does. Its row count is the one the scan decoded.
        readable = [f for f in files if f.key not in unreadable]
        footers = dict(zip((f.key for f in readable), self._footers(readable), strict=True))
        for file in files:
            footer = footers.get(file.key)
            if footer is None:
                # Its name still claims offsets, which the name-only checks use; its rows
                # and metadata are unknown: counted as none, they can hide an offset archived
                # twice across it and another file, never invent one.
                spans.append(FileSpan(file, 0))
            else:
                spans.append(FileSpan(file, footer.num_rows, named_offsets(footer.metadata)))
        return pa.chunked_array(chunks, pa.string()).combine_chunks() if chunks else _EMPTY

    def _footers(self, files: Sequence[ArchiveFile]) -> list[pq.FileMetaData]:
        """The footers of ``files``, side by side: each is a round trip to S3."""
        if len(files) < 2:
            return [self.store.footer(file) for file in files]
        with concurrent.futures.ThreadPoolExecutor(FOOTER_READERS) as pool:
            return list(pool.map(self.store.footer, files))

    def _index_ids(self, day: dt.date) -> pa.Array[Any]:
        """The ``_id`` of every document of ``day``, in every monthly index."""
        after = day + dt.timedelta(days=1)
        query = {"query": {"range": {"timestamp": {"gte": f"{day}T00:00:00Z",
                                                   "lt": f"{after}T00:00:00Z"}}}}
        chunks: list[pa.Array[Any]] = []
        ids: list[str] = []
        hits: Iterator[dict[str, Any]] = helpers.scan(
            self.client, query=query, index=index_pattern(self.prefix), size=_PAGE,
            scroll="2m", _source=False, allow_no_indices=True, ignore_unavailable=True,
        )
        for hit in hits:
            ids.append(hit["_id"])
            if len(ids) >= _CHUNK:
                chunks.append(pa.array(ids, pa.string()))
                ids = []
        chunks.append(pa.array(ids, pa.string()))
        return pa.chunked_array(chunks, pa.string()).combine_chunks()

    def _repair(
        self, day: dt.date, files: Sequence[ArchiveFile], missing: pa.Array[Any], check: DayCheck
    ) -> Tally:
        """Index the records of ``missing`` from ``files`` (the day's readable ones)."""
        assert self.repair is not None
        tally = Tally()
        wanted = ds.field("log_id").isin(missing)
        skipped: list[UnreadableFileError] = []
        for batch in self.store.scan(files, _ALL_COLUMNS, where=wanted, skipped=skipped):
            for start in range(0, batch.num_rows, PART_RECORDS):
                part = pa.Table.from_batches([batch.slice(start, PART_RECORDS)])
                tally.add(index_records(self.repair, records_from_table(part), self.notes))
        check.passed_over(skipped)  # read a moment ago, unreadable now: said so all the same
        self.client.indices.refresh(index=month_index(self.prefix, day),
                                    params={"ignore_unavailable": "true"})
        return tally


def _months(first: dt.date, last: dt.date) -> Iterator[tuple[dt.date, dt.date]]:
    """(first, last) day of each month the range touches, clipped to the range."""
    start = first
    while start <= last:
        following = (start.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        yield start, min(last, following - dt.timedelta(days=1))
        start = following

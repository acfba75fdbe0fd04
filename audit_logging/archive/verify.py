"""Checking that the search index and the archive hold the same records, one day at a time.

For each day of the range:

* the archive's log_ids (the ``log_id`` column of the day's files) against the index's (the
  ``_id`` of every document whose timestamp falls in that UTC day, in any monthly index):
  *missing in the index* (archived, not indexed) and *missing in the archive* (indexed, not
  archived). Only for days whose month the index keeps (AUDIT_LOG_RETENTION_MONTHS): older
  ones are in the archive alone, on purpose;
* *duplicates*: a log_id in more than one row of the archive, in one file or in two;
* *offset problems*: what the files' names, metadata and row counts prove was archived twice
  (:mod:`.offsets` says what can and cannot be checked there).

Not checked: that a record's content is the same in both tiers (only its presence), and that
the archive holds every record the stream carried (see :mod:`.offsets`). A day the consumer is
still writing differs while batches are in flight: check days that are over.

With a repairing :class:`~audit_logging.indexer.Indexer`, what the index misses is read back
from the archive and indexed, write-once, as ``reindex`` does.

Memory holds one day's log_ids (both tiers', as Arrow arrays) and, for the offset checks, one
small entry per archive file of the range.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from opensearchpy import helpers

from audit_logging.archive import layout
from audit_logging.archive.layout import ArchiveFile
from audit_logging.archive.offsets import FileSpan, named_offsets, offset_problems
from audit_logging.archive.parquet import records_from_table
from audit_logging.archive.reindex import PART_RECORDS, Notes, Tally, index_records, month_index
from audit_logging.archive.store import ArchiveStore
from audit_logging.indexer import Indexer
from audit_logging.search_index import index_pattern

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

SAMPLE: Final = 10  # log_ids (or texts) shown for each difference of a day
_PAGE: Final = 10_000  # ids per page read from the index
_CHUNK: Final = 100_000  # ids gathered in Python before they become an Arrow array
_EMPTY: Final = pa.array([], pa.string())


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
                    or self.duplicates.count or self.offset_problems.count)

    @property
    def differs_still(self) -> bool:
        return bool(self.still_missing or self.missing_in_archive.count
                    or self.duplicates.count or self.offset_problems.count)


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
        ids = self._archive_ids(files, spans)
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
            check.repaired = self._repair(day, files, missing)
        return check

    def _archive_ids(self, files: Sequence[ArchiveFile], spans: list[FileSpan]) -> pa.Array[Any]:
        if not files:
            return _EMPTY
        rows = {self.store.path(f.key): 0 for f in files}
        chunks: list[pa.Array[Any]] = []
        scanner = self.store.dataset(files).scanner(columns=["log_id"])
        for tagged in scanner.scan_batches():
            fragment = tagged.fragment
            assert isinstance(fragment, ds.FileFragment)
            rows[fragment.path] += tagged.record_batch.num_rows
            chunks.append(tagged.record_batch.column(0))
        for file in files:
            metadata = self.store.footer(file).metadata
            spans.append(FileSpan(file, rows[self.store.path(file.key)], named_offsets(metadata)))
        return pa.chunked_array(chunks, pa.string()).combine_chunks() if chunks else _EMPTY

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

    def _repair(self, day: dt.date, files: Sequence[ArchiveFile], missing: pa.Array[Any]) -> Tally:
        assert self.repair is not None
        tally = Tally()
        wanted = ds.field("log_id").isin(missing)
        scanner = self.store.dataset(files).scanner(filter=wanted, batch_size=PART_RECORDS)
        for batch in scanner.to_batches():
            if batch.num_rows:
                records = records_from_table(pa.Table.from_batches([batch]))
                tally.add(index_records(self.repair, records, self.notes))
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

"""Rebuilding the search index from the archive, write-once and resumable.

Records go in as the consumer writes them (:class:`audit_logging.indexer.Indexer`: ``_id`` is
the log_id, op ``create``, a log_id looked up in every monthly index first): one the index
already holds is counted as there and never overwritten, and one whose indexed copy differs
from the archive's is kept as the index has it and reported (``differing``).

The work is a pipeline with bounded memory: a few threads read archive files from S3 (one GET
each) and cut them into parts of at most :data:`PART_RECORDS` records, a bounded queue holds a
few parts per sender, and the sending threads gather queued parts (of several files, often
small) into bulk requests of up to :data:`BULK_RECORDS` records, which the Indexer cuts by
bytes. Memory holds a few tens of thousands of records whatever the range. Once every record
of a file is acknowledged, the file is written to the :class:`~.checkpoint.Checkpoint`, so a
run that is killed and started again skips it.

A file that is no archive file this package can read (damaged, not Parquet, another schema;
read as export reads it, which sets it apart from S3 failing) is passed over and kept in
``unreadable``; it is never written to the checkpoint, so every later run reads it again.

OpenSearch is waited for as the consumer waits, but not forever: after ``give_up_after``
seconds without an answer the run fails (a cron job gets its exit code, not a hang).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
from opensearchpy.exceptions import TransportError

from audit_logging.archive.checkpoint import COUNTS, Checkpoint
from audit_logging.archive.layout import ArchiveFile
from audit_logging.archive.parquet import ARROW_SCHEMA, records_from_table
from audit_logging.archive.store import ArchiveStore, UnreadableFileError
from audit_logging.errors import AuditLoggingError, describe_error
from audit_logging.indexer import Indexer, Refusal
from audit_logging.retry import Waiter
from audit_logging.search_index import index_for, index_pattern

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

_log = logging.getLogger("audit_logging.archive")
GIVE_UP_AFTER: Final = 60.0  # seconds OpenSearch may fail before the run does
PART_RECORDS: Final = 1000  # records cut from a file and queued together
BULK_RECORDS: Final = 5000  # records of several parts (files) sent together
SAMPLES: Final = 5  # examples of records kept for each kind of note
_POLL: Final = 0.2  # seconds between checks for a failure while waiting on the queue
_ALL_COLUMNS: Final = tuple(ARROW_SCHEMA.names)


class ArchiveFileError(AuditLoggingError):
    """An archive file could not be read; the message names it."""


@dataclasses.dataclass
class Tally:
    """What became of archived records. ``present`` counts records the index held already;
    ``differing`` those of them whose indexed copy is not the archive's (kept as it is)."""

    files: int = 0
    records: int = 0
    indexed: int = 0
    present: int = 0
    differing: int = 0
    refused: int = 0
    resumed_files: int = 0  # finished by an earlier run (the checkpoint's)
    unreadable: int = 0  # files passed over: they could not be read (not in ``files``)

    def add(self, other: Tally) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTS}


@dataclasses.dataclass
class Notes:
    """Examples of what deserves a look, at most :data:`SAMPLES` of each (kept by any of
    the sending threads)."""

    differing: list[str] = dataclasses.field(default_factory=list)
    refused: list[str] = dataclasses.field(default_factory=list)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def keep(self, kind: list[str], text: str) -> None:
        with self._lock:
            if len(kind) < SAMPLES:
                kind.append(text)


def archive_indexer(
    client: OpenSearch, prefix: str, stop: threading.Event, *, bulk_bytes: int,
    give_up_after: float = GIVE_UP_AFTER,
) -> Indexer:
    """The consumer's bulk writer, with a wait that gives up and says so in our words."""

    def waiter() -> Waiter:
        return Waiter("OpenSearch", stop, give_up_after=give_up_after, log=_log,
                      meanwhile="the records are sent again when it answers")

    return Indexer(client, prefix, stop, max_docs=100_000, max_bytes=bulk_bytes, waiter=waiter)


def index_records(
    indexer: Indexer, records: Sequence[Mapping[str, Any]], notes: Notes | None = None
) -> Tally:
    """Write ``records`` once; a record already there counts as present, never overwritten."""
    return tally_of(records, indexer.index(records), notes)


def tally_of(
    records: Sequence[Mapping[str, Any]], refusals: Sequence[Refusal], notes: Notes | None = None
) -> Tally:
    """What became of ``records``, given the Indexer's ``refusals`` of them."""
    tally = Tally(records=len(records), indexed=len(records) - len(refusals))
    for refusal in refusals:
        log_id = records[refusal.position].get("log_id")
        if refusal.code == "resend":  # the same record is there
            tally.present += 1
        elif refusal.code == "duplicate_log_id":  # another version is there: it stands
            tally.present += 1
            tally.differing += 1
            if notes is not None:
                notes.keep(notes.differing, refusal.reason)
        else:
            tally.refused += 1
            if notes is not None:
                notes.keep(notes.refused, f"log_id {log_id}: {refusal.reason[:300]}")
    return tally


def split_refusals(sizes: Sequence[int], refusals: Sequence[Refusal]) -> list[list[Refusal]]:
    """The refusals of records sent together, back to the parts they came from (``sizes``
    records each, in order), each with its position within its part."""
    shares: list[list[Refusal]] = [[] for _ in sizes]
    start = 0
    for n, size in enumerate(sizes):
        end = start + size
        shares[n] = [dataclasses.replace(r, position=r.position - start)
                     for r in refusals if start <= r.position < end]
        start = end
    return shares


def month_index(prefix: str, day: dt.date) -> str:
    """The monthly index that holds the records of ``day``."""
    return index_for(prefix, dt.datetime(day.year, day.month, 1, tzinfo=dt.UTC))


def index_uuids(client: OpenSearch, index: str) -> dict[str, str]:
    """The uuid of each open index ``index`` (a name or a pattern) names; none if missing."""
    found = client.indices.get_settings(
        index=index,
        name="index.uuid",
        params={"allow_no_indices": "true", "ignore_unavailable": "true",
                "expand_wildcards": "open"},
    )
    return {name: str(body["settings"]["index"]["uuid"]) for name, body in found.items()}


@dataclasses.dataclass(eq=False)
class _Part:
    file: ArchiveFile
    records: list[dict[str, Any]]


@dataclasses.dataclass(eq=False)
class _Open:
    """A file being sent: its rows, how many are acknowledged, what became of them."""

    rows: int
    done: int = 0
    tally: Tally = dataclasses.field(default_factory=Tally)


class Reindexer:
    def __init__(
        self,
        store: ArchiveStore,
        client: OpenSearch,
        prefix: str,
        checkpoint: Checkpoint | None,
        *,
        readers: int = 4,
        senders: int = 2,
        bulk_bytes: int = 8 * 1024 * 1024,
        part_records: int = PART_RECORDS,
        give_up_after: float = GIVE_UP_AFTER,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """``on_progress(records, days)`` is called as records are acknowledged and as days
        are finished (from the sending threads, one call at a time)."""
        self.store = store
        self.client = client
        self.prefix = prefix
        self.checkpoint = checkpoint
        self.readers = readers
        self.senders = senders
        self.part_records = part_records
        self.on_progress = on_progress
        self.stop = threading.Event()
        self.indexer = archive_indexer(client, prefix, self.stop, bulk_bytes=bulk_bytes,
                                       give_up_after=give_up_after)
        self.days: dict[dt.date, Tally] = {}
        self.notes = Notes()
        self.touched: set[str] = set()
        self.unreadable: list[UnreadableFileError] = []  # files passed over, by key once run
        # Enough parts queued for each sender to gather a full bulk request.
        self._queue: queue.Queue[_Part | None] = queue.Queue(
            maxsize=senders * (BULK_RECORDS // part_records + 1)
        )
        self._open: dict[str, _Open] = {}
        self._files_left: dict[dt.date, int] = {}
        self._uuids: dict[str, str] = {}
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()

    def run(self, files: Sequence[ArchiveFile]) -> dict[dt.date, Tally]:
        """Index every record of ``files``; returns what became of them, by day."""
        self._uuids = index_uuids(self.client, index_pattern(self.prefix))
        todo = []
        for file in files:
            day = self.days.setdefault(file.day, Tally())
            done = None
            if self.checkpoint is not None:
                uuid = self._uuids.get(month_index(self.prefix, file.day))
                done = self.checkpoint.finished(file, uuid)
            if done is None:
                todo.append(file)
                self._files_left[file.day] = self._files_left.get(file.day, 0) + 1
                continue
            day.add(Tally(files=1, resumed_files=1, **done.counts))
        self._create_indices({month_index(self.prefix, f.day) for f in todo})
        if self.on_progress is not None:
            self.on_progress(0, len(self.days) - len(self._files_left))
        try:
            self._pipeline(todo)
        finally:
            self.stop.set()
        self.unreadable.sort(key=lambda u: u.key)
        if self.touched:
            # What was written is searchable when the command returns.
            self.client.indices.refresh(index=",".join(sorted(self.touched)),
                                        params={"ignore_unavailable": "true"})
        return dict(sorted(self.days.items()))

    def _create_indices(self, names: set[str]) -> None:
        """Make the monthly indices missing, and wait for their shards: a search of a new
        index whose shards are still starting fails (503), and every bulk is looked up first."""
        for name in sorted(names - self._uuids.keys()):
            try:
                self.client.indices.create(index=name, params={"wait_for_active_shards": "1"})
            except TransportError as exc:
                if exc.error != "resource_already_exists_exception":
                    raise

    def _pipeline(self, files: list[ArchiveFile]) -> None:
        pending = iter(files)
        readers = [threading.Thread(target=self._guard, args=(self._read, pending),
                                    name=f"reindex-read-{n}", daemon=True)
                   for n in range(min(self.readers, len(files)))]
        senders = [threading.Thread(target=self._guard, args=(self._send,),
                                    name=f"reindex-send-{n}", daemon=True)
                   for n in range(self.senders)]
        for thread in [*readers, *senders]:
            thread.start()
        try:
            _join(readers, self.stop)
            for _ in senders:
                self._put(None)
            _join(senders, self.stop)
        except BaseException:
            # Interrupted (Ctrl-C): let the bulk requests in flight end, so nothing is
            # recorded as finished after the caller has closed the checkpoint.
            self.stop.set()
            _join([*readers, *senders], threading.Event())
            raise
        if self._errors:
            raise self._errors[0]

    def _guard(self, work: Callable[..., None], *args: Any) -> None:
        try:
            work(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, raised there
            with self._lock:
                self._errors.append(exc)
            self.stop.set()

    def _read(self, pending: Any) -> None:
        while not self.stop.is_set():
            with self._lock:
                file = next(pending, None)
            if file is None:
                return
            try:
                table = self._fetch(file)
            except UnreadableFileError as unreadable:
                self._passed_over(file, unreadable)
                continue
            except Exception as exc:
                raise ArchiveFileError(
                    f"reading s3://{self.store.path(file.key)}: {describe_error(exc)}"
                ) from exc
            with self._lock:
                self._open[file.key] = _Open(table.num_rows)
            if table.num_rows == 0:
                self._put(_Part(file, []))
            for batch in table.to_batches(max_chunksize=self.part_records):
                self._put(_Part(file, records_from_table(pa.Table.from_batches([batch]))))

    def _fetch(self, file: ArchiveFile) -> pa.Table:
        # One GET for the whole object (the store's scan): archive files are small (about 80
        # bytes a record), and ranged reads of the footer and each column would cost a request
        # each. Bytes that are no archive file raise UnreadableFileError; S3 failing, its own.
        batches = list(self.store.scan([file], _ALL_COLUMNS))
        if not batches:
            return ARROW_SCHEMA.empty_table()
        return pa.Table.from_batches(batches)

    def _passed_over(self, file: ArchiveFile, unreadable: UnreadableFileError) -> None:
        """Count ``file`` as done for its day, never as finished: no checkpoint line."""
        with self._lock:
            self.unreadable.append(unreadable)
            self.days[file.day].unreadable += 1
            self._files_left[file.day] -= 1
            if self.on_progress is not None:
                self.on_progress(0, int(self._files_left[file.day] == 0))

    def _put(self, part: _Part | None) -> None:
        while not self.stop.is_set():
            try:
                self._queue.put(part, timeout=_POLL)
                return
            except queue.Full:
                continue

    def _send(self) -> None:
        while not self.stop.is_set():
            try:
                part = self._queue.get(timeout=_POLL)
            except queue.Empty:
                continue
            if part is None:
                return
            # Archive files are often small (a batch's records of one day): parts of several
            # are sent together, as bulk requests of a size OpenSearch handles well.
            parts, ended = self._gather(part)
            records = [record for part in parts for record in part.records]
            refusals = self.indexer.index(records)
            shares = split_refusals([len(part.records) for part in parts], refusals)
            for part, mine in zip(parts, shares, strict=True):
                self._acknowledged(part, tally_of(part.records, mine, self.notes))
            if ended:
                return

    def _gather(self, first: _Part) -> tuple[list[_Part], bool]:
        """``first`` and the parts queued behind it, up to :data:`BULK_RECORDS` records;
        True when the end of the work was met."""
        parts = [first]
        count = len(first.records)
        while count < BULK_RECORDS:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                return parts, False
            if more is None:
                return parts, True
            parts.append(more)
            count += len(more.records)
        return parts, False

    def _acknowledged(self, part: _Part, tally: Tally) -> None:
        file = part.file
        index = month_index(self.prefix, file.day)
        with self._lock:
            state = self._open[file.key]
            state.done += len(part.records)
            state.tally.add(tally)
            finished = state.done >= state.rows
            if finished:
                del self._open[file.key]
                state.tally.files = 1
                self.days[file.day].add(state.tally)
                self._files_left[file.day] -= 1
            if tally.indexed:
                self.touched.add(index)
        if finished and self.checkpoint is not None:
            uuid = self._index_uuid(index)
            if uuid is not None:
                self.checkpoint.mark(file, uuid, state.tally.counts())
        if self.on_progress is not None:
            with self._lock:
                day_done = finished and self._files_left[file.day] == 0
                self.on_progress(len(part.records), int(day_done))

    def _index_uuid(self, index: str) -> str | None:
        with self._lock:
            known = self._uuids.get(index)
        if known is None:
            known = index_uuids(self.client, index).get(index)
            if known is not None:
                with self._lock:
                    self._uuids[index] = known
        return known


def _join(threads: Sequence[threading.Thread], stop: threading.Event) -> None:
    # Short joins, so the main thread still sees Ctrl-C and a failed thread's stop.
    for thread in threads:
        while thread.is_alive():
            thread.join(_POLL)
            if stop.is_set() and not thread.is_alive():
                break

"""A closed batch into S3: split by record day, reconciled with what S3 already holds (the
ledger), written as create-only Parquet files, and its dead letters as one NDJSON object.

Blocking (boto3, pyarrow): the service runs these in a worker thread.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Final

import pyarrow as pa

from audit_logging.archive import digest_format, layout, parquet
from audit_logging.consumer import dead_letter
from audit_logging.consumer.batch import Batch
from audit_logging.consumer.digest_entries import dead_letter_entry
from audit_logging.consumer.digests import DigestChain
from audit_logging.consumer.ledger import ArchiveLedger
from audit_logging.consumer.s3 import S3Store
from audit_logging.retry import AbandonedError

_log = logging.getLogger("audit_logging.consumer")
# Longer than an upload (one batch's file, retried) may take: until then a member that took
# over lists S3 again before each upload.
RELIST_AFTER_RESUME: Final = 120.0


class FencedError(AbandonedError):
    """An upload refused because this member lost its connection to the broker."""


@dataclasses.dataclass
class ArchiveStats:
    files: int = 0
    written: int = 0
    already: int = 0
    # Records whose Parquet row could not be built (a fault of the record, not of S3).
    letters: list[dead_letter.DeadLetter] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(eq=False)
class Archiver:
    """Archives one stream's batches into ``s3_prefix`` and lists each object in the
    stream's digest chain (``digests``); ``on_uploaded`` (tests) is called with each key once
    S3 has it."""

    store: S3Store
    s3_prefix: str
    stream: str
    digests: DigestChain
    on_uploaded: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        self._ledger: ArchiveLedger | None = None
        self._fenced = threading.Event()

    def resume(self, stored: int | None, digested: int | None = None) -> None:
        """Reading starts again after offset ``stored`` (a start, a takeover): what S3 holds
        past it is listed afresh, lazily, per record day, and again before each upload for a
        while: the member we take over from may have been cut off from the broker, not
        killed, with an upload under way."""
        self._fenced.clear()
        self._ledger = ArchiveLedger(
            self.store, self.s3_prefix, self.stream, stored, relist_for=RELIST_AFTER_RESUME
        )
        self.digests.resume(stored, digested)

    def fence(self) -> None:
        """The connection to the broker is lost: another member may be active already, so
        no upload starts any more (the batch is read again by whoever is active)."""
        self._fenced.set()

    def _check_fence(self) -> None:
        if self._fenced.is_set():
            raise FencedError("cut off from the broker: another member may be active")

    def write_parquet(self, batch: Batch) -> ArchiveStats:
        ledger = self._ledger
        assert ledger is not None, "resume() first"
        stats = ArchiveStats()
        self.digests.load()
        self.digests.begin(batch.first_offset)
        by_day: dict[str, list[int]] = {}
        for position, record in enumerate(batch.records):
            # Resent records and reused log_ids are not archived again: the first stands.
            if position not in batch.not_archived:
                by_day.setdefault(layout.day_of(record), []).append(position)
        for day in sorted(by_day):
            positions = by_day[day]
            done = ledger.archived(
                day, [(batch.offsets[p], batch.records[p]["log_id"]) for p in positions]
            )
            if done:
                self.digests.add_existing(set(done.values()))
                stats.already += len(done)
                positions = [p for p in positions if batch.offsets[p] not in done]
            if not positions:
                continue
            table, bad = parquet.records_table_checked(
                [batch.records[p] for p in positions],
                lambda exc: dead_letter.failure("archive", exc)[1],
            )
            for at, reason in bad:
                stats.letters.append(batch.unarchivable(positions[at], reason))
            if bad:
                refused = {at for at, _ in bad}
                positions = [p for at, p in enumerate(positions) if at not in refused]
            if positions:
                self._put(batch, day, positions, table, stats)
        ledger.forget_before(batch.first_offset)
        return stats

    def _put(
        self,
        batch: Batch,
        day: str,
        positions: list[int],
        table: pa.Table,
        stats: ArchiveStats,
    ) -> None:
        """``table``: the rows of ``positions`` (the batch's records of ``day``)."""
        first, last = batch.offsets[positions[0]], batch.offsets[positions[-1]]
        key = layout.archive_key(self.s3_prefix, self.stream, day, first, last)
        data = parquet.parquet_bytes(
            table,
            {
                "audit_logging.stream": self.stream,
                "audit_logging.first_offset": str(first),
                "audit_logging.last_offset": str(last),
            },
        )
        stats.files += 1
        self._check_fence()
        metadata = self.digests.vouch(key, data)
        if self.store.put_create_only(
            key, data, parquet.PARQUET_CONTENT_TYPE, metadata=metadata
        ):
            times = [str(batch.records[p]["timestamp"]) for p in positions]
            sha256 = hashlib.sha256(data).hexdigest()
            entry = digest_format.ObjectEntry(
                key, "archive", sha256, len(data), len(positions), first, last,
                min(times), max(times),
            )  # fmt: skip
            self.digests.add(entry)
            stats.written += len(positions)
            if self.on_uploaded is not None:
                self.on_uploaded(key)
        else:
            self.digests.add_existing([key])
            stats.already += len(positions)
            _log.warning(
                "%s already exists; not replaced (is another consumer writing to this prefix?)",
                key,
            )

    def write_dead_letters(self, letters: Sequence[dead_letter.DeadLetter]) -> None:
        ledger = self._ledger
        assert ledger is not None, "resume() first"
        done = ledger.dead_lettered(letters)
        self.digests.add_existing(set(done.values()))
        fresh = [letter for letter in letters if (letter.offset, letter.stage) not in done]
        if not fresh:
            return
        first, last = min(x.offset for x in fresh), max(x.offset for x in fresh)
        key = dead_letter.dead_letter_key(self.s3_prefix, self.stream, first, last)
        data = dead_letter.encode(self.stream, fresh)
        self._check_fence()
        metadata = self.digests.vouch(key, data)
        if self.store.put_create_only(key, data, "application/x-ndjson", metadata=metadata):
            self.digests.add(dead_letter_entry(key, data, first, last))
        else:
            self.digests.add_existing([key])

    def digest_due(self) -> bool:
        return self.digests.due()

    def seal_digest(self, committed: int) -> int | None:
        """The stream's digest up to ``committed``, unless cut off from the broker (another
        member may be continuing the chain); the offset it covers."""
        if self._fenced.is_set():
            return None
        return self.digests.seal(committed)

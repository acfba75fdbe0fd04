"""What a consumer did, counted, and the log lines that say so: one per batch, one at exit."""

from __future__ import annotations

import dataclasses
import logging
import time

from audit_logging.consumer.archiver import ArchiveStats
from audit_logging.consumer.batch import Batch

_log = logging.getLogger("audit_logging.consumer")


@dataclasses.dataclass
class Totals:
    """What this process did on one stream, summed over its batches; logged at exit."""

    batches: int = 0
    records: int = 0
    dead_letters: int = 0
    duplicates: int = 0
    already_archived: int = 0
    # The last offset archived: the one to store.
    committed: int | None = None

    def add(self, batch: Batch, stats: ArchiveStats, letters: int) -> None:
        """``batch`` is in both sinks: count it, and its last offset is the one to store."""
        self.batches += 1
        self.records += stats.written
        self.already_archived += stats.already
        self.dead_letters += letters
        self.duplicates += batch.duplicates
        self.committed = batch.last_offset

    def log(self, where: str, stored: int | None) -> None:
        _log.info(
            "stopped reading %s: %d batches, %d records archived, %d dead-lettered, "
            "%d duplicates dropped, %d already archived; offset %s stored%s",
            where,
            self.batches,
            self.records,
            self.dead_letters,
            self.duplicates,
            self.already_archived,
            stored,
            "" if stored == self.committed else f" (processed up to {self.committed})",
        )


def log_batch(batch: Batch, stats: ArchiveStats, letters: int, archive_seconds: float) -> None:
    # The age of the batch's newest message, not the lag: on a quiet stream a caught-up
    # consumer's last batch is old too. The lag is the metrics' (consumer/lag.py).
    age = max(0.0, time.time() - batch.last_broker_timestamp / 1000)
    _log.info(
        "batch %d: %d messages (offsets %d-%d): %d records archived in %d file(s)%s, "
        "%d dead-lettered, %d duplicates dropped; index %.3f s, archive %.3f s; "
        "its last message reached the broker %.1f s ago",
        batch.number,
        batch.messages,
        batch.first_offset,
        batch.last_offset,
        stats.written,
        stats.files,
        f" ({stats.already} already archived)" if stats.already else "",
        letters,
        batch.duplicates,
        batch.index_seconds,
        archive_seconds,
        age,
    )

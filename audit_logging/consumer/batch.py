"""A batch: consecutive stream messages that are archived together and acknowledged by one
offset store. Its records are indexed in chunks while it fills (for search latency); it is
archived once it is closed and every record is resolved in OpenSearch."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

from audit_logging.consumer.dead_letter import DeadLetter, Stage
from audit_logging.indexer import Refusal
from audit_logging.record import record_to_json


def _body(record: dict[str, Any]) -> bytes:
    try:
        return record_to_json(record)
    except Exception:  # noqa: BLE001 - a record that fails here is what is dead-lettered
        return repr(record).encode("utf-8", "replace")


@dataclasses.dataclass
class Batch:
    number: int
    opened_at: float
    first_offset: int = -1
    last_offset: int = -1
    messages: int = 0
    offsets: list[int] = dataclasses.field(default_factory=list)
    records: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    dead: list[DeadLetter] = dataclasses.field(default_factory=list)
    duplicates: int = 0
    # The broker's times (ms) of the first and last message's chunks.
    first_broker_timestamp: int = 0
    last_broker_timestamp: int = 0
    closed: bool = False
    # Indexing progress: records[:sent] were handed to the indexer, records[:resolved] are
    # indexed or refused. unsent_since is when the oldest unsent record arrived.
    sent: int = 0
    resolved: int = 0
    unsent_since: float | None = None
    index_seconds: float = 0.0
    refused: list[DeadLetter] = dataclasses.field(default_factory=list)
    # Positions in records that are not archived: resends and reused log_ids (write-once).
    not_archived: set[int] = dataclasses.field(default_factory=set)
    indexed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def _see(self, offset: int, broker_timestamp: int) -> None:
        if self.messages == 0:
            self.first_offset = offset
            self.first_broker_timestamp = broker_timestamp
        self.last_offset = offset
        self.messages += 1
        self.last_broker_timestamp = broker_timestamp

    def add_record(
        self, offset: int, record: dict[str, Any], broker_timestamp: int, now: float
    ) -> None:
        self._see(offset, broker_timestamp)
        self.offsets.append(offset)
        self.records.append(record)
        if self.unsent_since is None:
            self.unsent_since = now

    def add_dead(self, letter: DeadLetter) -> None:
        self._see(letter.offset, letter.broker_timestamp)
        self.dead.append(letter)

    def add_duplicate(self, offset: int, broker_timestamp: int) -> None:
        self._see(offset, broker_timestamp)
        self.duplicates += 1

    @property
    def unsent(self) -> int:
        return len(self.records) - self.sent

    def close(self) -> None:
        self.closed = True
        self._check_indexed()

    def take(self, limit: int, now: float) -> tuple[int, list[dict[str, Any]]]:
        """The next records to index (at most ``limit``), with the position of the first."""
        start = self.sent
        chunk = self.records[start : start + limit]
        self.sent += len(chunk)
        self.unsent_since = now if self.unsent else None
        return start, chunk

    def resolve(self, start: int, count: int, refusals: Sequence[Refusal], seconds: float) -> None:
        self.resolved += count
        self.index_seconds += seconds
        for refusal in refusals:
            position = start + refusal.position
            record = self.records[position]
            if refusal.code == "resend":
                self.not_archived.add(position)
                self.duplicates += 1
                continue
            if refusal.code == "duplicate_log_id":
                self.not_archived.add(position)
                stage: Stage = "dedup"
                reason = refusal.reason
            elif refusal.code == "index_refused":
                stage = "index"
                reason = f"OpenSearch refused it (HTTP {refusal.status}): {refusal.reason}"
            else:
                # Still archived, as a refused one: S3 is the source of truth.
                stage, reason = "index", refusal.reason
            self.refused.append(
                DeadLetter(
                    offset=self.offsets[position],
                    stage=stage,
                    reason=reason,
                    body=_body(record),
                    broker_timestamp=self.last_broker_timestamp,
                    log_id=record.get("log_id"),
                    code=refusal.code,
                )
            )
        self._check_indexed()

    def unarchivable(self, position: int, reason: str) -> DeadLetter:
        """The dead letter of a record whose Parquet row could not be built."""
        record = self.records[position]
        return DeadLetter(
            offset=self.offsets[position],
            stage="archive",
            reason=reason,
            body=_body(record),
            broker_timestamp=self.last_broker_timestamp,
            log_id=record.get("log_id"),
            code="archive_error",
        )

    def _check_indexed(self) -> None:
        if self.closed and self.resolved == len(self.records):
            self.indexed.set()

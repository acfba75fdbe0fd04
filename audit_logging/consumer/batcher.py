"""The batches of one stream: the one filling, the one being archived, when a batch closes,
and which records go to OpenSearch next.

Flow control: at most one batch is being archived while the next one fills. When that one
is full too, closing it waits, so the message callback waits, rstream grants the broker no
new credit (it grants one per chunk it hands to the callback) and at most ``credits`` chunks
wait in memory.

The flush rule, for search latency and for S3:
* A record is sent to OpenSearch ``index_delay`` (0.1 s) after it arrived at the latest,
  sooner when ``bulk_max_docs`` records are waiting or its batch closes, and right after the
  bulk request in flight, if any (so bulks grow with the load). With the template's 1 s
  refresh, a record is searchable about 1.2 s after it was logged at low load.
* A batch closes when it holds ``batch_size`` messages, or ``flush_interval`` seconds after
  its first message arrived. It is then archived (by the ``archive`` coroutine given).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from audit_logging.consumer.batch import Batch
from audit_logging.consumer.options import ConsumerOptions
from audit_logging.consumer.shutdown import Shutdown
from audit_logging.indexer import Indexer
from audit_logging.settings import Settings
from audit_logging.write_once import stream_position

_log = logging.getLogger("audit_logging.consumer")


@dataclasses.dataclass(eq=False)
class Batcher:
    """Closes batches (full, or ``flush_interval`` after their first record), feeds the
    indexer, and hands a closed batch to ``archive`` once the previous one is archived."""

    settings: Settings
    options: ConsumerOptions
    _: dataclasses.KW_ONLY
    stream: str
    indexer: Indexer
    archive: Callable[[Batch], Awaitable[None]]
    shutdown: Shutdown
    # Called with the number of records each bulk job put into OpenSearch (the metrics).
    on_indexed: Callable[[int], None] | None = None

    def __post_init__(self) -> None:
        self._numbers = 0
        self.filling = self._new_batch()
        self.archiving: Batch | None = None
        self.archive_task: asyncio.Task[None] | None = None
        self._wake_indexer = asyncio.Event()
        self._close_lock = asyncio.Lock()
        self._slot = asyncio.Semaphore(1)

    def _new_batch(self) -> Batch:
        self._numbers += 1
        return Batch(number=self._numbers, opened_at=time.monotonic())

    def added(self, batch: Batch) -> None:
        """A record was added to ``batch`` (the filling one)."""
        # The first waiting record starts the indexer's clock; a full bulk goes now.
        if batch.unsent == 1 or batch.unsent >= self.options.bulk_max_docs:
            self._wake_indexer.set()

    def full(self) -> bool:
        return self.filling.messages >= self.settings.batch_size

    def oldest_after(self, committed: int | None) -> float | None:
        """The broker time (Unix seconds) of the first message read past ``committed``, if
        one was read; None otherwise."""
        for batch in (self.archiving, self.filling):
            if batch is None or not batch.messages:
                continue
            if committed is None or batch.last_offset > committed:
                return batch.first_broker_timestamp / 1000
        return None

    def drop_filling(self) -> None:
        """Stop reading: the filling batch is dropped (read again by whoever is active)."""
        if self.filling.messages:
            _log.info(
                "dropping %d messages read but not archived: the active consumer reads them again",
                self.filling.messages,
            )
            self.filling = self._new_batch()

    async def settle(self) -> None:
        """Drop the filling batch and wait until no batch is being archived."""
        async with self._close_lock:
            self.drop_filling()
            await self.wait_archived()

    async def wait_archived(self) -> None:
        # Holding the slot means no batch is being archived.
        await self._slot.acquire()
        self._slot.release()

    async def close_filling(self) -> None:
        async with self._close_lock:
            batch = self.filling
            if batch.messages == 0 or self.shutdown.abandoned.is_set():
                return
            # Waits while the previous batch is archived: this is the back-pressure.
            await self._slot.acquire()
            if self.shutdown.abandoned.is_set() or batch is not self.filling:
                # Dropped by a step-down while we waited.
                self._slot.release()
                return
            batch.close()
            self.filling = self._new_batch()
            self.archiving = batch
            self.archive_task = asyncio.create_task(self._archived(batch), name="archive")
            self._wake_indexer.set()

    async def _archived(self, batch: Batch) -> None:
        try:
            await self.archive(batch)
        finally:
            self.archiving = None
            self._slot.release()

    async def timer_loop(self) -> None:
        while True:
            batch = self.filling
            due = batch.opened_at + self.settings.flush_interval
            now = time.monotonic()
            if not batch.messages:
                await asyncio.sleep(0.1)
            elif now >= due and not self._slot.locked():
                await self.close_filling()
            else:
                # While the previous batch is still being archived this one keeps filling.
                await asyncio.sleep(min(0.1, max(0.01, due - now)))

    async def index_loop(self) -> None:
        while True:
            job = self._next_index_job(time.monotonic())
            if job is None:
                self._wake_indexer.clear()
                timeout = self._index_wait(time.monotonic())
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake_indexer.wait(), timeout)
                continue
            batch, start, records = job
            began = time.monotonic()
            positions = [
                stream_position(self.stream, offset)
                for offset in batch.offsets[start : start + len(records)]
            ]
            refusals = await asyncio.to_thread(self.indexer.index, records, positions)
            took = time.monotonic() - began
            batch.resolve(start, len(records), refusals, took)
            if self.on_indexed is not None:
                self.on_indexed(len(records) - len(refusals))
            _log.debug("indexed %d records of batch %d in %.3f s", len(records), batch.number, took)

    def _next_index_job(self, now: float) -> tuple[Batch, int, list[dict[str, Any]]] | None:
        limit = self.options.bulk_max_docs
        closed = self.archiving
        if closed is not None and closed.unsent:
            return (closed, *closed.take(limit, now))
        batch = self.filling
        if not batch.unsent:
            return None
        waited = now - (batch.unsent_since or now)
        due = waited >= self.options.index_delay or self.shutdown.stopping.is_set()
        if batch.unsent >= limit or due:
            return (batch, *batch.take(limit, now))
        return None

    def _index_wait(self, now: float) -> float | None:
        batch = self.filling
        if not batch.unsent or batch.unsent_since is None:
            return None
        return max(0.0, batch.unsent_since + self.options.index_delay - now)

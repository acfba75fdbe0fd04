"""The consumer loop: stream → batches → OpenSearch and S3 → stored offset.

Everything network-bound and blocking (opensearch-py, boto3, pyarrow) runs in worker
threads through ``asyncio.to_thread``; the event loop only decodes messages, keeps the
batches and talks to RabbitMQ, so heartbeats flow while a large batch is written.

Flow control: at most one batch is being archived while the next one fills. When that one
is full too, the message callback waits, so rstream grants the broker no new credit (it
grants one per chunk it hands to the callback) and at most ``credits`` chunks wait in memory.

The flush rule, for search latency and for S3:
* A record is sent to OpenSearch ``index_delay`` (0.1 s) after it arrived at the latest,
  sooner when ``bulk_max_docs`` records are waiting or its batch closes, and right after the
  bulk request in flight, if any (so bulks grow with the load). With the template's 1 s
  refresh, a record is searchable about 1.2 s after it was logged at low load.
* A batch closes when it holds ``batch_size`` messages, or ``flush_interval`` seconds after
  its first message arrived. It is then archived (one Parquet file per record day) and, once
  S3 has it and OpenSearch has resolved every record, its last offset is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from opensearchpy.exceptions import TransportError

from audit_logging.consumer import dead_letter, retention, stream
from audit_logging.consumer.admit import Admission
from audit_logging.consumer.archiver import Archiver, ArchiveStats
from audit_logging.consumer.batch import Batch
from audit_logging.consumer.dedup import RecentIds
from audit_logging.consumer.groups import claim_archive
from audit_logging.consumer.indexer import Indexer
from audit_logging.consumer.options import ConsumerOptions
from audit_logging.consumer.retry import AbandonedError, Waiter, sleep_or_stop
from audit_logging.consumer.s3 import S3Store, make_s3_client
from audit_logging.consumer.session import Session
from audit_logging.consumer.write_once import stream_position
from audit_logging.errors import ConfigurationError
from audit_logging.search_index import install_template, make_client

if TYPE_CHECKING:
    from opensearchpy import OpenSearch
    from rstream import MessageContext

    from audit_logging.settings import Settings

_log = logging.getLogger("audit_logging.consumer")


@dataclasses.dataclass
class Totals:
    """What this process did; logged at exit and handy for tests and benchmarks."""

    batches: int = 0
    records: int = 0
    dead_letters: int = 0
    duplicates: int = 0
    already_archived: int = 0
    committed: int | None = None
    stored: int | None = None


class ConsumerService:
    def __init__(
        self,
        settings: Settings,
        options: ConsumerOptions,
        *,
        partition: str | None = None,
        retention: bool = True,
        subscribe_after: asyncio.Event | None = None,
        opensearch: OpenSearch | None = None,
        on_uploaded: Callable[[str], None] | None = None,
    ) -> None:
        """One stream's consumer: ``settings.rabbitmq_stream_name``, or ``partition``, one
        partition stream of that super stream. ``retention``: this one deletes expired
        indices (one per process is enough). ``subscribe_after``: the first subscription
        waits for it (the previous partition's :attr:`subscribed`). ``on_uploaded``: called
        with each archive key right after its upload (tests end the process there)."""
        self._settings = settings
        self._options = options
        self._super_stream = settings.rabbitmq_stream_name if partition else None
        self._stream = partition or settings.rabbitmq_stream_name
        self._where = (
            f"partition '{partition}' of super stream '{self._super_stream}'"
            if partition
            else f"stream '{self._stream}'"
        )
        self._retention = retention
        self._name = options.consumer_name
        self._batch_size = settings.batch_size
        self._flush_interval = settings.flush_interval
        # Threads check this between retries; set only when shutdown gives up.
        self._abandon = threading.Event()
        self._opensearch = opensearch or make_client(settings, timeout=60, max_retries=0)
        self._store = S3Store(
            make_s3_client(settings),
            settings.require("s3_bucket"),
            self._abandon,
            multipart_threshold=options.multipart_threshold,
            part_size=options.multipart_part_size,
        )
        self._indexer = Indexer(
            self._opensearch,
            settings.opensearch_index_prefix,
            self._abandon,
            max_docs=options.bulk_max_docs,
            max_bytes=options.bulk_max_bytes,
        )
        self._archiver = Archiver(self._store, settings.s3_prefix, self._stream, on_uploaded)
        self._recent = RecentIds(options.dedup_window)
        self._admission = Admission(self._recent, settings.opensearch_index_prefix)
        self.totals = Totals()
        self._batch_numbers = 0
        self._filling = self._new_batch()
        self._archiving: Batch | None = None
        self._archive_task: asyncio.Task[None] | None = None
        # The next offset we expect, and below which messages only refill the duplicate
        # memory (they were acknowledged before this process started).
        self._next_offset: int | None = None
        self._resume_at: int | None = None
        self._failure: BaseException | None = None
        self._exit_code = 0
        self._stopping = asyncio.Event()
        self._abandoned = asyncio.Event()
        self._session = Session(
            settings,
            options,
            self,
            stream_name=self._stream,
            super_stream=self._super_stream,
            where=self._where,
            stopping=self._stopping,
            abandon=self._abandon,
            subscribe_after=subscribe_after,
        )
        self._wake_indexer = asyncio.Event()
        self._close_lock = asyncio.Lock()
        self._archive_slot = asyncio.Semaphore(1)

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> int:
        """Consume until :meth:`stop` (the supervisor's SIGTERM/SIGINT); the exit code."""
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._prepare()
            if self._stopping.is_set():
                return self._exit_code
            tasks = [
                asyncio.create_task(self._guard(self._index_loop()), name="index"),
                asyncio.create_task(self._guard(self._timer_loop()), name="timer"),
            ]
            if self._retention:
                tasks.append(
                    asyncio.create_task(
                        self._guard(
                            retention.run_retention(
                                self._opensearch,
                                self._settings.opensearch_index_prefix,
                                self._settings.retention_months,
                                self._options.retention_interval,
                            )
                        ),
                        name="retention",
                    )
                )
            await self._session.run()
            await self._shutdown()
        except AbandonedError:
            self._exit_code = self._exit_code or 1
        except ConfigurationError as exc:
            _log.error("%s", exc)
            self._exit_code = 2
        finally:
            self._session.subscribed.set()  # never keep the next partition waiting
            self._abandon.set()
            if self._archive_task is not None:
                tasks.append(self._archive_task)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._session.close()
        self._log_totals()
        return self._exit_code

    def stop(self) -> None:
        """Stop reading, flush, store the offset and return from :meth:`run` (as SIGTERM)."""
        self._stopping.set()
        self._session.stop()

    def abandon(self) -> None:
        """Stop now, without flushing (a second SIGTERM): unacknowledged records are read
        again at the next start."""
        self._give_up(1)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def subscribed(self) -> asyncio.Event:
        """Set once the first subscription is made (or the service ended)."""
        return self._session.subscribed

    def _give_up(self, code: int) -> None:
        self._exit_code = self._exit_code or code
        self._abandon.set()
        self._abandoned.set()
        self.stop()

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
            _log.error("consumer failed; stopping without acknowledging", exc_info=exc)
        self._give_up(1)

    async def _guard(self, work: Awaitable[None]) -> None:
        try:
            await work
        except (AbandonedError, asyncio.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001 - any bug must stop the consumer, loudly
            self._fail(exc)

    async def _prepare(self) -> None:
        """Install the index template, waiting for OpenSearch (or a stop) as long as it takes."""
        prefix = self._settings.opensearch_index_prefix
        waiter = Waiter("OpenSearch (index template)", self._abandon)
        while not self._stopping.is_set():
            try:
                await asyncio.to_thread(install_template, self._opensearch, prefix)
            except TransportError as exc:
                status = exc.status_code if isinstance(exc.status_code, int) else 0
                if 400 <= status < 500 and status not in (408, 429):
                    # Refused, not unavailable (say the prefix overlaps another template's).
                    raise ConfigurationError(
                        "OPENSEARCH_INDEX_PREFIX",
                        f"OpenSearch refuses the index template for {prefix!r}: "
                        f"HTTP {status} {exc.error}: {exc.info}",
                    ) from None
                await sleep_or_stop(
                    asyncio.to_thread(waiter.failed, stream.describe_error(exc)), self._stopping)
            except Exception as exc:  # noqa: BLE001 - whatever the client raises, we wait
                await sleep_or_stop(
                    asyncio.to_thread(waiter.failed, stream.describe_error(exc)), self._stopping)
            else:
                waiter.succeeded()
                break
        if not self._stopping.is_set():
            await sleep_or_stop(asyncio.to_thread(self._store.check_bucket), self._stopping)
        if not self._stopping.is_set():
            # One marker for a super stream: its partitions are archived by one group.
            claim = functools.partial(
                claim_archive,
                self._store,
                self._settings.s3_prefix,
                self._settings.rabbitmq_stream_name,
                self._name,
            )
            await sleep_or_stop(asyncio.to_thread(claim), self._stopping)

    # -- what the session asks of us ---------------------------------------------------------

    def step_down(self) -> None:
        """Stop reading: the filling batch is dropped (read again by whoever is active)."""
        if self._filling.messages:
            _log.info(
                "dropping %d messages read but not archived: the active consumer reads them again",
                self._filling.messages,
            )
            self._filling = self._new_batch()

    async def settle(self) -> int | None:
        async with self._close_lock:
            self.step_down()
            await self._archive_slot.acquire()
            self._archive_slot.release()
        return self.totals.committed

    def resume(self, stored: int | None) -> None:
        self._next_offset = None
        # A fresh memory, refilled by the warm-up read, as at a restart: the one we have
        # holds the records we dropped, which would now pass for resent ones.
        self._recent = RecentIds(self._options.dedup_window)
        self._admission = Admission(self._recent, self._settings.opensearch_index_prefix)
        self._archiver.resume(stored)
        self.totals.committed = self.totals.stored = stored
        self._resume_at = None if stored is None else stored + 1
        if stored is None:
            _log.info(
                "consumer '%s' has no stored offset on stream '%s': starting from %s",
                self._name,
                self._stream,
                self._options.start,
            )
        else:
            _log.info(
                "consumer '%s' resumes stream '%s' at offset %d (stored offset %d)",
                self._name,
                self._stream,
                stored + 1,
                stored,
            )

    async def on_message(self, raw: bytes, context: MessageContext) -> None:
        # rstream drops the rest of a chunk when a callback raises: never let one escape.
        try:
            await self._take(raw, context.offset, context.timestamp)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - see above
            self._fail(exc)

    async def _take(self, raw: bytes, offset: int, broker_timestamp: int) -> None:
        if self._stopping.is_set() or not self._session.active:
            # Not part of any batch: read again at the next start or by the active consumer.
            return
        if self._next_offset is not None and offset < self._next_offset:
            return
        if self._resume_at is not None and offset < self._resume_at:
            # Acknowledged before this process started: only refills the duplicate memory.
            self._admission.warm(raw)
            return
        # Offsets may jump: the broker's offset-tracking entries take offsets of their own.
        self._next_offset = offset + 1
        batch = self._filling
        now = time.monotonic()
        if batch.messages == 0:
            batch.opened_at = now
        admitted = self._admission.admit(raw, offset, broker_timestamp)
        if isinstance(admitted, dead_letter.DeadLetter):
            batch.add_dead(admitted)
            _log.debug("offset %d dead-lettered: %s", offset, admitted.reason)
        elif admitted is None:
            batch.add_duplicate(offset, broker_timestamp)
        else:
            batch.add_record(offset, admitted, broker_timestamp, now)
            # The first waiting record starts the indexer's clock; a full bulk goes now.
            if batch.unsent == 1 or batch.unsent >= self._options.bulk_max_docs:
                self._wake_indexer.set()
        if batch.messages >= self._batch_size:
            await self._close_filling()

    # -- batches ----------------------------------------------------------------------------

    def _new_batch(self) -> Batch:
        self._batch_numbers += 1
        return Batch(number=self._batch_numbers, opened_at=time.monotonic())

    async def _close_filling(self) -> None:
        async with self._close_lock:
            batch = self._filling
            if batch.messages == 0 or self._abandoned.is_set():
                return
            # Waits while the previous batch is archived: this is the back-pressure.
            await self._archive_slot.acquire()
            if self._abandoned.is_set() or batch is not self._filling:
                # Dropped by a step-down while we waited.
                self._archive_slot.release()
                return
            batch.close()
            self._filling = self._new_batch()
            self._archiving = batch
            self._archive_task = asyncio.create_task(self._archive(batch), name="archive")
            self._wake_indexer.set()

    async def _timer_loop(self) -> None:
        while True:
            batch = self._filling
            due = batch.opened_at + self._flush_interval
            now = time.monotonic()
            if not batch.messages:
                await asyncio.sleep(0.1)
            elif now >= due and not self._archive_slot.locked():
                await self._close_filling()
            else:
                # While the previous batch is still being archived this one keeps filling.
                await asyncio.sleep(min(0.1, max(0.01, due - now)))

    async def _index_loop(self) -> None:
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
                stream_position(self._stream, offset)
                for offset in batch.offsets[start : start + len(records)]
            ]
            refusals = await asyncio.to_thread(self._indexer.index, records, positions)
            took = time.monotonic() - began
            batch.resolve(start, len(records), refusals, took)
            _log.debug("indexed %d records of batch %d in %.3f s", len(records), batch.number, took)

    def _next_index_job(self, now: float) -> tuple[Batch, int, list[dict[str, Any]]] | None:
        limit = self._options.bulk_max_docs
        closed = self._archiving
        if closed is not None and closed.unsent:
            return (closed, *closed.take(limit, now))
        batch = self._filling
        if not batch.unsent:
            return None
        waited = now - (batch.unsent_since or now)
        if batch.unsent >= limit or waited >= self._options.index_delay or self._stopping.is_set():
            return (batch, *batch.take(limit, now))
        return None

    def _index_wait(self, now: float) -> float | None:
        batch = self._filling
        if not batch.unsent or batch.unsent_since is None:
            return None
        return max(0.0, batch.unsent_since + self._options.index_delay - now)

    async def _archive(self, batch: Batch) -> None:
        try:
            began = time.monotonic()
            # The Parquet upload does not depend on OpenSearch, so it runs beside the tail
            # of the indexing; dead letters and the offset wait for both.
            parquet = asyncio.ensure_future(asyncio.to_thread(self._archiver.write_parquet, batch))
            try:
                await self._until(batch.indexed)
            finally:
                stats = await parquet
            letters = [*batch.dead, *batch.refused, *stats.letters]
            if letters:
                await asyncio.to_thread(self._archiver.write_dead_letters, letters)
            archive_seconds = time.monotonic() - began
            self.totals.batches += 1
            self.totals.records += stats.written
            self.totals.already_archived += stats.already
            self.totals.dead_letters += len(letters)
            self.totals.duplicates += batch.duplicates
            self.totals.committed = batch.last_offset
            await self._session.store(batch.last_offset)
            self.totals.stored = self._session.stored
            self._log_batch(batch, stats, letters, archive_seconds)
        except AbandonedError:
            _log.warning(
                "batch %d (offsets %d-%d) abandoned: it will be read again at the next start",
                batch.number,
                batch.first_offset,
                batch.last_offset,
            )
        except Exception as exc:  # noqa: BLE001 - see _guard
            self._fail(exc)
        finally:
            self._archiving = None
            self._archive_slot.release()

    async def _until(self, event: asyncio.Event) -> None:
        done = asyncio.ensure_future(event.wait())
        abandoned = asyncio.ensure_future(self._abandoned.wait())
        await asyncio.wait({done, abandoned}, return_when=asyncio.FIRST_COMPLETED)
        done.cancel()
        abandoned.cancel()
        if not event.is_set():
            raise AbandonedError("shutdown gave up")

    def _log_batch(
        self,
        batch: Batch,
        stats: ArchiveStats,
        letters: Sequence[dead_letter.DeadLetter],
        archive_seconds: float,
    ) -> None:
        lag = max(0.0, time.time() - batch.last_broker_timestamp / 1000)
        _log.info(
            "batch %d: %d messages (offsets %d-%d): %d records archived in %d file(s)%s, "
            "%d dead-lettered, %d duplicates dropped; index %.3f s, archive %.3f s; "
            "lag %.1f s behind the stream's end",
            batch.number,
            batch.messages,
            batch.first_offset,
            batch.last_offset,
            stats.written,
            stats.files,
            f" ({stats.already} already archived)" if stats.already else "",
            len(letters),
            batch.duplicates,
            batch.index_seconds,
            archive_seconds,
            lag,
        )

    # -- shutdown ----------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        deadline = self._options.shutdown_timeout
        give_up = asyncio.get_running_loop().call_later(deadline, self._deadline_passed)
        try:
            await self._close_filling()
            # Holding the slot means no batch is being archived any more.
            await self._archive_slot.acquire()
            self._archive_slot.release()
            committed = self.totals.committed
            if self._abandoned.is_set() or committed is None:
                return
            await self._session.store_final(committed, self._abandoned)
            self.totals.stored = self._session.stored
        finally:
            give_up.cancel()

    def _deadline_passed(self) -> None:
        _log.error(
            "shutdown did not finish within %.0f s (see the waits above); what was not "
            "acknowledged is read again at the next start, and S3 never gets it twice",
            self._options.shutdown_timeout,
        )
        self._give_up(1)

    def _log_totals(self) -> None:
        t = self.totals
        _log.info(
            "stopped reading %s: %d batches, %d records archived, %d dead-lettered, "
            "%d duplicates dropped, %d already archived; offset %s stored%s",
            self._where,
            t.batches,
            t.records,
            t.dead_letters,
            t.duplicates,
            t.already_archived,
            t.stored,
            "" if t.stored == t.committed else f" (processed up to {t.committed})",
        )

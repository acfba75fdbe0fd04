"""One stream's consumer: stream → batches → OpenSearch and S3 → stored offset.

Everything network-bound and blocking (opensearch-py, boto3, pyarrow) runs in worker
threads through ``asyncio.to_thread``; the event loop only decodes messages, keeps the
batches and talks to RabbitMQ, so heartbeats flow while a large batch is written.

The parts: :mod:`~audit_logging.consumer.session` (RabbitMQ, the group, offsets),
:mod:`~audit_logging.consumer.admit` (each message to a record or a dead letter),
:mod:`~audit_logging.consumer.batcher` (when batches close, what is indexed next),
:mod:`~audit_logging.indexer` (OpenSearch), :mod:`~audit_logging.consumer.archiver`
(S3). This module runs them, archives each closed batch (its offset is stored once S3 has it
and OpenSearch has resolved every record) and owns the shutdown deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from audit_logging.consumer import dead_letter, retention
from audit_logging.consumer.admit import Admission
from audit_logging.consumer.batch import Batch
from audit_logging.consumer.batcher import Batcher
from audit_logging.consumer.dedup import RecentIds
from audit_logging.consumer.metrics import NO_METRICS, Recorder
from audit_logging.consumer.options import ConsumerOptions
from audit_logging.consumer.session import Session
from audit_logging.consumer.shutdown import Shutdown, StreamPlace
from audit_logging.consumer.sinks import make_sinks
from audit_logging.consumer.startup import prepare_sinks
from audit_logging.consumer.totals import Totals, log_batch
from audit_logging.errors import ConfigurationError
from audit_logging.retry import AbandonedError

if TYPE_CHECKING:
    from opensearchpy import OpenSearch
    from rstream import MessageContext

    from audit_logging.archive.signing import Signer
    from audit_logging.settings import Settings

_log = logging.getLogger("audit_logging.consumer")


class ConsumerService:
    def __init__(
        self,
        settings: Settings,
        options: ConsumerOptions,
        *,
        partition: str | None = None,
        retention: bool = True,
        opensearch: OpenSearch | None = None,
        on_uploaded: Callable[[str], None] | None = None,
        signer: Signer | None = None,
        metrics: Recorder = NO_METRICS,
    ) -> None:
        """One stream's consumer: ``settings.rabbitmq_stream_name``, or ``partition``, one
        partition stream of that super stream. ``retention``: this one deletes expired
        indices (one per process is enough). ``on_uploaded``: called
        with each archive key right after its upload (tests end the process there).
        ``signer``: the key of ``AUDIT_LOG_SIGNING_KEY_FILE`` that signs the digests.
        ``metrics``: told what happens, batch by batch (see consumer/metrics.py)."""
        self._settings = settings
        self._options = options
        self._place = StreamPlace(
            partition or settings.rabbitmq_stream_name,
            settings.rabbitmq_stream_name if partition else None,
        )
        self._stream = self._place.stream
        self._where = self._place.where
        self._retention = retention
        self._name = options.consumer_name
        self._metrics = metrics
        # Messages taken into a batch; read by the metrics at each scrape.
        self.consumed = 0
        self._shutdown = Shutdown()
        sinks = make_sinks(
            settings, options, self._stream, self._shutdown.abandon, metrics,
            opensearch=opensearch, signer=signer, on_uploaded=on_uploaded,
        )  # fmt: skip
        self._opensearch, self._store = sinks.opensearch, sinks.store
        self._indexer, self._archiver = sinks.indexer, sinks.archiver
        self._recent = RecentIds(options.dedup_window)
        self._admission = Admission(self._recent, settings.opensearch_index_prefix)
        self.totals = Totals()
        # The next offset we expect, and below which messages only refill the duplicate
        # memory (they were acknowledged before this process started).
        self._next_offset: int | None = None
        self._resume_at: int | None = None
        self._failure: BaseException | None = None
        self._exit_code = 0
        self._session = Session(
            settings,
            options,
            self,
            place=self._place,
            shutdown=self._shutdown,
            on_retry=(lambda: metrics.retry("broker")) if metrics.enabled else None,
        )
        self._batches = Batcher(
            settings,
            options,
            stream=self._stream,
            indexer=self._indexer,
            archive=self._archive,
            shutdown=self._shutdown,
            on_indexed=self._indexed if metrics.enabled else None,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> int:
        """Consume until :meth:`stop` (the supervisor's SIGTERM/SIGINT); the exit code."""
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._prepare()
            if self._shutdown.stopping.is_set():
                return self._exit_code
            tasks = [
                asyncio.create_task(self._guard(self._batches.index_loop()), name="index"),
                asyncio.create_task(self._guard(self._batches.timer_loop()), name="timer"),
                asyncio.create_task(self._guard(self._digest_loop()), name="digests"),
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
            await self._finish()
        except AbandonedError:
            self._exit_code = self._exit_code or 1
        except ConfigurationError as exc:
            _log.error("%s", exc)
            self._exit_code = 2
        finally:
            self._shutdown.end_threads()
            if self._batches.archive_task is not None:
                tasks.append(self._batches.archive_task)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._session.close()
        self.totals.log(self._where, self._session.stored)
        return self._exit_code

    def stop(self) -> None:
        """Stop reading, flush, store the offset and return from :meth:`run` (as SIGTERM)."""
        self._shutdown.stopping.set()
        self._session.stop()

    def abandon(self) -> None:
        """Stop now, without flushing (a second SIGTERM): unacknowledged records are read
        again at the next start."""
        self._give_up(1)

    @property
    def stopping(self) -> bool:
        return self._shutdown.stopping.is_set()

    @property
    def active(self) -> bool:
        """The broker makes this the consumer group's active member on its stream."""
        return self._session.active and not self.stopping

    # -- what the metrics read (from the endpoint's thread: plain attribute reads) -----------

    @property
    def stream(self) -> str:
        return self._stream

    @property
    def connected(self) -> bool:
        """Subscribed on a live connection to the broker, active or standby."""
        return self._session.connected

    @property
    def stored(self) -> int | None:
        """The offset this process last stored (or read as the group's at activation)."""
        return self._session.stored

    @property
    def committed(self) -> int | None:
        """The last offset made durable in both sinks (stored right after)."""
        return self.totals.committed

    def oldest_unprocessed_timestamp(self) -> float | None:
        """The broker time (Unix seconds) of the first message read past :attr:`committed`,
        if this process has read one; None otherwise."""
        return self._batches.oldest_after(self.totals.committed)

    def _indexed(self, count: int) -> None:
        self._metrics.indexed(self._stream, count)

    def _give_up(self, code: int) -> None:
        self._exit_code = self._exit_code or code
        self._shutdown.give_up()
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
        await prepare_sinks(
            self._settings,
            self._opensearch,
            self._store,
            stream=self._stream,
            group=self._name,
            stopping=self._shutdown.stopping,
            abandon=self._shutdown.abandon,
        )

    # -- what the session asks of us ---------------------------------------------------------

    def step_down(self) -> None:
        self._batches.drop_filling()

    def fence(self) -> None:
        self._archiver.fence()

    async def settle(self) -> int | None:
        await self._batches.settle()
        return self.totals.committed

    async def seal(self) -> int | None:
        committed = self.totals.committed
        if committed is None:
            return None
        try:
            return await asyncio.to_thread(self._archiver.seal_digest, committed)
        except AbandonedError:
            return None
        except Exception as exc:  # noqa: BLE001 - the successor lists what we archived
            _log.warning("could not write the digest of %s: %s", self._where, exc)
            return None

    def resume(self, stored: int | None, digested: int | None = None) -> None:
        self._next_offset = None
        # A fresh memory, refilled by the warm-up read, as at a restart: the one we have
        # holds the records we dropped, which would now pass for resent ones.
        self._recent = RecentIds(self._options.dedup_window)
        self._admission = Admission(self._recent, self._settings.opensearch_index_prefix)
        self._archiver.resume(stored, digested)
        self.totals.committed = stored
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
        if self._shutdown.stopping.is_set() or not self._session.active:
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
        self.consumed += 1
        batch = self._batches.filling
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
            self._batches.added(batch)
        if self._batches.full():
            await self._batches.close_filling()

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
            digested = None
            if self._archiver.digest_due():
                # Before the offset: a crash in between leaves a digest ahead of the stored
                # offset, which the next active member continues after.
                digested = await asyncio.to_thread(self._archiver.seal_digest, batch.last_offset)
            archive_seconds = time.monotonic() - began
            self.totals.add(batch, stats, len(letters))
            await self._session.store(batch.last_offset)
            if digested is not None:
                await self._session.store_digested(digested)
            self._metrics.batch_done(self._stream, batch, stats, letters, time.monotonic() - began)
            log_batch(batch, stats, len(letters), archive_seconds)
        except AbandonedError:
            _log.warning(
                "batch %d (offsets %d-%d) abandoned: it will be read again at the next start",
                batch.number,
                batch.first_offset,
                batch.last_offset,
            )
        except Exception as exc:  # noqa: BLE001 - see _guard
            self._fail(exc)

    async def _digest_loop(self) -> None:
        """A stream that goes quiet still gets its digest once the interval has passed:
        otherwise what it archived last would wait for the next batch to be listed."""
        tick = min(max(self._settings.digest_interval / 4, 0.25), 30.0)
        while True:
            await asyncio.sleep(tick)
            committed = self.totals.committed
            if not self.active or committed is None or not self._archiver.digest_due():
                continue
            try:
                digested = await asyncio.to_thread(self._archiver.seal_digest, committed)
            except AbandonedError:
                return
            if digested is not None:
                await self._session.store_digested(digested)

    async def _until(self, event: asyncio.Event) -> None:
        done = asyncio.ensure_future(event.wait())
        abandoned = asyncio.ensure_future(self._shutdown.abandoned.wait())
        await asyncio.wait({done, abandoned}, return_when=asyncio.FIRST_COMPLETED)
        done.cancel()
        abandoned.cancel()
        if not event.is_set():
            raise AbandonedError("shutdown gave up")

    # -- shutdown ----------------------------------------------------------------------------

    async def _finish(self) -> None:
        """After the last read: flush, wait for the archive, store the offset."""
        deadline = self._options.shutdown_timeout
        give_up = asyncio.get_running_loop().call_later(deadline, self._deadline_passed)
        try:
            await self._batches.close_filling()
            await self._batches.wait_archived()
            committed = self.totals.committed
            if self._shutdown.abandoned.is_set() or committed is None:
                return
            digested = await self.seal()
            await self._session.store_final(committed, self._shutdown.abandoned)
            if digested is not None:
                await self._session.store_digested(digested)
        finally:
            give_up.cancel()

    def _deadline_passed(self) -> None:
        _log.error(
            "shutdown did not finish within %.0f s (see the waits above); what was not "
            "acknowledged is read again at the next start, and S3 never gets it twice",
            self._options.shutdown_timeout,
        )
        self._give_up(1)

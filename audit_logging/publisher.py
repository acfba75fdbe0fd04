"""The background publisher: one thread, its own asyncio loop, one rstream producer.

Modelled on sentry-python's ``worker.py``: the app's threads only append to a bounded
in-memory queue (:meth:`StreamPublisher.submit` never blocks and never touches the network);
one daemon thread turns queued items into record JSON, publishes them with confirms, and
keeps in a durable local spool whatever the broker has not confirmed.

The parts: this module is the façade and the worker (thread, loop, fork, close and reopen)
and knows nothing of rstream; :mod:`audit_logging._outbox` holds the queue, the spool, the
publishing ids and the counts; :mod:`audit_logging._link` sends and confirms;
:mod:`audit_logging._orphans` replays spools of processes that are gone;
:mod:`audit_logging._rstream_compat` holds the client's workarounds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Protocol

from audit_logging import _capture_stats
from audit_logging._capture_stats import ConfirmLatency, Gauges
from audit_logging._link import BACKOFF_MAX, Link
from audit_logging._loop import finish_tasks, new_loop
from audit_logging._orphans import replay_orphan
from audit_logging._outbox import Encode, Outbox, RecordRejected, Reporter
from audit_logging._spool import Spool
from audit_logging.settings import Settings

__all__ = ["Encode", "RecordRejected", "StreamPublisher", "Transport"]

logger = logging.getLogger("audit_logging.publisher")

REPORT_EVERY: Final = 10.0
STALL_AFTER: Final = 1.5  # seconds without a turn of the worker's loop: it is stuck
SPOOL_WITHIN: Final = 5.0  # seconds a close gives the worker to put what it holds on disk


class Transport(Protocol):
    """What a handler needs from whatever carries its records away."""

    def submit(self, item: Any) -> None: ...

    def flush(self, timeout: float) -> int: ...

    def close(self, timeout: float) -> int: ...

    def stats(self) -> dict[str, int]: ...


class StreamPublisher:
    """Publishes records to ``settings.rabbitmq_stream_name``; see the module docstring."""

    def __init__(self, settings: Settings, encode: Encode) -> None:
        self._settings = settings
        self._encode = encode
        self._report = Reporter(REPORT_EVERY)
        self._closed = False
        self._handovers = 0
        # The same objects for the publisher's whole life (a fork clears them): the process's
        # metrics read them, and keep them once the publisher is gone.
        self._counts: collections.Counter[str] = collections.Counter()
        self._latency = ConfirmLatency()
        self._init_process_state()
        _capture_stats.track(self, self._counts, self._latency)  # a scrape may read it now
        # A child forked from this process (gunicorn --preload) starts afresh: its own
        # queue, thread, spool and producer name. The parent keeps what it had.
        os.register_at_fork(after_in_child=_forget_in_child(weakref.ref(self)))
        # Started now, not at the first record: spools left by processes that are gone
        # are adopted and sent as capture starts, even by a process that logs nothing.
        self._start()

    def _init_process_state(self) -> None:
        self._pid = os.getpid()
        self._outbox = Outbox(
            self._encode, self._settings.queue_size, self._report, self._counts, self._latency
        )
        self._queue = self._outbox.queue  # the app's threads append here
        self._link: Link | None = None
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._sleeping = False
        self._stop_requested = False
        self._main_task: asyncio.Task[None] | None = None
        self._stopping = False  # the worker is spooling what is in memory: do not interrupt
        self._spooled = threading.Event()  # ... and it is on disk
        self._stopped = threading.Event()
        self._beat = 0  # heartbeats of the worker's loop: a flush sees whether it is stuck
        self._resume_after_stop = False

    def _reopen(self) -> None:
        with self._start_lock:
            if not self._closed:
                return
            thread = self._thread
            if (thread is not None and thread.is_alive() and self._pid == os.getpid()
                    and thread is not threading.current_thread()):
                return  # still stopping: it spools what it finds in the queue
            leftover = self._queue
            self._init_process_state()
            self._queue.extend(leftover)  # queued after the old worker's last look
            self._closed = False

    def _after_fork(self) -> None:
        if self._outbox.spool is not None:
            self._outbox.spool.forget_after_fork()
        self._counts.clear()  # counts are per process
        self._latency.reset()
        self._init_process_state()

    # -- the app's side -------------------------------------------------------------------

    def submit(self, item: Any) -> None:
        """Queue ``item`` for publishing; never blocks, never raises for a full queue."""
        if self._closed:
            # Closed, and now used again: logging.config.dictConfig closes every existing
            # handler (Django's setup does, after configure()); the handler stays attached,
            # so start over rather than lose what it is given.
            self._reopen()
            if self._closed:
                # The old worker is still stopping: it spools the queue, then starts a new
                # worker (which replays that spool); what it misses is carried over.
                self._queue.append(item)
                self._resume_after_stop = True
                return
        if self._thread is None:
            self._start()
        if len(self._queue) >= self._settings.queue_size:
            self._outbox.spill(item)
            return
        self._queue.append(item)
        if self._sleeping:
            self._sleeping = False
            loop, wake = self._loop, self._wake
            if loop is not None and wake is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closing
                    loop.call_soon_threadsafe(wake.set)

    def flush(self, timeout: float = 5.0) -> int:
        """Wait up to ``timeout`` s until everything is confirmed by the broker; return how
        many records are still not (kept in the spool when the broker is unreachable)."""
        if self._closed and self._queue:
            self._reopen()  # records given after close(): send them
            if self._thread is None:
                self._start()
        if self._closed and not self._resume_after_stop:
            return self.undelivered()  # stopped: nothing moves until it is used again
        deadline = time.monotonic() + max(0.0, timeout)
        beat, beat_seen = self._beat, time.monotonic()
        while True:
            before = self._handovers
            left = self.undelivered()
            settled = before == self._handovers and before % 2 == 0
            now = time.monotonic()
            if now >= deadline or (settled and (left == 0 or self._thread is None)):
                return left
            if self._beat != beat:
                beat, beat_seen = self._beat, now
            elif now - beat_seen > STALL_AFTER and _holds_logging_lock():
                # The caller (logging.config.dictConfig closing this handler) holds the
                # logging module's lock and the worker is not turning: it waits for that
                # lock, so waiting longer would stall the caller for nothing. Otherwise a
                # worker that does not turn is waiting on the broker (a connect, a send):
                # the whole timeout is given to it.
                return left
            self._poke()
            time.sleep(0.01)

    def close(self, timeout: float = 5.0) -> int:
        """Flush within ``timeout``, then have the worker put whatever it still holds (the
        queue, records sent and not confirmed) in the spool, fsynced, and stop; return how
        many records were not delivered: those now on disk, and any that could not be kept."""
        if self._closed:
            return 0
        lost_before = self._counts["lost"]
        self.flush(timeout)
        thread, spooled = self._thread, True
        if thread is not None and self._pid == os.getpid():
            self._stop_requested = True
            self._interrupt()
            # Called under the logging module's lock (logging.config.dictConfig closing this
            # handler), waiting is pointless when the worker needs that lock to go on: it
            # spools once the caller lets go of it.
            spooled = self._spooled.wait(0 if _holds_logging_lock() else SPOOL_WITHIN)
        self._closed = True
        return _report_close(self, spooled) + self._counts["lost"] - lost_before

    def _interrupt(self) -> None:
        """Stop the worker now, whatever it waits for (a hung broker can keep a connect or a
        send waiting for many seconds): it then spools what it holds."""
        loop = self._loop
        if loop is None:
            return

        def cancel() -> None:
            if self._main_task is not None and not self._stopping:
                self._main_task.cancel()

        with contextlib.suppress(RuntimeError):  # the loop is closed: the worker is done
            loop.call_soon_threadsafe(cancel)

    def undelivered(self) -> int:
        """Records not confirmed by the broker: queued, in the spools, or in flight."""
        link = self._link
        # Spools of processes that are gone, adopted by this one, count too.
        return self._outbox.waiting() + (len(link.direct) if link is not None else 0)

    def stats(self) -> dict[str, int]:
        """Counters: accepted (taken from the queue or spilled to the spool by the app's
        thread: records still queued are not in it yet), published (confirmed), replayed
        (confirmed from a spool), spooled, rejected (invalid), lost (could not be kept), and
        pending."""
        return {
            "accepted": self._counts["accepted"],
            "published": self._counts["published"],
            "replayed": self._counts["replayed"],
            "spooled": self._counts["spooled"],
            "rejected": self._counts["rejected"],
            "lost": self._counts["lost"],
            "pending": self.undelivered(),
        }

    @property
    def open(self) -> bool:
        """Whether this publisher is in use (not closed, and not a forked parent's)."""
        return not self._closed and self._pid == os.getpid()

    def gauges(self) -> Gauges:
        """Its state now, for a metrics scrape (any thread; cheap: a few lengths and one
        listing of each spool folder)."""
        outbox, link = self._outbox, self._link
        spools = [s for s in (outbox.spool, *outbox.orphans) if s is not None]
        return Gauges(
            queue_records=len(self._queue),
            spool_records=sum(s.unsent + s.overflow_count for s in spools),
            spool_bytes=_capture_stats.spool_bytes(s.path for s in spools),
            unconfirmed=link.in_flight() if link is not None else 0,
            connected=link is not None and link.connected,
        )

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            ready = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(ready,), name="audit-logging-publisher", daemon=True
            )
            self._thread.start()
            ready.wait(5.0)

    # -- the worker thread ----------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        loop = new_loop()
        self._loop = loop
        try:
            self._main_task = loop.create_task(self._main(ready))
            loop.run_until_complete(self._main_task)
        except Exception:
            logger.exception("Audit publisher stopped by an unexpected error")
        finally:
            self._spooled.set()
            try:
                finish_tasks(loop)
            finally:
                self._stopped.set()
                loop.close()
            if self._resume_after_stop and self._closed:
                # Used again while it was stopping (see submit): carry on in a new worker,
                # which adopts the spool this one leaves. Until it has, the counts are of
                # neither worker: a flush must not take them for "all delivered".
                self._handovers += 1  # odd while it happens
                try:
                    self._reopen()
                    self._start()
                finally:
                    self._handovers += 1

    async def _main(self, ready: threading.Event) -> None:
        self._wake = asyncio.Event()
        root = Path(self._settings.spool_dir)
        outbox = self._outbox
        try:
            outbox.spool = Spool.create(root)
            outbox.orphans = Spool.adopt_orphans(root)
        except OSError as exc:
            self._report(
                "spool",
                logging.ERROR,
                "AUDIT_LOG_SPOOL_DIR=%s cannot be used (%s): records that the broker "
                "cannot take now will be lost",
                root,
                exc,
            )
        ready.set()
        link = self._link = Link(
            self._settings,
            outbox,
            self._report,
            wake=self._wake.set,
            stop_requested=lambda: self._stop_requested,
        )
        self._heartbeat()
        try:
            with contextlib.suppress(asyncio.CancelledError):  # close(): stop at once
                await self._work(link, list(outbox.orphans))
        finally:
            self._stopping = True
            link.spool_everything()
            self._spooled.set()
            await link.close()

    def _heartbeat(self) -> None:
        # The loop turns even while a step waits on the broker: a flush tells that apart
        # from a thread that is blocked.
        self._beat += 1
        if self._loop is not None:
            self._loop.call_later(0.1, self._heartbeat)

    async def _work(self, link: Link, orphans: list[Spool]) -> None:
        orphans_due = 0.0
        while True:
            worked = await link.step()
            # Older records first, but only while nothing of ours is in flight, so our
            # own spool may take the queue meanwhile without breaking id order.
            due = time.monotonic() >= orphans_due
            if orphans and due and link.connected and not link.in_flight():
                for orphan in list(orphans):
                    if await replay_orphan(link, orphan):
                        orphans.remove(orphan)
                        self._outbox.orphans.remove(orphan)
                orphans_due = time.monotonic() + BACKOFF_MAX
            if self._stop_requested:
                break
            if worked:
                # Let the loop read the socket (confirms) between rounds of work.
                await asyncio.sleep(0)
            else:
                await self._sleep(link.idle_timeout(), link.can_take())

    async def _sleep(self, timeout: float, can_take: bool) -> None:
        """Wait for work: a record queued (if the link can take one now), a confirm, or the
        timeout."""
        assert self._wake is not None
        self._wake.clear()
        self._sleeping = True
        if (self._queue and can_take) or self._stop_requested:
            self._sleeping = False
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._sleeping = False


def _holds_logging_lock() -> bool:
    """Whether this thread holds the logging module's lock (logging.config does while it
    closes handlers); CPython's RLock says so through ``_is_owned``."""
    is_owned = getattr(getattr(logging, "_lock", None), "_is_owned", None)
    return bool(is_owned is not None and is_owned())


def _report_close(publisher: StreamPublisher, spooled: bool) -> int:
    """Say what a close leaves behind, counted where it is; return how many are on disk
    (or, if the worker has not spooled yet, how many it still holds)."""
    spool = publisher._outbox.spool
    on_disk = Spool.pending_on_disk(spool.path) if spool is not None else 0
    if spooled and on_disk:
        logger.warning(
            "%d audit records were not confirmed by the broker before shutdown; they are "
            "kept in the spool %s and sent by the next process using AUDIT_LOG_SPOOL_DIR",
            on_disk,
            spool.path if spool is not None else "",
        )
    link = publisher._link
    held = (
        len(publisher._queue)
        + publisher._outbox.in_hand
        + (len(link.direct) if link is not None else 0)
    )
    if not spooled and held:
        logger.warning(
            "%d audit records are not yet in the spool %s: the publisher thread did not "
            "answer in time; it writes them there when it does, they are lost if the "
            "process exits first",
            held,
            spool.path if spool is not None else "(no spool)",
        )
    if publisher._counts["lost"]:
        logger.error(
            "%d audit records could not be kept (see earlier errors)",
            publisher._counts["lost"],
        )
    return on_disk if spooled else max(on_disk, publisher.undelivered())


def _forget_in_child(ref: weakref.ref[StreamPublisher]) -> Callable[[], None]:
    def after_fork() -> None:
        publisher = ref()
        if publisher is None:
            return
        try:
            publisher._after_fork()
        except Exception:  # must not stop the other at-fork hooks
            logger.exception("Audit publisher could not reset itself in a forked child")

    return after_fork

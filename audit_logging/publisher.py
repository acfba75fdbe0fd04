"""The background publisher: one thread, its own asyncio loop, one rstream producer.

Modelled on sentry-python's ``worker.py``: the app's threads only append to a bounded
in-memory queue (:meth:`StreamPublisher.submit` never blocks and never touches the network);
one daemon thread turns queued items into record JSON, publishes them with confirms, and
keeps in a durable local spool whatever the broker has not confirmed.

Publishing ids: every record gets its id, from one counter, at the moment it leaves the
queue (sent, or written to the spool), and records are sent in id order under one producer
name per process (the spool folder's name). A resend after a reconnect, or a replay after
a crash, reuses the ids, so the broker drops what it already has (deduplication).

Invariant that keeps that order: records are sent straight from the queue only while the
spool is empty; while anything is spooled, new records go behind it in the spool and are
sent from there. When the connection breaks, records sent straight and not yet confirmed
are spooled first (the spool is empty then), so nothing is ever sent with a lower id than
one sent before it.
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

from audit_logging._link import BACKOFF_MAX, MAX_BATCH, MAX_BATCH_BYTES, Link
from audit_logging._loop import finish_tasks, new_loop
from audit_logging._spool import Position, Spool
from audit_logging.settings import Settings

logger = logging.getLogger("audit_logging.publisher")

REPORT_EVERY: Final = 10.0
YIELD_EVERY: Final = 8
HANDOFF: Final = 50e-6  # seconds the worker sleeps to hand the GIL to a logging app thread
HANDOFF_EVERY: Final = 0.001  # at most this much work between handoffs while the app logs
APP_ACTIVE_FOR: Final = 0.2  # how long after the queue last grew the app counts as logging
STALL_AFTER: Final = 1.5  # seconds without a turn of the worker's loop: it is stuck
SPOOL_WITHIN: Final = 5.0  # seconds a close gives the worker to put what it holds on disk

Encode = Callable[[Any], bytes]


class Transport(Protocol):
    """What a handler needs from whatever carries its records away."""

    def submit(self, item: Any) -> None: ...

    def flush(self, timeout: float) -> int: ...

    def close(self, timeout: float) -> int: ...

    def stats(self) -> dict[str, int]: ...


class RecordRejected(Exception):  # noqa: N818 - a signal between encode and the publisher
    """Raised by an encode function for an item that cannot become a record."""


class _Reporter:
    """Says what went wrong on the library's logger, at most every REPORT_EVERY seconds per
    kind, with how many times it happened meanwhile."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._suppressed: collections.Counter[str] = collections.Counter()

    def __call__(self, kind: str, level: int, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -REPORT_EVERY) < REPORT_EVERY:
            self._suppressed[kind] += 1
            return
        self._last[kind] = now
        again = self._suppressed.pop(kind, 0)
        suffix = f" (and {again} more times in the last {REPORT_EVERY:.0f} s)" if again else ""
        logger.log(level, message + suffix, *args)


class StreamPublisher:
    """Publishes records to ``settings.rabbitmq_stream_name``; see the module docstring."""

    def __init__(self, settings: Settings, encode: Encode) -> None:
        self._settings = settings
        self._encode = encode
        self._report = _Reporter()
        self._closed = False
        self._handovers = 0
        self._init_process_state()
        # A child forked from this process (gunicorn --preload) starts afresh: its own
        # queue, thread, spool and producer name. The parent keeps what it had.
        os.register_at_fork(after_in_child=_forget_in_child(weakref.ref(self)))
        # Started now, not at the first record: spools left by processes that are gone
        # are adopted and sent as capture starts, even by a process that logs nothing.
        self._start()

    def _init_process_state(self, *, keep_counts: bool = False) -> None:
        self._pid = os.getpid()
        self._queue: collections.deque[Any] = collections.deque()
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
        self._spool: Spool | None = None
        self._orphans: list[Spool] = []
        self._in_hand = 0
        # Sent and not yet confirmed: straight from the queue (id -> body), and from the
        # spool (id -> where it ends there; _spool_sent keeps their order for commits).
        self._direct: dict[int, bytes] = {}
        self._replaying: dict[int, Position] = {}
        self._spool_sent: collections.deque[tuple[int, Position]] = collections.deque()
        self._next_id = 1
        self._beat = 0  # heartbeats of the worker's loop: a flush sees whether it is stuck
        self._seen_queue_len = 0  # the queue's length when the worker last looked
        self._app_active_until = 0.0
        self._last_handoff = 0.0
        self._resume_after_stop = False
        if not keep_counts:
            self._counts: collections.Counter[str] = collections.Counter()

    def _reopen(self) -> None:
        with self._start_lock:
            if not self._closed:
                return
            thread = self._thread
            if (thread is not None and thread.is_alive() and self._pid == os.getpid()
                    and thread is not threading.current_thread()):
                return  # still stopping: it spools what it finds in the queue
            leftover = self._queue
            self._init_process_state(keep_counts=True)
            self._queue.extend(leftover)  # queued after the old worker's last look
            self._closed = False

    def _after_fork(self) -> None:
        if self._spool is not None:
            self._spool.forget_after_fork()
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
            self._spill(item)
            return
        self._queue.append(item)
        if self._sleeping:
            self._sleeping = False
            loop, wake = self._loop, self._wake
            if loop is not None and wake is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closing
                    loop.call_soon_threadsafe(wake.set)

    def _spill(self, item: Any) -> None:
        # The queue is full (the app logs faster than records leave): rather than lose the
        # record or block, encode it here and append it to the spool's overflow file.
        body = self._encode_or_count(item)
        if body is None:
            return
        spool = self._spool
        try:
            if spool is None:
                raise OSError("no usable spool folder")
            spool.append_overflow(body)
        except (OSError, ValueError) as exc:
            self._counts["lost"] += 1
            self._report(
                "overflow-lost",
                logging.ERROR,
                "Audit record lost: the queue is full and the spool cannot be written (%s)",
                exc,
            )
            return
        self._report(
            "full",
            logging.WARNING,
            "Audit queue full (AUDIT_LOG_QUEUE_SIZE=%d): records go to the spool",
            self._settings.queue_size,
        )

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
        spool = self._spool
        spooled = spool.unsent + spool.overflow_count if spool is not None else 0
        # Spools of processes that are gone, adopted by this one: also waiting for the broker.
        spooled += sum(orphan.unsent + orphan.overflow_count for orphan in self._orphans)
        return (
            len(self._queue)
            + self._in_hand
            + len(self._direct)
            + spooled
        )

    def stats(self) -> dict[str, int]:
        """Counters: submitted is not kept (it would cost the app's thread); published,
        spooled, rejected (invalid), lost (could not be kept), and pending."""
        return {
            "published": self._counts["published"],
            "spooled": self._counts["spooled"],
            "rejected": self._counts["rejected"],
            "lost": self._counts["lost"],
            "pending": self.undelivered(),
        }

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
        try:
            self._spool = Spool.create(root)
            orphans = self._orphans = Spool.adopt_orphans(root)
        except OSError as exc:
            self._report(
                "spool",
                logging.ERROR,
                "AUDIT_LOG_SPOOL_DIR=%s cannot be used (%s): records that the broker "
                "cannot take now will be lost",
                root,
                exc,
            )
            orphans = []
        ready.set()
        link = Link(self)
        self._heartbeat()
        try:
            with contextlib.suppress(asyncio.CancelledError):  # close(): stop at once
                await self._work(link, orphans)
        finally:
            self._stopping = True
            await link.stop(orphans)

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
                    if await link.replay_orphan(orphan):
                        orphans.remove(orphan)
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

    # Helpers used by the link (same thread).

    def _take(self) -> list[bytes]:
        """Up to a batch of queued items, encoded (rejected ones counted and left out)."""
        queue = self._queue
        self._in_hand = count = min(len(queue), MAX_BATCH)
        bodies: list[bytes] = []
        size = 0
        for index in range(count):
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                self._yield_to_app()
            item = queue.popleft()
            self._seen_queue_len -= 1
            body = self._encode_or_count(item)
            if body is None:
                continue
            bodies.append(body)
            size += len(body)
            if size >= MAX_BATCH_BYTES:
                # Give back what did not fit: it stays first in line.
                self._in_hand = len(bodies)
                break
        return bodies

    def _encode_or_count(self, item: Any) -> bytes | None:
        """The record's JSON, or None (counted as rejected) if it cannot become a record."""
        try:
            return self._encode(item)
        except RecordRejected:
            pass
        except Exception:
            logger.exception("Audit record could not be encoded")
        self._counts["rejected"] += 1
        return None

    def _yield_to_app(self) -> None:
        """If the app's threads are logging right now (the queue grew since the last look),
        hand them the GIL for a moment. Otherwise one waiting for it would wait up to a
        whole switch interval (5 ms) while this thread encodes: letting go of the GIL
        without sleeping (sched_yield, sleep(0)) is not enough, this thread takes it back
        before the waiting one wakes up."""
        now = time.monotonic()
        if len(self._queue) > self._seen_queue_len:
            # A thread blocked on the GIL cannot append, so "the queue grows" is only seen
            # between waits: take it as "the app is logging" for a while.
            self._app_active_until = now + APP_ACTIVE_FOR
        if now < self._app_active_until and now - self._last_handoff >= HANDOFF_EVERY:
            time.sleep(HANDOFF)
            self._last_handoff = time.monotonic()
        self._seen_queue_len = len(self._queue)

    def _assign_ids(self, bodies: list[bytes]) -> list[tuple[int, bytes]]:
        first = self._next_id
        self._next_id += len(bodies)
        return list(zip(range(first, first + len(bodies)), bodies, strict=True))

    def _to_spool(self, records: list[tuple[int, bytes]]) -> None:
        spool = self._spool
        if not records:
            return
        if spool is None:
            self._counts["lost"] += len(records)
            self._report(
                "lost",
                logging.ERROR,
                "Audit records lost: the broker is unreachable and there is no spool",
            )
            return
        try:
            spool.append(records)
            spool.sync()
        except OSError as exc:
            self._counts["lost"] += len(records)
            self._report(
                "spool-write",
                logging.ERROR,
                "Audit records lost: the spool %s cannot be written (%s)",
                spool.path,
                exc,
            )
            return
        self._counts["spooled"] += len(records)

    def _absorb_overflow(self) -> None:
        spool = self._spool
        if spool is None or not spool.overflow_count:
            return
        try:
            moved = spool.drain_overflow(self._assign_ids)
        except OSError as exc:
            self._report(
                "spool-write", logging.ERROR, "The spool %s cannot be written (%s)", spool.path, exc
            )
            return
        self._counts["spooled"] += moved

    def _has_overflow(self) -> bool:
        return self._spool is not None and self._spool.overflow_count > 0

    def _relieve_queue(self) -> None:
        """While busy elsewhere (an orphan's replay), keep the queue from filling up."""
        if len(self._queue) > self._settings.queue_size // 2:
            self._to_spool(self._assign_ids(self._take()))
            self._in_hand = 0



def _holds_logging_lock() -> bool:
    """Whether this thread holds the logging module's lock (logging.config does while it
    closes handlers); CPython's RLock says so through ``_is_owned``."""
    is_owned = getattr(getattr(logging, "_lock", None), "_is_owned", None)
    return bool(is_owned is not None and is_owned())


def _report_close(publisher: StreamPublisher, spooled: bool) -> int:
    """Say what a close leaves behind, counted where it is; return how many are on disk
    (or, if the worker has not spooled yet, how many it still holds)."""
    spool = publisher._spool
    on_disk = Spool.pending_on_disk(spool.path) if spool is not None else 0
    if spooled and on_disk:
        logger.warning(
            "%d audit records were not confirmed by the broker before shutdown; they are "
            "kept in the spool %s and sent by the next process using AUDIT_LOG_SPOOL_DIR",
            on_disk,
            spool.path if spool is not None else "",
        )
    held = len(publisher._queue) + publisher._in_hand + len(publisher._direct)
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

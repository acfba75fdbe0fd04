"""What the publisher holds for the broker: the app's queue, the spool, publishing ids and the
counts. The worker thread and its link take records from here and put back what the broker
could not take; the app's threads only append to the queue (or spill to the spool when it
is full).

Publishing ids: every record gets its id, from one counter, at the moment it leaves the
queue (sent, or written to the spool), so ids follow the order records were logged in.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

from audit_logging._capture_stats import ConfirmLatency, count_rejected
from audit_logging._spool import Spool

logger = logging.getLogger("audit_logging.publisher")

MAX_BATCH: Final = 250  # per publish frame; rstream encodes a frame without letting go of the GIL
MAX_BATCH_BYTES: Final = 900 * 1024  # under rstream's default 1 MiB frame
YIELD_EVERY: Final = 8
HANDOFF: Final = 50e-6  # seconds the worker sleeps to hand the GIL to a logging app thread
HANDOFF_EVERY: Final = 0.001  # at most this much work between handoffs while the app logs
APP_ACTIVE_FOR: Final = 0.2  # how long after the queue last grew the app counts as logging

Encode = Callable[[Any], bytes]


class Report(Protocol):
    def __call__(self, kind: str, level: int, message: str, *args: object) -> None: ...


class Reporter:
    """Says what went wrong on the library's logger, at most every ``every`` seconds per
    kind, with how many times it happened meanwhile."""

    def __init__(self, every: float) -> None:
        self._every = every
        self._last: dict[str, float] = {}
        self._suppressed: collections.Counter[str] = collections.Counter()

    def __call__(self, kind: str, level: int, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -self._every) < self._every:
            self._suppressed[kind] += 1
            return
        self._last[kind] = now
        again = self._suppressed.pop(kind, 0)
        suffix = f" (and {again} more times in the last {self._every:.0f} s)" if again else ""
        logger.log(level, message + suffix, *args)


class RecordRejected(Exception):  # noqa: N818 - a signal between encode and the publisher
    """Raised by an encode function for an item that cannot become a record; ``reason`` is
    one of ``REJECT_REASONS`` (counted by it)."""

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class Outbox:
    def __init__(
        self,
        encode: Encode,
        queue_size: int,
        report: Report,
        counts: collections.Counter[str],
        latency: ConfirmLatency | None = None,
    ) -> None:
        self.queue: collections.deque[Any] = collections.deque()
        self.queue_size = queue_size
        self.encode = encode
        self.report = report
        self.counts = counts
        self.latency = latency if latency is not None else ConfirmLatency()
        # Taken from the queue, not yet sent nor spooled.
        self.in_hand = 0
        self.spool: Spool | None = None
        # Spools of processes that are gone, adopted by this one.
        self.orphans: list[Spool] = []
        self._next_id = 1
        self._seen_queue_len = 0  # the queue's length when the worker last looked
        self._app_active_until = 0.0
        self._last_handoff = 0.0

    def waiting(self) -> int:
        """Records not yet sent: queued, in hand, and in the spools."""
        spooled = sum(s.unsent + s.overflow_count for s in (self.spool, *self.orphans) if s)
        return len(self.queue) + self.in_hand + spooled

    def spooling(self) -> bool:
        """Whether records wait in our spool (new ones must then go behind them)."""
        spool = self.spool
        return spool is not None and bool(spool.unsent or spool.overflow_count)

    def take(self, frames: int = 1) -> list[bytes]:
        """Up to ``frames`` publish frames of queued items, encoded (rejected ones counted and
        left out). Several frames when records are spread over partitions, so that each
        partition's frame is still full."""
        queue = self.queue
        self.in_hand = count = min(len(queue), MAX_BATCH * frames)
        bodies: list[bytes] = []
        size = 0
        taken = 0
        for index in range(count):
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                self.yield_to_app()
            item = queue.popleft()
            taken += 1
            self._seen_queue_len -= 1
            body = self.encode_or_count(item)
            if body is None:
                continue
            bodies.append(body)
            size += len(body)
            if size >= MAX_BATCH_BYTES * frames:
                # Give back what did not fit: it stays first in line.
                self.in_hand = len(bodies)
                break
        # Counted here, once per batch, rather than by the app's thread at each call.
        self.counts["accepted"] += taken
        return bodies

    def encode_or_count(self, item: Any) -> bytes | None:
        """The record's JSON, or None (counted as rejected) if it cannot become a record."""
        try:
            return self.encode(item)
        except RecordRejected as exc:
            count_rejected(exc.reason)
        except Exception:
            logger.exception("Audit record could not be encoded")
            count_rejected("encode_error")
        self.counts["rejected"] += 1
        return None

    def yield_to_app(self) -> None:
        """If the app's threads are logging right now (the queue grew since the last look),
        hand them the GIL for a moment. Otherwise one waiting for it would wait up to a
        whole switch interval (5 ms) while this thread encodes: letting go of the GIL
        without sleeping (sched_yield, sleep(0)) is not enough, this thread takes it back
        before the waiting one wakes up."""
        now = time.monotonic()
        if len(self.queue) > self._seen_queue_len:
            # A thread blocked on the GIL cannot append, so "the queue grows" is only seen
            # between waits: take it as "the app is logging" for a while.
            self._app_active_until = now + APP_ACTIVE_FOR
        if now < self._app_active_until and now - self._last_handoff >= HANDOFF_EVERY:
            time.sleep(HANDOFF)
            self._last_handoff = time.monotonic()
        self._seen_queue_len = len(self.queue)

    def assign_ids(self, bodies: list[bytes]) -> list[tuple[int, bytes]]:
        first = self._next_id
        self._next_id += len(bodies)
        return list(zip(range(first, first + len(bodies)), bodies, strict=True))

    def take_to_spool(self) -> bool:
        """Move a batch from the queue to the spool (the broker cannot take it now)."""
        bodies = self.take()
        self.to_spool(self.assign_ids(bodies))
        self.in_hand = 0
        return bool(bodies)

    def to_spool(self, records: list[tuple[int, bytes]]) -> None:
        spool = self.spool
        if not records:
            return
        if spool is None:
            self._lose(records, "lost", "the broker is unreachable and there is no spool")
            return
        try:
            spool.append(records)
            spool.sync()
        except OSError as exc:
            why = "the spool %s cannot be written (%s)"
            self._lose(records, "spool-write", why, spool.path, exc)
            return
        self.counts["spooled"] += len(records)

    def _lose(self, records: list[tuple[int, bytes]], key: str, why: str, *args: object) -> None:
        # Counted and said out loud: the one way a record is lost is never a silent one.
        self.counts["lost"] += len(records)
        self.report(key, logging.ERROR, "Audit records lost: " + why, *args)

    def absorb_overflow(self) -> None:
        spool = self.spool
        if spool is None or not spool.overflow_count:
            return
        try:
            moved = spool.drain_overflow(self.assign_ids)
        except OSError as exc:
            self.report(
                "spool-write", logging.ERROR, "The spool %s cannot be written (%s)", spool.path, exc
            )
            return
        self.counts["spooled"] += moved

    def relieve_queue(self) -> None:
        """While busy elsewhere (an orphan's replay), keep the queue from filling up."""
        if len(self.queue) > self.queue_size // 2:
            self.take_to_spool()

    def spill(self, item: Any) -> None:
        """The queue is full (the app logs faster than records leave): rather than lose the
        record or block, encode it here and append it to the spool's overflow file."""
        self.counts["accepted"] += 1
        body = self.encode_or_count(item)
        if body is None:
            return
        spool = self.spool
        try:
            if spool is None:
                raise OSError("no usable spool folder")
            spool.append_overflow(body)
        except (OSError, ValueError) as exc:
            self.counts["lost"] += 1
            self.report(
                "overflow-lost",
                logging.ERROR,
                "Audit record lost: the queue is full and the spool cannot be written (%s)",
                exc,
            )
            return
        self.report(
            "full",
            logging.WARNING,
            "Audit queue full (AUDIT_LOG_QUEUE_SIZE=%d): records go to the spool",
            self.queue_size,
        )

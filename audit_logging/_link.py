"""The publisher's link to the broker: one rstream producer, what is in flight on it, the
confirms and reconnecting. It runs on the publisher's worker thread and loop only.

Invariant that keeps publishing ids in order: records are sent straight from the queue only
while the spool is empty; while anything is spooled, new records go behind it in the spool
and are sent from there. When the connection breaks, records sent straight and not yet
confirmed are spooled first (the spool is empty then), so nothing is ever sent with a lower
id than one sent before it, and a resend is dropped by the broker's deduplication.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any, Final

from rstream import RawMessage

from audit_logging._amqp import encode_message
from audit_logging._outbox import MAX_BATCH, MAX_BATCH_BYTES, Outbox, Report
from audit_logging._rstream_compat import close_quietly, new_producer
from audit_logging._spool import Position
from audit_logging.errors import ConfigurationError, describe_error
from audit_logging.partitions import ensure_layout, route
from audit_logging.settings import Settings
from audit_logging.stream_arguments import wanted_arguments

logger = logging.getLogger("audit_logging.publisher")

MAX_IN_FLIGHT: Final = 20_000
CONFIRM_TIMEOUT: Final = 10.0
CONNECT_TIMEOUT: Final = 10.0
BACKOFF_FIRST: Final = 0.2
BACKOFF_MAX: Final = 5.0


@dataclasses.dataclass(eq=False)
class Link:
    """The worker's connection to the broker and what is in flight on it."""

    s: Settings
    outbox: Outbox
    report: Report
    _: dataclasses.KW_ONLY
    wake: Callable[[], None]
    stop_requested: Callable[[], bool]

    def __post_init__(self) -> None:
        settings = self.s
        self.producer: Any = None
        self.broken = False
        self.next_connect = 0.0
        self.backoff = BACKOFF_FIRST
        self.last_progress = time.monotonic()
        self.down_since: float | None = None
        # Where records go: the stream, or a super stream's partitions (checked at connect).
        self.streams = [settings.rabbitmq_stream_name]
        # Sent and not yet confirmed: straight from the queue (id -> body), and from the
        # spool (id -> where it ends there; spool_sent keeps their order for commits).
        self.direct: dict[int, bytes] = {}
        self.replaying: dict[int, Position] = {}
        self.spool_sent: collections.deque[tuple[int, Position]] = collections.deque()
        # Spool records confirmed and not yet committed. A commit stops at the first record
        # still unconfirmed, and a super stream's partitions confirm out of order, so a
        # rewind (a lost connection) resends some confirmed ones: the broker drops them as
        # duplicates and confirms them again, which must not count them as published twice.
        self.confirmed_from_spool: set[int] = set()
        # Producers still starting or replaying an orphan: a stop closes them after it has
        # spooled (closing waits on the broker, which may not answer).
        self.opening: dict[int, Any] = {}  # by id(): a Producer is not hashable
        # For the confirm latency: the last publishing id of each frame sent -> when it was
        # sent and how many records the frame held. Its confirm times the whole frame, so
        # the histogram costs one lookup per confirm and one observation per frame.
        self.frames_sent: dict[int, tuple[float, int]] = {}

    @property
    def connected(self) -> bool:
        return self.producer is not None and not self.broken

    def in_flight(self) -> int:
        return len(self.direct) + len(self.replaying)

    def can_take(self) -> bool:
        """Whether a queued record could be sent (or spooled) right now."""
        if not self.connected:
            return True  # it goes to the spool
        if self.in_flight() >= MAX_IN_FLIGHT:
            return False
        return not (self.outbox.spooling() and self.direct)

    def idle_timeout(self) -> float:
        if self.in_flight():
            return 0.05
        if not self.connected:
            return max(0.01, min(0.5, self.next_connect - time.monotonic()))
        return 1.0

    async def step(self) -> bool:  # noqa: PLR0911 - one exit per state of the link
        """One round of work; False when there was nothing to do."""
        outbox = self.outbox
        outbox.yield_to_app()
        if self.broken:
            await self.disconnect("the connection was lost")
        if self.producer is None and not self.stop_requested() and (
            time.monotonic() >= self.next_connect
        ):
            # Connect before spooling: when the broker is there, records go straight to it.
            connected = await self.connect()
            outbox.yield_to_app()
            if connected:
                return True
        if self.producer is None:
            moved = outbox.take_to_spool()
            outbox.absorb_overflow()
            return moved
        if self.in_flight() and time.monotonic() - self.last_progress > CONFIRM_TIMEOUT:
            await self.disconnect(f"no confirm within {CONFIRM_TIMEOUT:.0f} s")
            return True
        self.commit_spool()
        if self.in_flight() >= MAX_IN_FLIGHT:
            return False
        if outbox.spooling():
            if not self.direct:
                # Spool mode: what is queued goes behind the spool, and is sent from it.
                outbox.absorb_overflow()
                outbox.take_to_spool()
            return await self.send_from_spool()
        bodies = outbox.take(len(self.streams))
        if not bodies:
            outbox.in_hand = 0
            return False
        records = outbox.assign_ids(bodies)
        # In flight before no longer in hand: a flush on another thread never sees them
        # nowhere.
        self.direct.update(records)
        outbox.in_hand = 0
        await self.send(records)
        return True

    async def send_from_spool(self) -> bool:
        spool = self.outbox.spool
        assert spool is not None
        room = MAX_IN_FLIGHT - self.in_flight()
        frames = len(self.streams)
        entries = spool.read(min(MAX_BATCH * frames, room), MAX_BATCH_BYTES * frames)
        if not entries:
            return False
        for entry in entries:
            self.replaying[entry.publishing_id] = entry.end
            self.spool_sent.append((entry.publishing_id, entry.end))
        await self.send([(e.publishing_id, e.body) for e in entries])
        return True

    def producer_name(self) -> str | None:
        spool = self.outbox.spool
        return spool.producer_name if spool is not None else None

    async def send_routed(
        self,
        producer: Any,
        records: list[tuple[int, bytes]],
        on_confirm: Any,
        publisher_name: str | None = None,
        *,
        timed: bool = False,
    ) -> None:
        """Each record to its stream (its partition's, by log_id), in the order given: the
        ids are increasing on every partition, as deduplication needs. With ``timed``, each
        frame's confirm latency is recorded."""
        for stream, group in route(records, self.streams):
            for frame in frames(group):
                if timed:
                    # Before sending: the confirm may arrive while send_batch awaits.
                    self.frames_sent[frame[-1][0]] = (time.monotonic(), len(frame))
                await producer.send_batch(
                    stream,
                    messages(frame),
                    publisher_name=publisher_name or self.producer_name(),
                    on_publish_confirm=on_confirm,
                )

    async def send(self, records: list[tuple[int, bytes]]) -> None:
        if self.in_flight() == len(records):
            self.last_progress = time.monotonic()  # nothing older is waiting
        try:
            await asyncio.wait_for(
                self.send_routed(self.producer, records, self.on_confirm, timed=True),
                CONFIRM_TIMEOUT,
            )
        except Exception as exc:  # noqa: BLE001 - any failure means: resend after reconnect
            self.broken = True
            self.report(
                "send",
                logging.WARNING,
                "Audit publish to RabbitMQ failed (%s); will resend",
                describe_error(exc),
            )

    def on_confirm(self, status: Any) -> None:
        pid = status.message_id
        if pid not in self.direct and pid not in self.replaying:
            return  # from a connection already given up, or a duplicate confirm
        if status.is_confirmed:
            counts = self.outbox.counts
            if self.direct.pop(pid, None) is None:
                del self.replaying[pid]
                if pid not in self.confirmed_from_spool:
                    self.confirmed_from_spool.add(pid)
                    counts["published"] += 1
                    counts["replayed"] += 1
            else:
                counts["published"] += 1
            self.last_progress = now = time.monotonic()
            sent = self.frames_sent.pop(pid, None) if self.frames_sent else None
            if sent is not None:
                self.outbox.latency.observe(now - sent[0], sent[1])
        else:
            # Not stored (connection lost or an error): everything in flight is resent.
            self.broken = True
        self.wake()

    def commit_spool(self) -> None:
        sent = self.spool_sent
        last: Position | None = None
        count = 0
        while sent and sent[0][0] not in self.replaying:
            pid, last = sent.popleft()
            self.confirmed_from_spool.discard(pid)
            count += 1
        spool = self.outbox.spool
        if last is not None and spool is not None:
            spool.commit(last, count)

    async def open_producer(self, connection_name: str, *, watch: bool = False) -> Any:
        """A started producer whose streams match the settings' layout (``self.streams``);
        with ``watch`` a lost connection marks the link broken. Raises what went wrong."""
        producer = new_producer(
            self.s, connection_name, self.on_closed if watch else None
        )
        self.opening[id(producer)] = producer
        try:
            await asyncio.wait_for(producer.start(), CONNECT_TIMEOUT)
            # An existing stream with other arguments is used as it is, with one warning:
            # publishing must never stop over a retention setting.
            s = self.s
            self.streams = await asyncio.wait_for(
                ensure_layout(
                    producer,
                    s.rabbitmq_stream_name,
                    s.stream_partitions,
                    wanted_arguments(s),
                    logger,
                ),
                CONNECT_TIMEOUT,
            )
        except BaseException:
            await self.release(producer)
            raise
        return producer

    async def connect(self) -> bool:
        s = self.s
        try:
            producer = await self.open_producer(self.producer_name() or "audit-logging", watch=True)
        except ConfigurationError as exc:
            # The broker's layout is not the one configured: publishing with it would put
            # records where no consumer of this layout reads. They wait in the spool.
            self.next_connect = time.monotonic() + BACKOFF_MAX
            if self.down_since is None:
                self.down_since = time.monotonic()
            self.report("layout", logging.ERROR, "%s; audit records are kept in the spool", exc)
            return False
        except Exception as exc:  # noqa: BLE001 - any failure: back off and try again
            self.next_connect = time.monotonic() + self.backoff
            self.backoff = min(BACKOFF_MAX, self.backoff * 2)
            if self.down_since is None:
                self.down_since = time.monotonic()
            self.report(
                "connect",
                logging.WARNING,
                "RabbitMQ stream %s:%d unreachable (%s); audit records are kept in the spool",
                s.rabbitmq_stream_host,
                s.rabbitmq_stream_port,
                describe_error(exc),
            )
            return False
        self.opening.pop(id(producer), None)
        self.producer = producer
        self.broken = False
        self.backoff = BACKOFF_FIRST
        self.last_progress = time.monotonic()
        if self.down_since is not None:
            logger.info(
                "RabbitMQ stream reachable again after %.1f s; replaying the spool",
                time.monotonic() - self.down_since,
            )
            self.down_since = None
        return True

    def on_closed(self, info: Any) -> None:
        self.broken = True

    def _spool_in_flight(self) -> None:
        """Sent straight and not confirmed: into the spool, in id order, before anything."""
        direct = sorted(self.direct.items())
        self.direct.clear()
        self.replaying.clear()
        self.spool_sent.clear()
        self.frames_sent.clear()  # never confirmed: no latency to record
        self.outbox.to_spool(direct)

    async def disconnect(self, reason: str) -> None:
        # What the broker confirmed is committed first: rewinding past it would resend it
        # (deduplicated by the broker, but counted as published twice).
        self.commit_spool()
        spool = self.outbox.spool
        if spool is not None:
            spool.rewind()
        self._spool_in_flight()
        producer, self.producer = self.producer, None
        if producer is not None:
            await close_quietly(producer)
        self.broken = False
        if self.down_since is None:
            self.down_since = time.monotonic()
        self.next_connect = time.monotonic() + self.backoff
        self.report(
            "disconnect",
            logging.WARNING,
            "RabbitMQ stream connection dropped (%s); audit records are kept in the "
            "spool and resent",
            reason,
        )

    async def release(self, producer: Any) -> None:
        self.opening.pop(id(producer), None)
        await close_quietly(producer)

    def spool_everything(self) -> None:
        """At shutdown, before anything waits on the broker: whatever is not confirmed (in
        flight, queued, overflowing) goes to the spool, fsynced; the spools are closed."""
        outbox = self.outbox
        self.commit_spool()
        self._spool_in_flight()
        while outbox.queue:
            outbox.take_to_spool()
        outbox.in_hand = 0
        outbox.absorb_overflow()
        if outbox.spool is not None:
            outbox.spool.close(remove_if_empty=True)
        for orphan in outbox.orphans:
            orphan.close(remove_if_empty=False)

    async def close(self) -> None:
        producers = [p for p in (self.producer, *self.opening.values()) if p is not None]
        self.producer = None
        self.opening.clear()
        await asyncio.gather(*(close_quietly(p) for p in producers))


def frames(records: list[tuple[int, bytes]]) -> list[list[tuple[int, bytes]]]:
    """``records`` cut into publish frames of at most MAX_BATCH records and MAX_BATCH_BYTES."""
    if len(records) <= MAX_BATCH and sum(len(body) for _, body in records) <= MAX_BATCH_BYTES:
        return [records]
    cut: list[list[tuple[int, bytes]]] = [[]]
    size = 0
    for record in records:
        if cut[-1] and (len(cut[-1]) >= MAX_BATCH or size + len(record[1]) > MAX_BATCH_BYTES):
            cut.append([])
            size = 0
        cut[-1].append(record)
        size += len(record[1])
    return cut


def messages(records: list[tuple[int, bytes]]) -> list[RawMessage]:
    """AMQP 1.0 messages, the record JSON as each one's body (any client can read it)."""
    return [RawMessage(encode_message(body), publishing_id=pid) for pid, body in records]

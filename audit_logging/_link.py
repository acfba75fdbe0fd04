"""The publisher's link to the broker: one rstream producer, what is in flight on it, the
confirms, reconnecting, and the replay of spools left by processes that are gone.

It runs on the publisher's thread and loop only, and works on its owner's state (queue,
in-flight maps, spool): the owner decides when records move, the link how they travel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, Final

from rstream import Producer, RawMessage
from rstream.recovery import RecoveryStrategy

from audit_logging._amqp import encode_message
from audit_logging._spool import Position, Spool
from audit_logging.errors import ConfigurationError
from audit_logging.partitions import ensure_layout, route
from audit_logging.stream_arguments import wanted_arguments

if TYPE_CHECKING:
    from audit_logging.publisher import StreamPublisher

logger = logging.getLogger("audit_logging.publisher")

MAX_BATCH: Final = 250  # per publish frame; rstream encodes a frame without letting go of the GIL
MAX_BATCH_BYTES: Final = 900 * 1024  # under rstream's default 1 MiB frame
MAX_IN_FLIGHT: Final = 20_000
CONFIRM_TIMEOUT: Final = 10.0
CONNECT_TIMEOUT: Final = 10.0
BACKOFF_FIRST: Final = 0.2
BACKOFF_MAX: Final = 5.0

class Link:
    """The worker's connection to the broker and what is in flight on it."""

    def __init__(self, owner: StreamPublisher) -> None:
        self.o = owner
        self.s = owner._settings
        self.producer: Any = None
        # Where records go: the stream, or a super stream's partitions (checked at connect).
        self.streams = [owner._settings.rabbitmq_stream_name]
        self.broken = False
        self.next_connect = 0.0
        self.backoff = BACKOFF_FIRST
        self.last_progress = time.monotonic()
        self.down_since: float | None = None
        # Producers still starting or replaying an orphan: a stop closes them after it has
        # spooled (closing waits on the broker, which may not answer).
        self.opening: dict[int, Any] = {}  # by id(): a Producer is not hashable

    @property
    def connected(self) -> bool:
        return self.producer is not None and not self.broken

    def in_flight(self) -> int:
        return len(self.o._direct) + len(self.o._replaying)

    def can_take(self) -> bool:
        """Whether a queued record could be sent (or spooled) right now."""
        o = self.o
        if not self.connected:
            return True  # it goes to the spool
        if self.in_flight() >= MAX_IN_FLIGHT:
            return False
        spool = o._spool
        spooling = spool is not None and (spool.unsent or spool.overflow_count)
        return not (spooling and o._direct)

    def idle_timeout(self) -> float:
        if self.in_flight():
            return 0.05
        if not self.connected:
            return max(0.01, min(0.5, self.next_connect - time.monotonic()))
        return 1.0

    async def step(self) -> bool:  # noqa: PLR0911 - one exit per state of the link
        """One round of work; False when there was nothing to do."""
        o = self.o
        o._yield_to_app()
        if self.broken:
            await self.disconnect("the connection was lost")
        if self.producer is None and not o._stop_requested and (
            time.monotonic() >= self.next_connect
        ):
            # Connect before spooling: when the broker is there, records go straight to it.
            connected = await self.connect()
            o._yield_to_app()
            if connected:
                return True
        if self.producer is None:
            bodies = o._take()
            o._to_spool(o._assign_ids(bodies))
            o._in_hand = 0
            o._absorb_overflow()
            return bool(bodies)
        if self.in_flight() and time.monotonic() - self.last_progress > CONFIRM_TIMEOUT:
            await self.disconnect(f"no confirm within {CONFIRM_TIMEOUT:.0f} s")
            return True
        self.commit_spool()
        if self.in_flight() >= MAX_IN_FLIGHT:
            return False
        spool = o._spool
        if spool is not None and (spool.unsent or spool.overflow_count):
            if not o._direct:
                # Spool mode: what is queued goes behind the spool, and is sent from it.
                o._absorb_overflow()
                bodies = o._take()
                o._to_spool(o._assign_ids(bodies))
                o._in_hand = 0
            return await self.send_from_spool()
        bodies = o._take()
        if not bodies:
            o._in_hand = 0
            return False
        records = o._assign_ids(bodies)
        o._direct.update(records)
        o._in_hand = 0
        await self.send(records)
        return True

    async def send_from_spool(self) -> bool:
        o = self.o
        assert o._spool is not None
        room = MAX_IN_FLIGHT - self.in_flight()
        entries = o._spool.read(min(MAX_BATCH, room), MAX_BATCH_BYTES)
        if not entries:
            return False
        for entry in entries:
            o._replaying[entry.publishing_id] = entry.end
            o._spool_sent.append((entry.publishing_id, entry.end))
        await self.send([(e.publishing_id, e.body) for e in entries])
        return True

    async def send_routed(
        self,
        producer: Any,
        records: list[tuple[int, bytes]],
        on_confirm: Any,
        publisher_name: str | None = None,
    ) -> None:
        """Each record to its stream (its partition's, by log_id), in the order given: the
        ids are increasing on every partition, as deduplication needs."""
        if publisher_name is None and self.o._spool is not None:
            publisher_name = self.o._spool.producer_name
        for stream, group in route(records, self.streams):
            await producer.send_batch(
                stream,
                messages(group),
                publisher_name=publisher_name,
                on_publish_confirm=on_confirm,
            )

    async def send(self, records: list[tuple[int, bytes]]) -> None:
        if self.in_flight() == len(records):
            self.last_progress = time.monotonic()  # nothing older is waiting
        try:
            await asyncio.wait_for(
                self.send_routed(self.producer, records, self.on_confirm), CONFIRM_TIMEOUT
            )
        except Exception as exc:  # noqa: BLE001 - any failure means: resend after reconnect
            self.broken = True
            self.o._report(
                "send",
                logging.WARNING,
                "Audit publish to RabbitMQ failed (%s); will resend",
                describe(exc),
            )

    def on_confirm(self, status: Any) -> None:
        o = self.o
        pid = status.message_id
        if pid not in o._direct and pid not in o._replaying:
            return  # from a connection already given up, or a duplicate confirm
        if status.is_confirmed:
            if o._direct.pop(pid, None) is None:
                del o._replaying[pid]
            o._counts["published"] += 1
            self.last_progress = time.monotonic()
        else:
            # Not stored (connection lost or an error): everything in flight is resent.
            self.broken = True
        if o._wake is not None:
            o._wake.set()

    def commit_spool(self) -> None:
        o = self.o
        sent = o._spool_sent
        last: Position | None = None
        count = 0
        while sent and sent[0][0] not in o._replaying:
            _, last = sent.popleft()
            count += 1
        if last is not None and o._spool is not None:
            o._spool.commit(last, count)

    async def connect(self) -> bool:
        s = self.s
        producer = Producer(
            **s.stream_client_args(),
            connection_name=self.o._spool.producer_name if self.o._spool else "audit-logging",
            # We reconnect ourselves, so that what was in flight is resent in id order.
            recovery_strategy=_NoRecovery(),
            on_close_handler=self.on_closed,
        )
        self.opening[id(producer)] = producer
        try:
            await asyncio.wait_for(producer.start(), CONNECT_TIMEOUT)
            # An existing stream with other arguments is used as it is, with one warning:
            # publishing must never stop over a retention setting.
            self.streams = await asyncio.wait_for(self.layout(producer), CONNECT_TIMEOUT)
        except ConfigurationError as exc:
            # The broker's layout is not the one configured: publishing with it would put
            # records where no consumer of this layout reads. They wait in the spool.
            await self.release(producer)
            self.next_connect = time.monotonic() + BACKOFF_MAX
            if self.down_since is None:
                self.down_since = time.monotonic()
            self.o._report(
                "layout", logging.ERROR, "%s; audit records are kept in the spool", exc
            )
            return False
        except Exception as exc:  # noqa: BLE001 - any failure: back off and try again
            await self.release(producer)
            self.next_connect = time.monotonic() + self.backoff
            self.backoff = min(BACKOFF_MAX, self.backoff * 2)
            if self.down_since is None:
                self.down_since = time.monotonic()
            self.o._report(
                "connect",
                logging.WARNING,
                "RabbitMQ stream %s:%d unreachable (%s); audit records are kept in the spool",
                s.rabbitmq_stream_host,
                s.rabbitmq_stream_port,
                describe(exc),
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

    async def layout(self, producer: Any) -> list[str]:
        s = self.s
        return await ensure_layout(
            producer, s.rabbitmq_stream_name, s.stream_partitions, wanted_arguments(s), logger
        )

    def on_closed(self, info: Any) -> None:
        self.broken = True

    async def disconnect(self, reason: str) -> None:
        o = self.o
        # Sent straight and not confirmed: spool them, in id order, before anything else.
        direct = sorted(o._direct.items())
        o._direct.clear()
        o._replaying.clear()
        o._spool_sent.clear()
        if o._spool is not None:
            o._spool.rewind()
        o._to_spool(direct)
        producer, self.producer = self.producer, None
        if producer is not None:
            await close_quietly(producer)
        self.broken = False
        if self.down_since is None:
            self.down_since = time.monotonic()
        self.next_connect = time.monotonic() + self.backoff
        o._report(
            "disconnect",
            logging.WARNING,
            "RabbitMQ stream connection dropped (%s); audit records are kept in the "
            "spool and resent",
            reason,
        )

    async def replay_orphan(self, orphan: Spool) -> bool:
        """Send what a process that is gone left in its spool, under its producer name (so
        the broker drops what it already has); True once the folder is empty and removed."""
        s = self.s
        producer = Producer(
            **s.stream_client_args(),
            connection_name=orphan.producer_name,
            recovery_strategy=_NoRecovery(),
        )
        self.opening[id(producer)] = producer
        try:
            await asyncio.wait_for(producer.start(), CONNECT_TIMEOUT)
            self.streams = await asyncio.wait_for(self.layout(producer), CONNECT_TIMEOUT)
            if orphan.overflow_count:
                client = await producer.default_client
                sequence = 0
                for stream in self.streams:
                    sequence = max(
                        sequence,
                        await client.query_publisher_sequence(
                            stream=stream, reference=orphan.producer_name
                        ),
                    )
                next_id = max(sequence, orphan.last_id()) + 1

                def assign(bodies: list[bytes]) -> list[tuple[int, bytes]]:
                    return list(enumerate(bodies, start=next_id))

                orphan.drain_overflow(assign)
            while True:
                self.o._relieve_queue()
                entries = orphan.read(MAX_BATCH, MAX_BATCH_BYTES)
                if not entries:
                    break
                done = asyncio.get_running_loop().create_future()
                waiting = {e.publishing_id for e in entries}

                def on_confirm(
                    status: Any, waiting: set[int] = waiting, done: asyncio.Future[None] = done
                ) -> None:
                    waiting.discard(status.message_id)
                    if not status.is_confirmed and not done.done():
                        done.set_exception(ConnectionError("not confirmed"))
                    elif not waiting and not done.done():
                        done.set_result(None)

                await asyncio.wait_for(
                    self.send_routed(
                        producer,
                        [(e.publishing_id, e.body) for e in entries],
                        on_confirm,
                        orphan.producer_name,
                    ),
                    CONFIRM_TIMEOUT,
                )
                await asyncio.wait_for(done, CONFIRM_TIMEOUT)
                orphan.commit(entries[-1].end, len(entries))
                self.o._counts["published"] += len(entries)
        except Exception as exc:  # noqa: BLE001 - try again on a later round
            orphan.rewind()
            self.o._report(
                "orphan",
                logging.WARNING,
                "Replaying the spool %s failed (%s); will retry",
                orphan.path,
                describe(exc),
            )
            await self.release(producer)
            return False
        await self.release(producer)
        logger.info("Replayed the spool %s left by an earlier process", orphan.path)
        orphan.close(remove_if_empty=True)
        return True

    async def release(self, producer: Any) -> None:
        self.opening.pop(id(producer), None)
        await close_quietly(producer)

    async def stop(self, orphans: list[Spool]) -> None:
        """At shutdown: whatever is not confirmed goes to the spool, fsynced, before
        anything waits on the broker; then the connections close."""
        o = self.o
        self.commit_spool()
        direct = sorted(o._direct.items())
        o._direct.clear()
        o._replaying.clear()
        o._spool_sent.clear()
        o._to_spool(direct)
        while o._queue:
            o._to_spool(o._assign_ids(o._take()))
        o._in_hand = 0
        o._absorb_overflow()
        if o._spool is not None:
            o._spool.close(remove_if_empty=True)
        for orphan in orphans:
            orphan.close(remove_if_empty=False)
        o._spooled.set()
        producers = [p for p in (self.producer, *self.opening.values()) if p is not None]
        self.producer = None
        self.opening.clear()
        await asyncio.gather(*(close_quietly(p) for p in producers))


class _NoRecovery(RecoveryStrategy):
    """We reconnect ourselves. (rstream's BackOffRecoveryStrategy(False) would also do
    nothing, but it says so through the root logging functions, which configure the app's
    root logger with logging.basicConfig as a side effect.)"""

    def __init__(self) -> None:
        super().__init__(enable=False)

    async def recover(self, *args: Any, **kwargs: Any) -> None:
        return None


def messages(records: list[tuple[int, bytes]]) -> list[RawMessage]:
    """AMQP 1.0 messages, the record JSON as each one's body (any client can read it)."""
    return [RawMessage(encode_message(body), publishing_id=pid) for pid, body in records]


async def close_quietly(producer: Any) -> None:
    clients = _clients_of(producer)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.close(), 3.0)
    # rstream 1.1.1 leaves the socket of a connection that broke open (Client.close skips
    # it): close what is left ourselves, or every outage leaks a file descriptor.
    for client in clients:
        writer = getattr(getattr(client, "_conn", None), "_writer", None)
        if writer is not None and not writer.transport.is_closing():
            writer.close()


def _clients_of(producer: Any) -> list[Any]:
    pool = getattr(getattr(producer, "_pool", None), "_clients", {})
    found = [client for group in pool.values() for client in group]
    found.extend(getattr(producer, "_clients", {}).values())
    default = getattr(producer, "_default_client", None)
    if default is not None:
        found.append(default)
    return found


def describe(exc: BaseException) -> str:
    # The exception's class and text: rstream's messages name hosts and codes, not secrets.
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__

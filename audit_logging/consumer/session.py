"""The RabbitMQ side of one stream's consumer: a connection, the subscription as a member of
the consumer group (RabbitMQ single active consumer), what the broker's activations mean for
the batches, and the one place offsets are stored.

Consumers sharing a name are one group: we read, and store offsets, only while the broker
says we are the active one. A member that becomes active resumes as a restart does, from the
group's stored offset with S3 listed afresh; one that is told to stand down (another member
joined and takes the partition) first lets its batch in flight finish and stores its offset,
since the broker activates the successor only after our answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from rstream import ConsumerOffsetSpecification, OffsetSpecification, OffsetType
from rstream.exceptions import StreamDoesNotExist

from audit_logging.archive.digest_format import digest_reference
from audit_logging.consumer import stream
from audit_logging.consumer.shutdown import Shutdown, StreamPlace
from audit_logging.errors import ConfigurationError, describe_error
from audit_logging.partitions import existing_partitions, single_is_super
from audit_logging.retry import Waiter

if TYPE_CHECKING:
    from rstream import Consumer, EventContext, MessageContext
    from rstream.utils import OnClosedErrorInfo

    from audit_logging.consumer.options import ConsumerOptions
    from audit_logging.settings import Settings

_log = logging.getLogger("audit_logging.consumer")


class Owner(Protocol):
    """What the session needs from the service that batches and archives."""

    async def on_message(self, raw: bytes, context: MessageContext) -> None: ...

    def step_down(self) -> None:
        """Stop reading: drop the batch being filled (the active member reads it again)."""

    def fence(self) -> None:
        """The connection is lost: start no upload any more (another member may be active)."""

    async def settle(self) -> int | None:
        """Once no batch is being archived: the last offset archived (committed)."""

    def resume(self, stored: int | None, digested: int | None) -> None:
        """Reading starts again after ``stored``, as at a restart; ``digested``: the last
        offset the group's digests cover."""

    async def seal(self) -> int | None:
        """Once no batch is being archived: write the digest of what was archived since the
        last one; the offset it covers (None: nothing written)."""


@dataclasses.dataclass(eq=False)
class Session:
    """One stream's subscription: connects and reconnects, follows the group's active
    member, and is the one path that stores the offset."""

    settings: Settings
    options: ConsumerOptions
    owner: Owner
    _: dataclasses.KW_ONLY
    place: StreamPlace
    shutdown: Shutdown
    # Called at each failed attempt to connect (the consumer's retry metric).
    on_retry: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        self._name = self.options.consumer_name
        self._digest_reference = digest_reference(self._name)
        self.consumer: Consumer | None = None
        self.active = False
        self._lost = False
        self._updates = 0
        self._subscribed = False
        # Ends the current connection: set on stop and when the connection is lost.
        self._over = asyncio.Event()
        self.stored: int | None = None

    def stop(self) -> None:
        self._over.set()

    @property
    def connected(self) -> bool:
        """Subscribed on a live connection (as the active member or a standby)."""
        return self._subscribed and not self._lost and not self._over.is_set()

    async def run(self) -> None:
        """Connections one after another until stopping; reconnects after a loss."""
        waiter = Waiter(
            f"RabbitMQ {self.place.where}",
            self.shutdown.abandon,
            maximum=10.0,
            on_retry=self.on_retry,
        )
        while not self.shutdown.stopping.is_set():
            self._over.clear()
            self._lost = False
            try:
                await self._open()
            except ConfigurationError:
                await self.close()
                raise
            except Exception as exc:  # noqa: BLE001 - connection and server errors alike
                await self.close()
                if isinstance(exc, StreamDoesNotExist):
                    reason = "the stream does not exist yet (a producer creates it)"
                else:
                    reason = describe_error(exc)
                await waiter.pause(reason, self.shutdown.stopping)
                continue
            waiter.succeeded()
            await self._over.wait()
            if not self.shutdown.stopping.is_set():
                _log.warning("RabbitMQ connection lost; reconnecting")
                await self.close()

    async def close(self) -> None:
        self._subscribed = False
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            with contextlib.suppress(TimeoutError, Exception):
                await asyncio.wait_for(consumer.close(), 10)

    def _step_down(self) -> None:
        self.active = False
        self.owner.step_down()

    async def _on_closed(self, info: OnClosedErrorInfo) -> None:
        _log.debug("rstream reports %s for %s", info.reason, info.streams)
        self._lost = True
        # The broker may already have made a standby active: what we read and did not
        # archive is its work now, and so is the batch being archived if it has not reached
        # S3 yet.
        self.owner.fence()
        self._step_down()
        self._over.set()

    async def _open(self) -> None:
        consumer = stream.make_consumer(self.settings, self._name, self._on_closed)
        self.consumer = consumer
        await consumer.start()
        self._step_down()
        self._updates = 0
        properties = {"single-active-consumer": "true", "name": self._name}
        if self.place.super_stream is not None:
            # The broker then spreads the group's active consumers over the partitions.
            properties["super-stream"] = self.place.super_stream
        # The broker asks _on_consumer_update where to start once we are the active one.
        try:
            await consumer.subscribe(
                self.place.stream,
                self.owner.on_message,
                offset_specification=stream.start_spec(self.options.start),
                initial_credit=self.options.credits,
                subscriber_name=self._name,
                properties=properties,
                consumer_update_listener=self._on_consumer_update,
            )
        except StreamDoesNotExist:
            if self.place.super_stream is None:
                found = await existing_partitions(consumer, self.place.stream)
                if found:
                    raise single_is_super(self.place.stream, len(found)) from None
            raise
        self._subscribed = True
        asyncio.get_running_loop().call_later(1.0, self._report_standby, consumer)

    def _report_standby(self, consumer: Consumer) -> None:
        if consumer is self.consumer and not self._updates and not self._over.is_set():
            self._log_standby()

    def _log_standby(self) -> None:
        _log.info(
            "consumer '%s' is a standby of group '%s' on %s: another consumer of the "
            "group is active there; this one takes over when it stops",
            self._name,
            self._name,
            self.place.where,
        )

    async def _on_consumer_update(self, active: bool, _: EventContext) -> OffsetSpecification:
        """The broker makes us the active consumer of the group (or a standby again).

        Runs inside rstream's frame reader: only short waits here.
        """
        self._updates += 1
        if not active:
            was_active = self.active
            self._step_down()
            if was_active:
                await self._hand_over()
            self._log_standby()
            return OffsetSpecification(OffsetType.NEXT, 0)
        try:
            spec = await self._activate()
        except Exception as exc:  # noqa: BLE001 - a new connection asks again
            _log.warning(
                "could not take over %s: %s; reconnecting", self.place.where, describe_error(exc)
            )
            self._lost = True
            self._over.set()
            return OffsetSpecification(OffsetType.NEXT, 0)
        self.active = True
        return OffsetSpecification(spec.offset_type, spec.offset or 0)

    async def _hand_over(self) -> None:
        """The broker gives our partition to another member of the group (one joined): it
        activates that one only after we answer, so first the batch being archived finishes
        and its offset is stored. The successor then resumes after it and lists S3 with the
        upload done: it never archives those records again."""
        offset = await self.owner.settle()
        consumer = self.consumer
        if offset is None or consumer is None or self._lost:
            return
        digested = await self.owner.seal()
        try:
            await asyncio.wait_for(consumer.store_offset(self.place.stream, self._name, offset), 10)
        except (TimeoutError, Exception) as exc:  # noqa: BLE001 - the successor reconciles
            _log.warning(
                "could not store offset %d when handing %s over: %s",
                offset,
                self.place.where,
                describe_error(exc),
            )
            return
        self.stored = offset
        if digested is not None:
            await self._store_reference(consumer, digested)
        _log.info("handed %s over at offset %d", self.place.where, offset)

    async def _activate(self) -> ConsumerOffsetSpecification:
        """Resume as a restart does: from the stored offset, with S3 listed afresh."""
        # A batch of an earlier activation still being archived stores its offset first.
        committed = await self.owner.settle()
        consumer = self.consumer
        assert consumer is not None
        stored = await asyncio.wait_for(
            stream.stored_offset(consumer, self.place.stream, self._name), 10
        )
        if committed is not None and (stored is None or committed > stored):
            # Ours, archived while the broker was out of reach.
            storing = consumer.store_offset(self.place.stream, self._name, committed)
            await asyncio.wait_for(storing, 10)
            stored = committed
        digested = await asyncio.wait_for(
            stream.stored_offset(consumer, self.place.stream, self._digest_reference), 10
        )
        _log.info(
            "consumer '%s' is the active consumer of group '%s' on %s",
            self._name,
            self._name,
            self.place.where,
        )
        self.stored = stored
        self.owner.resume(stored, digested)
        if stored is None:
            return stream.start_spec(self.options.start)
        return stream.offset_spec(max(0, stored + 1 - self.options.dedup_warmup))

    async def store(self, offset: int) -> None:
        """Store ``offset`` if we are the active member and connected; otherwise it is
        stored when we are active again, or at shutdown."""
        consumer = self.consumer
        if consumer is None or self._lost or not self.active:
            return
        try:
            await asyncio.wait_for(consumer.store_offset(self.place.stream, self._name, offset), 10)
        except (TimeoutError, Exception) as exc:  # noqa: BLE001 - retried later
            _log.warning("could not store offset %d yet: %s", offset, describe_error(exc))
            return
        self.stored = offset

    async def store_digested(self, offset: int) -> None:
        """Record in RabbitMQ that the chain's digests cover ``offset``: outside the bucket,
        so that removing the newest digests from it is noticed. If we are not the active
        member, the active one records it with its next digest."""
        consumer = self.consumer
        if consumer is None or self._lost or not self.active:
            return
        await self._store_reference(consumer, offset)

    async def _store_reference(self, consumer: Consumer, offset: int) -> None:
        try:
            storing = consumer.store_offset(self.place.stream, self._digest_reference, offset)
            await asyncio.wait_for(storing, 10)
        except (TimeoutError, Exception) as exc:  # noqa: BLE001 - the next digest stores it
            _log.warning(
                "could not record in RabbitMQ that digests cover offset %d: %s",
                offset,
                describe_error(exc),
            )

    async def store_final(self, committed: int, abandoned: asyncio.Event) -> None:
        """At shutdown: store ``committed`` and read it back, reconnecting as needed, until
        it is stored or shutdown gives up (``abandoned``)."""
        waiter = Waiter("RabbitMQ (storing the offset)", self.shutdown.abandon)
        while not abandoned.is_set():
            if self.consumer is None or self._lost:
                self._lost = False
                with contextlib.suppress(Exception):
                    await self.close()
                    consumer = stream.make_consumer(self.settings, self._name, self._on_closed)
                    self.consumer = consumer
                    await consumer.start()
            try:
                assert self.consumer is not None
                stored = await self._store_and_read_back(self.consumer, committed)
            except (TimeoutError, Exception) as exc:  # noqa: BLE001 - retried
                await waiter.pause(describe_error(exc), abandoned)
                continue
            if stored is not None and stored >= committed:
                self.stored = committed
                return
            await waiter.pause(f"the broker reports offset {stored}", abandoned)

    async def _store_and_read_back(self, consumer: Consumer, committed: int) -> int | None:
        stored = await asyncio.wait_for(
            stream.stored_offset(consumer, self.place.stream, self._name), 10
        )
        # Never move the group's offset back: a successor may have gone further.
        if stored is None or stored < committed:
            storing = consumer.store_offset(self.place.stream, self._name, committed)
            await asyncio.wait_for(storing, 10)
            # store_offset has no reply; reading it back proves the broker has it.
            stored = await asyncio.wait_for(
                stream.stored_offset(consumer, self.place.stream, self._name), 10
            )
        return stored

"""The local RabbitMQ is 4.x: super streams with hash routing and single active consumer work.

RabbitMQ 3.10 (the old local stack) has neither, so this fails against it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import defaultdict
from collections.abc import Callable

import pytest
from rstream import (
    AMQPMessage,
    ConfirmationStatus,
    ConsumerOffsetSpecification,
    EventContext,
    MessageContext,
    OffsetSpecification,
    OffsetType,
    RouteType,
    SuperStreamConsumer,
    SuperStreamProducer,
    amqp_decoder,
)

from audit_logging.settings import Settings
from tests._stack import Confirms, delete_super_stream, unique

pytestmark = pytest.mark.services
PARTITIONS = 3
KEYS = 30
COUNT = 600
GROUP = "audit-test-group"


async def routing_key(message: AMQPMessage) -> str:
    # rstream awaits the extractor: it must be a coroutine function.
    props = message.application_properties or {}
    key = props.get("key", props.get(b"key"))
    return key.decode() if isinstance(key, bytes) else str(key)


def producer(settings: Settings, name: str) -> SuperStreamProducer:
    return SuperStreamProducer(
        **settings.stream_client_args(), super_stream=name,
        routing=RouteType.Hash, routing_extractor=routing_key,
    )


def consumer(settings: Settings, name: str) -> SuperStreamConsumer:
    return SuperStreamConsumer(**settings.stream_client_args(), super_stream=name)


async def create(settings: Settings, name: str) -> None:
    # create_super_stream closes its locator connection: this client only creates.
    creator = producer(settings, name)
    try:
        await creator.create_super_stream(name, n_partitions=PARTITIONS)
    finally:
        await creator.close()


async def publish(settings: Settings, name: str) -> list[ConfirmationStatus]:
    confirms = Confirms(COUNT)
    async with producer(settings, name) as publisher:
        for i in range(COUNT):
            message = AMQPMessage(body=f"message {i}".encode(),
                                  application_properties={"key": f"key-{i % KEYS}"})
            await publisher.send(message, on_publish_confirm=confirms)
        await confirms.wait(60)
    return confirms.statuses


class Group:
    """``members`` consumers of one single-active-consumer group on a super stream. Each
    records the (partition, body, key) it reads and the partitions the broker made it active
    for; nothing is recorded once ``stop_recording`` is called, so a member that takes over
    while the group closes cannot blur the result."""

    def __init__(self, settings: Settings, name: str, members: int) -> None:
        self.settings, self.name, self.members = settings, name, members
        self.got: dict[int, list[tuple[str, bytes, str]]] = defaultdict(list)
        self.active: dict[int, set[str]] = defaultdict(set)
        self.recording = True
        self.consumers: list[SuperStreamConsumer] = []

    def callbacks(self, index: int) -> tuple[object, object]:
        async def on_message(message: AMQPMessage, context: MessageContext) -> None:
            if self.recording:
                self.got[index].append(
                    (context.stream, bytes(message.body), await routing_key(message)))

        async def on_update(is_active: bool, context: EventContext) -> OffsetSpecification:
            if self.recording:
                if is_active:
                    self.active[index].add(context.stream)
                else:
                    self.active[index].discard(context.stream)
            return OffsetSpecification(OffsetType.FIRST, 0)

        return on_message, on_update

    async def start(self) -> None:
        for index in range(self.members):
            member = consumer(self.settings, self.name)
            self.consumers.append(member)
            on_message, on_update = self.callbacks(index)
            await member.start()
            await member.subscribe(
                on_message, decoder=amqp_decoder,  # type: ignore[arg-type]
                offset_specification=ConsumerOffsetSpecification(OffsetType.FIRST),
                properties={"single-active-consumer": "true", "name": GROUP,
                            "super-stream": self.name},
                consumer_update_listener=on_update,  # type: ignore[arg-type]
            )

    def settled(self) -> bool:
        """Every partition has exactly one active member."""
        owners = [p for parts in self.active.values() for p in parts]
        return len(owners) == len(set(owners)) == PARTITIONS

    def count(self) -> int:
        return sum(len(reads) for reads in self.got.values())

    async def wait(self, done: Callable[[], bool], timeout: float, quiet: float = 0.0) -> None:
        loop = asyncio.get_running_loop()
        deadline, last, seen = loop.time() + timeout, loop.time(), -1
        while loop.time() < deadline:
            if self.count() != seen:
                seen, last = self.count(), loop.time()
            if done() and loop.time() - last >= quiet:
                return
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        self.recording = False
        for member in self.consumers:
            await member.close()


def test_super_stream_hash_routing_and_single_active_consumer(stack_settings: Settings) -> None:
    name = unique("test-super")
    own = dataclasses.replace(stack_settings, rabbitmq_stream_name=name)

    async def scenario() -> tuple[list[ConfirmationStatus], Group]:
        await create(stack_settings, name)
        group = Group(stack_settings, name, members=2)
        try:
            await group.start()
            # The broker spreads the partitions over the members once both have subscribed.
            await group.wait(group.settled, timeout=30)
            confirmed = await publish(stack_settings, name)
            # Then a quiet second and a half, so a message read twice would show.
            await group.wait(lambda: group.count() >= COUNT, timeout=60, quiet=1.5)
        finally:
            await group.close()
            await delete_super_stream(own)
        return confirmed, group

    confirmed, group = asyncio.run(scenario())
    got, active = group.got, group.active

    assert len(confirmed) == COUNT and all(status.is_confirmed for status in confirmed)
    bodies = [body for reads in got.values() for _, body, _ in reads]
    # Every message read exactly once across the group.
    assert sorted(bodies) == sorted(f"message {i}".encode() for i in range(COUNT))
    partitions = {f"{name}-{i}" for i in range(PARTITIONS)}
    # Hash routing: one key always lands in one partition, and the keys spread over all three.
    partition_of_key: dict[str, set[str]] = defaultdict(set)
    for reads in got.values():
        for partition, _, key in reads:
            partition_of_key[key].add(partition)
    assert all(len(p) == 1 for p in partition_of_key.values()), partition_of_key
    assert set().union(*partition_of_key.values()) == partitions
    # Single active consumer: each partition was read by one member only, the one the broker
    # made active for it, and the broker spread the partitions over both members.
    readers: dict[str, set[int]] = defaultdict(set)
    for index, reads in got.items():
        for partition, _, _ in reads:
            readers[partition].add(index)
    assert all(len(r) == 1 for r in readers.values()), readers
    for partition, (index,) in ((p, tuple(r)) for p, r in readers.items()):
        assert partition in active[index], (partition, active)
    assert len({i for r in readers.values() for i in r}) == 2, readers

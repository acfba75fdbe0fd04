"""The local RabbitMQ is real: a stream carries messages with confirms and keeps offsets."""

from __future__ import annotations

import asyncio

import pytest
from rstream import (
    AMQPMessage,
    ConfirmationStatus,
    Consumer,
    ConsumerOffsetSpecification,
    MessageContext,
    OffsetType,
    Producer,
    amqp_decoder,
)

from audit_logging.settings import Settings
from tests._stack import Confirms

pytestmark = pytest.mark.services
COUNT = 1000


async def publish(settings: Settings, stream: str) -> list[ConfirmationStatus]:
    confirms = Confirms(COUNT)
    async with Producer(**settings.stream_client_args()) as producer:
        await producer.create_stream(stream, exists_ok=True)
        batch = [AMQPMessage(body=f"message {i}".encode()) for i in range(COUNT)]
        for start in range(0, COUNT, 100):
            await producer.send_batch(
                stream, batch[start : start + 100], on_publish_confirm=confirms
            )
        await confirms.wait(30)
    return confirms.statuses


async def read(
    settings: Settings, stream: str, name: str, spec: ConsumerOffsetSpecification, want: int
) -> list[tuple[int, bytes]]:
    got: list[tuple[int, bytes]] = []
    done = asyncio.Event()

    async def on_message(message: AMQPMessage, context: MessageContext) -> None:
        got.append((context.offset, bytes(message.body)))
        if len(got) >= want:
            done.set()

    async with Consumer(**settings.stream_client_args()) as consumer:
        await consumer.subscribe(
            stream,
            on_message,
            decoder=amqp_decoder,
            offset_specification=spec,
            subscriber_name=name,
        )
        await asyncio.wait_for(done.wait(), 30)
        await consumer.store_offset(stream, name, got[want - 1][0])
        stored = await consumer.query_offset(stream, name)
        assert stored == got[want - 1][0]
    return got[:want]


def test_thousand_messages_with_confirms_and_a_stored_server_side_offset(
    settings: Settings, stream_name: str
) -> None:
    confirmed = asyncio.run(publish(settings, stream_name))
    assert len(confirmed) == COUNT and all(status.is_confirmed for status in confirmed)

    first_half = asyncio.run(
        read(settings, stream_name, "smoke", ConsumerOffsetSpecification(OffsetType.FIRST), 500)
    )
    assert [body for _, body in first_half] == [f"message {i}".encode() for i in range(500)]

    async def resume() -> list[tuple[int, bytes]]:
        async with Consumer(**settings.stream_client_args()) as consumer:
            stored = await consumer.query_offset(stream_name, "smoke")
        spec = ConsumerOffsetSpecification(OffsetType.OFFSET, stored + 1)
        return await read(settings, stream_name, "smoke", spec, 500)

    second_half = asyncio.run(resume())
    assert [body for _, body in second_half] == [f"message {i}".encode() for i in range(500, COUNT)]

"""The end of a stream, read from the real broker: the newest record's offset, never an
offset-tracking entry's, and None for a stream without records."""

from __future__ import annotations

import asyncio
import time

import pytest
from rstream import AMQPMessage, Consumer, Producer
from rstream.exceptions import StreamDoesNotExist

from audit_logging.settings import Settings
from audit_logging.stream_end import StreamEnd, stream_end, stream_ends
from tests.consumer._helpers import connect_args, create_stream, publish_records

pytestmark = [pytest.mark.services]


async def _end(settings: Settings, stream: str) -> StreamEnd | None:
    async with Consumer(**connect_args(settings)) as consumer:
        return await stream_end(consumer, stream)


async def _store(settings: Settings, reference: str, offsets: range) -> None:
    async with Consumer(**connect_args(settings)) as consumer:
        for offset in offsets:
            await consumer.store_offset(settings.rabbitmq_stream_name, reference, offset)
        # The stores are fire-and-forget frames; a query after them is answered after them.
        await consumer.query_offset(settings.rabbitmq_stream_name, reference)


def test_an_empty_stream_has_no_end(settings: Settings) -> None:
    create_stream(settings)
    assert asyncio.run(_end(settings, settings.rabbitmq_stream_name)) is None


def test_the_end_is_the_newest_record_not_a_tracking_entry(settings: Settings) -> None:
    create_stream(settings)
    before = time.time()
    publish_records(settings, 250)
    # Offset-tracking entries take offsets of their own after the records.
    asyncio.run(_store(settings, "some-consumer", range(0, 250, 10)))
    end = asyncio.run(_end(settings, settings.rabbitmq_stream_name))
    assert end is not None
    assert end.offset == 249
    assert before - 5 <= end.timestamp <= time.time() + 5

    publish_records(settings, 3)
    later = asyncio.run(_end(settings, settings.rabbitmq_stream_name))
    assert later is not None
    # The tracking entries sit between the first 250 records and these three.
    assert later.offset > 252
    assert later.timestamp >= end.timestamp


def test_ends_of_several_streams_and_a_missing_one(settings: Settings) -> None:
    create_stream(settings)
    publish_records(settings, 5)

    async def both() -> dict[str, StreamEnd | None]:
        async with Consumer(**connect_args(settings)) as consumer:
            return await stream_ends(consumer, [settings.rabbitmq_stream_name])

    ends = asyncio.run(both())
    assert [end.offset if end else None for end in ends.values()] == [4]
    with pytest.raises(StreamDoesNotExist):
        asyncio.run(_end(settings, settings.rabbitmq_stream_name + "-missing"))


def test_the_end_of_a_stream_written_to_without_pause_is_found(settings: Settings) -> None:
    """A busy stream gets a new chunk more often than the newest chunk takes to settle: the
    answer must not wait for the writing to stop (the lag and status would never get one)."""
    create_stream(settings)
    publish_records(settings, 10)
    bodies = [b'{"busy": %d}' % n for n in range(3000)]

    async def busy_writer() -> None:
        async with Producer(**connect_args(settings)) as producer:
            for body in bodies:  # one message a frame, a frame every 10 ms: about 30 s
                await producer.send_batch(settings.rabbitmq_stream_name, [AMQPMessage(body=body)])
                await asyncio.sleep(0.01)

    async def while_busy() -> tuple[StreamEnd | None, bool]:
        writer = asyncio.create_task(busy_writer())
        try:
            await asyncio.sleep(1.0)  # the writing is under way
            async with Consumer(**connect_args(settings)) as consumer:
                found = await asyncio.wait_for(
                    stream_end(consumer, settings.rabbitmq_stream_name), 120
                )
            return found, writer.done()
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    end, writer_done = asyncio.run(while_busy())
    assert not writer_done, "stream_end answered only once the writing stopped"
    assert end is not None
    assert end.offset >= 9

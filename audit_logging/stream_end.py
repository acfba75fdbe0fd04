"""Where a stream ends: the offset and broker time of its newest record.

RabbitMQ's stream protocol client (rstream) has no command for a stream's statistics, and a
stream's offsets count the group's offset-tracking entries too, so "the last offset" of the
stream is not the last record's. A subscription at ``LAST`` answers the question exactly:
the broker delivers the newest chunk of records first (tracking entries are never
delivered), and the largest offset of that chunk is the newest record's. The consumer's lag
and ``python -m audit_logging status`` both read it here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from rstream import AMQPMessage, Consumer, ConsumerOffsetSpecification, MessageContext, OffsetType

# A stream with records delivers its newest chunk as soon as the subscription is made; one
# that says nothing for this long has none.
EMPTY_AFTER: Final = 1.0
# The newest chunk's messages arrive in one frame: a pause this long after one of them means
# the rest of the chunk has arrived too.
CHUNK_SETTLE: Final = 0.05
# A stream written to without pause gets newer chunks more often than CHUNK_SETTLE: what
# has arrived this long after the first message is the answer (all of it at or past the
# end asked about); waiting for a pause would wait for the writing to stop.
SETTLE_AT_MOST: Final = 0.5
# A record at a known offset arrives at once; one that does not is not there yet.
FIRST_RECORD_WAIT: Final = 2.0


@dataclass(frozen=True, slots=True)
class StreamEnd:
    offset: int  # the newest record's offset
    timestamp: float  # when the broker wrote its chunk (Unix seconds)


async def stream_end(
    consumer: Consumer, stream: str, empty_after: float = EMPTY_AFTER
) -> StreamEnd | None:
    """The newest record of ``stream``, or None if it holds none. ``consumer`` is an open
    rstream Consumer; a missing stream raises rstream's ``StreamDoesNotExist``."""
    seen: list[tuple[int, float]] = []
    arrived = asyncio.Event()

    async def on_message(_body: AMQPMessage, context: MessageContext) -> None:
        seen.append((context.offset, context.timestamp / 1000))
        arrived.set()

    subscription = await consumer.subscribe(
        stream,
        on_message,
        offset_specification=ConsumerOffsetSpecification(OffsetType.LAST, None),
        decoder=_raw,
    )
    try:
        try:
            await asyncio.wait_for(arrived.wait(), empty_after)
        except TimeoutError:
            return None
        count = 0
        settled_by = asyncio.get_running_loop().time() + SETTLE_AT_MOST
        while count != len(seen) and asyncio.get_running_loop().time() < settled_by:
            count = len(seen)
            await asyncio.sleep(CHUNK_SETTLE)
    finally:
        await consumer.unsubscribe(subscription)
    offset, timestamp = max(seen)
    return StreamEnd(offset, timestamp)


async def stream_ends(consumer: Consumer, streams: Sequence[str]) -> dict[str, StreamEnd | None]:
    """:func:`stream_end` of each stream, asked at once."""
    ends = await asyncio.gather(*(stream_end(consumer, stream) for stream in streams))
    return dict(zip(streams, ends, strict=True))


async def first_record_from(
    consumer: Consumer, stream: str, offset: int | None, wait: float = FIRST_RECORD_WAIT
) -> tuple[int, float] | None:
    """(offset, broker time in Unix seconds) of the first record at or after ``offset`` (the
    stream's first when None), or None when none arrives within ``wait`` seconds."""
    found: asyncio.Future[tuple[int, float]] = asyncio.get_running_loop().create_future()
    floor = 0 if offset is None else offset

    async def on_message(_body: AMQPMessage, context: MessageContext) -> None:
        # The broker delivers whole chunks: one may start before ``offset``.
        if context.offset >= floor and not found.done():
            found.set_result((context.offset, context.timestamp / 1000))

    where = (
        ConsumerOffsetSpecification(OffsetType.FIRST, None)
        if offset is None
        else ConsumerOffsetSpecification(OffsetType.OFFSET, offset)
    )
    subscription = await consumer.subscribe(
        stream, on_message, offset_specification=where, initial_credit=1, decoder=_raw
    )
    try:
        return await asyncio.wait_for(found, wait)
    except TimeoutError:
        return None
    finally:
        await consumer.unsubscribe(subscription)


def _raw(body: Any) -> Any:
    return body

"""The stream side of status: each stream's newest record and, for each consumer name, its
stored offset, its lag and the first record it has not processed yet."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from rstream import Consumer
from rstream.exceptions import StreamDoesNotExist

from audit_logging.errors import AuditLoggingError, describe_error
from audit_logging.partitions import check_count, existing_partitions, partition_names
from audit_logging.settings import Settings
from audit_logging.status.figures import Backlog, Broker, ConsumerName, StreamEnd
from audit_logging.stream_end import first_record_from, stream_end
from audit_logging.stream_offsets import stored_offset

# A record after the stored offset is delivered as soon as the subscription is made; this is
# only how long to wait for a broker that has just lost it to retention.


async def read_broker(settings: Settings, names: Sequence[str], timeout: float) -> Broker:
    """What RabbitMQ holds, or a :class:`Broker` whose ``error`` says why it could not tell
    (nothing is raised: the other parts of status are still shown)."""
    figures = Broker()
    try:
        await asyncio.wait_for(_read(settings, names, figures), timeout)
    except TimeoutError:
        figures.error = f"{_where(settings)}: no complete answer within {timeout:g} s"
    except AuditLoggingError as exc:  # the broker's layout is not what the settings say
        figures.error = describe_error(exc).split(": ", 1)[1]
    except Exception as exc:  # noqa: BLE001 - any failure is reported, never raised
        figures.error = f"{_where(settings)}: {describe_error(exc)}"
    return figures


def _where(settings: Settings) -> str:
    return f"{settings.rabbitmq_stream_host}:{settings.rabbitmq_stream_port}"


async def _read(settings: Settings, names: Sequence[str], figures: Broker) -> None:
    async with Consumer(**settings.stream_client_args(),
                        connection_name="audit-logging status") as consumer:
        figures.reachable = True
        streams = await _streams(consumer, settings)
        ends = await asyncio.gather(*(_end(consumer, stream) for stream in streams))
        figures.streams = list(ends)
        for name in names:
            backlogs = [await _backlog(consumer, end, name) for end in ends if end.exists]
            figures.consumers.append(ConsumerName(name, backlogs))


async def _streams(consumer: Consumer, settings: Settings) -> list[str]:
    name, count = settings.rabbitmq_stream_name, settings.stream_partitions
    if count == 1:
        return [name]
    found = await existing_partitions(consumer, name)
    if not found:
        return partition_names(name, count)  # each then shows as missing
    return check_count(name, count, found)


async def _end(consumer: Consumer, stream: str) -> StreamEnd:
    try:
        end = await stream_end(consumer, stream)
    except StreamDoesNotExist:
        return StreamEnd(stream, exists=False)
    if end is None:
        return StreamEnd(stream)
    return StreamEnd(stream, end_offset=end.offset, end_time=end.timestamp)


async def _backlog(consumer: Consumer, end: StreamEnd, name: str) -> Backlog:
    stored = await stored_offset(consumer, end.stream, name)
    backlog = Backlog(end.stream, stored_offset=stored)
    if end.end_offset is None:
        backlog.lag = 0
        return backlog
    if stored is not None and stored >= end.end_offset:
        backlog.lag = 0
        return backlog
    backlog.lag = end.end_offset - (-1 if stored is None else stored)
    first = await first_record_from(consumer, end.stream, None if stored is None else stored + 1)
    if first is not None:
        backlog.oldest_waiting_offset, backlog.oldest_waiting_time = first
    return backlog

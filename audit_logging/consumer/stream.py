"""The RabbitMQ side: an rstream Consumer, stored offsets and where a subscription starts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from rstream import Consumer, ConsumerOffsetSpecification, OffsetType
from rstream.exceptions import OffsetNotFound
from rstream.recovery import BackOffRecoveryStrategy
from rstream.utils import OnClosedErrorInfo

from audit_logging.consumer.options import StartFrom
from audit_logging.settings import Settings

_KINDS = {"first": OffsetType.FIRST, "last": OffsetType.LAST, "next": OffsetType.NEXT}


def make_consumer(
    settings: Settings,
    name: str,
    on_closed: Callable[[OnClosedErrorInfo], Awaitable[None]],
) -> Consumer:
    return Consumer(
        settings.rabbitmq_stream_host,
        settings.rabbitmq_stream_port,
        vhost=settings.rabbitmq_stream_vhost,
        username=settings.rabbitmq_stream_user,
        password=settings.rabbitmq_stream_password.get(),
        connection_name=f"audit-logging-consumer {name}",
        on_close_handler=on_closed,
        # We reconnect ourselves, from the offset we know is next; rstream's own recovery
        # would resubscribe behind our back.
        recovery_strategy=BackOffRecoveryStrategy(False),
    )


async def stored_offset(consumer: Consumer, stream: str, name: str) -> int | None:
    """The offset stored for ``name``, or None if it never stored one."""
    try:
        offset: int = await consumer.query_offset(stream, name)
    except OffsetNotFound:
        return None
    return offset


def start_spec(start: StartFrom) -> ConsumerOffsetSpecification:
    if start.kind == "offset":
        return ConsumerOffsetSpecification(OffsetType.OFFSET, start.value)
    if start.kind == "timestamp":
        return ConsumerOffsetSpecification(OffsetType.TIMESTAMP, start.value)
    return ConsumerOffsetSpecification(_KINDS[start.kind], None)


def offset_spec(offset: int) -> ConsumerOffsetSpecification:
    return ConsumerOffsetSpecification(OffsetType.OFFSET, offset)


def describe_error(exc: BaseException) -> str:
    text: Any = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

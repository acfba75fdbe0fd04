"""The RabbitMQ side: an rstream Consumer, stored offsets and where a subscription starts."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rstream import Consumer, ConsumerOffsetSpecification, OffsetType
from rstream.recovery import BackOffRecoveryStrategy
from rstream.utils import OnClosedErrorInfo

from audit_logging.consumer.options import StartFrom
from audit_logging.partitions import partition_arguments
from audit_logging.settings import Settings
from audit_logging.stream_arguments import ensure_stream, wanted_arguments
from audit_logging.stream_offsets import stored_offset

__all__ = ["make_consumer", "offset_spec", "start_spec", "stored_offset"]

_KINDS = {"first": OffsetType.FIRST, "last": OffsetType.LAST, "next": OffsetType.NEXT}
_log = logging.getLogger("audit_logging.consumer")


class _StreamCheckingConsumer(Consumer):
    """Checks the stream's arguments against the settings before each subscription, so that
    a difference is reported (once) without the service knowing about it. The consumer never
    creates the stream: a missing one raises ``StreamDoesNotExist`` as ``subscribe`` would."""

    def __init__(self, *args: Any, arguments: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._wanted_arguments = arguments

    async def subscribe(self, stream: str, *args: Any, **kwargs: Any) -> int:
        await ensure_stream(self, stream, self._wanted_arguments, _log, create=False)
        subscription: int = await super().subscribe(stream, *args, **kwargs)
        return subscription


def make_consumer(
    settings: Settings,
    name: str,
    on_closed: Callable[[OnClosedErrorInfo], Awaitable[None]],
) -> Consumer:
    arguments = wanted_arguments(settings)
    if settings.stream_partitions > 1:
        arguments = partition_arguments(arguments)
    return _StreamCheckingConsumer(
        **settings.stream_client_args(),
        connection_name=f"audit-logging-consumer {name}",
        on_close_handler=on_closed,
        # We reconnect ourselves, from the offset we know is next; rstream's own recovery
        # would resubscribe behind our back.
        recovery_strategy=BackOffRecoveryStrategy(False),
        arguments=arguments,
    )


def start_spec(start: StartFrom) -> ConsumerOffsetSpecification:
    if start.kind == "offset":
        return ConsumerOffsetSpecification(OffsetType.OFFSET, start.value)
    if start.kind == "timestamp":
        return ConsumerOffsetSpecification(OffsetType.TIMESTAMP, start.value)
    return ConsumerOffsetSpecification(_KINDS[start.kind], None)


def offset_spec(offset: int) -> ConsumerOffsetSpecification:
    return ConsumerOffsetSpecification(OffsetType.OFFSET, offset)


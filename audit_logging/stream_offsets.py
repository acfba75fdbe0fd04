"""Offsets the consumer group stores in RabbitMQ, and the group's name: what the consumer
writes and what the archive's ``verify --integrity`` reads back (so it sits below both).

RabbitMQ keeps a stored offset per stream under a reference of at most 256 bytes: the group's
own under its consumer name, the last offset its digests cover under
:func:`audit_logging.archive.digest_format.digest_reference` of that name.
"""

from __future__ import annotations

import re
from typing import Final, Protocol

from rstream.exceptions import OffsetNotFound

from audit_logging.errors import ConfigurationError

DEFAULT_CONSUMER_NAME: Final = "audit-logging-consumer"
_NAME_RE: Final = re.compile(r"[A-Za-z0-9._:-]{1,200}")  # fullmatch: $ takes a "\n"


class OffsetReader(Protocol):
    """The part of rstream's Consumer that reads a stored offset."""

    async def query_offset(self, stream: str, reference: str, /) -> int: ...


def check_consumer_name(name: str, setting: str = "--consumer-name") -> str:
    if not _NAME_RE.fullmatch(name):
        raise ConfigurationError(
            setting, f"must be 1 to 200 letters, digits, '.', '_', ':' or '-', got {name!r}"
        )
    return name


async def stored_offset(consumer: OffsetReader, stream: str, name: str) -> int | None:
    """The offset stored for ``name``, or None if it never stored one."""
    try:
        offset: int = await consumer.query_offset(stream, name)
    except OffsetNotFound:
        return None
    return offset

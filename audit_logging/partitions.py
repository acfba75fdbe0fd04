"""Super streams: the partition a record goes to, and the layout the broker must have.

With ``AUDIT_LOG_STREAM_PARTITIONS`` = N > 1, ``RABBITMQ_STREAM_NAME`` is a RabbitMQ super
stream of N partition streams, ``{name}-0`` … ``{name}-{N-1}`` when we create it (binding
keys ``0`` … ``N-1``, as ``rabbitmq-streams add_super_stream --partitions N`` makes them). A
record goes to the partition at ``murmur3_32(log_id) mod N`` in the broker's partition
order: the hash routing of RabbitMQ's Java and Go stream clients (seed 104729, the log_id's
UTF-8 bytes), so a producer written with those clients routes a log_id the same way.

The number of partitions of an existing super stream never changes under a running system:
which partition holds a log_id, the stored offsets and the archive's file names all depend
on it. A process whose setting disagrees with the broker stops with a ``ConfigurationError``
naming the setting, and never publishes or consumes with the wrong layout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections.abc import Mapping
from typing import Any, Final, Protocol

import mmh3
from rstream.exceptions import StreamAlreadyExists, StreamDoesNotExist

from audit_logging.errors import AuditLoggingError, ConfigurationError
from audit_logging.stream_arguments import StreamClient, ensure_stream

SETTING: Final = "AUDIT_LOG_STREAM_PARTITIONS"
# How long a super stream being created by another process may take to list all partitions.
SETTLE_FOR: Final = 3.0
CREATE_JITTER: Final = 0.5
SEED: Final = 104729
# {"log_id":"<36 characters>" : how every record this library writes begins.
_PREFIX: Final = b'{"log_id":"'
_UUID_END: Final = len(_PREFIX) + 36
_PARTITION_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,255}")


class SuperStreamNotReadyError(AuditLoggingError):
    """The super stream was created but the broker does not list it yet: try again."""


class _LocatorClient(Protocol):
    """The part of rstream's low-level ``Client`` used here."""

    async def partitions(self, super_stream: str) -> list[str]: ...

    async def create_super_stream(
        self,
        super_stream: str,
        partitions: list[str],
        binding_keys: list[str],
        arguments: dict[str, Any] | None = ...,
    ) -> None: ...


class LayoutClient(StreamClient, Protocol):
    """rstream's Producer or Consumer: stream commands and a locator connection."""

    @property
    async def default_client(self) -> Any: ...


def partition_names(name: str, count: int) -> list[str]:
    return [f"{name}-{index}" for index in range(count)]


def _leading_log_id(body: bytes) -> bytes | None:
    """The log_id's bytes where a record begins with it, as this library writes them."""
    if body.startswith(_PREFIX) and body[_UUID_END : _UUID_END + 1] == b'"':
        return body[len(_PREFIX) : _UUID_END]
    return None


def log_id_of(body: bytes) -> str:
    """The log_id of a record's JSON; '' if it has none (such a body goes to partition 0's
    hash of '', and the consumer dead-letters it)."""
    leading = _leading_log_id(body)
    if leading is not None:
        return leading.decode("ascii", "replace")
    try:
        value = json.loads(body).get("log_id")
    except (ValueError, AttributeError, RecursionError):
        return ""
    return value if isinstance(value, str) else ""


def partition_of(body: bytes, count: int) -> int:
    """:func:`partition_index` of a record's JSON, hashing the log_id's bytes where they are
    (the same bytes its UTF-8 encoding would give)."""
    leading = _leading_log_id(body)
    if leading is not None and leading.isascii():
        return int(mmh3.hash(leading, SEED, signed=False)) % count
    return partition_index(log_id_of(body), count)


def partition_index(log_id: str, count: int) -> int:
    if count == 1:
        return 0
    # mmh3.hash with signed=False is murmur3 x86 32-bit, as the Java client's Utils.murmur3.
    return int(mmh3.hash(log_id.encode("utf-8", "surrogatepass"), SEED, signed=False)) % count


def route(records: list[tuple[int, bytes]], streams: list[str]) -> list[tuple[str, list[Any]]]:
    """``records`` (publishing id, body) grouped by partition stream, each group in the
    order given (so each partition sees increasing publishing ids)."""
    if len(streams) == 1:
        return [(streams[0], records)]
    groups: dict[int, list[tuple[int, bytes]]] = {}
    count = len(streams)
    for record in records:
        groups.setdefault(partition_of(record[1], count), []).append(record)
    return [(streams[index], group) for index, group in sorted(groups.items())]


def partition_arguments(arguments: Mapping[str, str]) -> dict[str, str]:
    """What a partition's arguments are when the super stream was created with ``arguments``:
    RabbitMQ adds a "balanced" leader locator, without which every partition would look
    different from what the settings ask for."""
    return {**arguments, "queue-leader-locator": "balanced"}


def check_count(name: str, count: int, found: list[str]) -> list[str]:
    """``found`` (a super stream's partitions) if there are ``count`` of them, each named as
    a stream name may be here: the names go into S3 keys and log lines."""
    for partition in found:
        if not _PARTITION_RE.fullmatch(partition):
            raise ConfigurationError(
                "RABBITMQ_STREAM_NAME",
                f"super stream {name!r} has a partition named {partition[:300]!r}; partition "
                "names must be 1 to 255 letters, digits, '.', '_' or '-' (they name the "
                "archive's files)",
            )
    if len(found) != count:
        raise _mismatch(
            name, count, f"has a super stream of {len(found)} partitions ({', '.join(found)})"
        )
    return found


def single_is_not_super(name: str, count: int) -> ConfigurationError:
    return _mismatch(name, count, "has a single stream (not a super stream) of that name")


def single_is_super(name: str, partitions: int) -> ConfigurationError:
    return _mismatch(name, 1, f"has a super stream of {partitions} partitions there")


def _mismatch(name: str, count: int, found: str) -> ConfigurationError:
    return ConfigurationError(
        SETTING,
        f"RabbitMQ {found}, and this process has {SETTING}={count} for "
        f"RABBITMQ_STREAM_NAME={name!r}. The number of partitions of a stream cannot change "
        f"once it has records (a log_id's partition, the stored offsets and the archive's "
        f"file names depend on it): set {SETTING} to what the broker has, or publish to a "
        f"new RABBITMQ_STREAM_NAME",
    )


async def existing_partitions(client: LayoutClient, name: str) -> list[str]:
    """The partition streams of super stream ``name``; [] when there is no such super stream."""
    locator: _LocatorClient = await client.default_client
    return list(await locator.partitions(name))


async def settled_partitions(client: LayoutClient, name: str, count: int) -> list[str]:
    """The partitions of super stream ``name`` once the broker's list is complete: RabbitMQ
    creates the exchange, then each partition, then the bindings, so while another process
    creates it the list is empty or short for a moment. Waits up to :data:`SETTLE_FOR` for
    ``count`` partitions; [] when there is no super stream (or not yet)."""
    found = await existing_partitions(client, name)
    deadline = time.monotonic() + SETTLE_FOR
    while found and len(found) != count and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        found = await existing_partitions(client, name)
    return found


async def _created(client: LayoutClient, name: str, count: int) -> list[str]:
    """After a create (ours or another process's): its partitions once listed, or []."""
    deadline = time.monotonic() + SETTLE_FOR
    while True:
        found = await settled_partitions(client, name, count)
        if found or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(0.1)


async def _create(
    client: LayoutClient, name: str, count: int, arguments: Mapping[str, str], log: logging.Logger
) -> list[str]:
    # Several workers of an app often start at once with a new stream: one creates it, the
    # others find it (concurrent creates can fail half-way in RabbitMQ).
    await asyncio.sleep(random.uniform(0.0, CREATE_JITTER))  # noqa: S311 - not cryptographic
    found = await settled_partitions(client, name, count)
    if found:
        return found
    locator: _LocatorClient = await client.default_client
    failure: Exception | None = None
    try:
        await locator.create_super_stream(
            name, partition_names(name, count), [str(i) for i in range(count)], dict(arguments)
        )
        log.info("created RabbitMQ super stream %r with %d partitions", name, count)
    except StreamAlreadyExists:
        pass  # another process was first
    except Exception as exc:  # noqa: BLE001 - judged below, by what the broker now holds
        failure = exc
    found = await _created(client, name, count)
    if found:
        return found
    left = [p for p in partition_names(name, count) if await client.stream_exists(p)]
    if left:
        raise ConfigurationError(
            "RABBITMQ_STREAM_NAME",
            f"RabbitMQ holds the streams {', '.join(left)} but no super stream {name!r}: its "
            "creation failed half-way (several processes creating it at once can do that). "
            "Delete those streams if they hold nothing (`rabbitmqctl delete_queue NAME`) and "
            f"let a publisher create it, or create it with `rabbitmq-streams "
            f"add_super_stream {name} --partitions {count}`",
        )
    if failure is not None:
        raise failure
    raise SuperStreamNotReadyError(f"super stream {name!r} is not listed yet after its creation")


async def ensure_layout(
    client: LayoutClient,
    name: str,
    count: int,
    arguments: Mapping[str, str],
    log: logging.Logger,
    *,
    create: bool = True,
) -> list[str]:
    """The streams records go to: ``[name]``, or the N partitions of super stream ``name``.

    A missing stream or super stream is created with ``arguments`` (``create=False``, a
    consumer: ``StreamDoesNotExist``). A layout other than ``count`` asks for raises
    :class:`ConfigurationError`. Each partition's arguments are checked as
    :func:`ensure_stream` checks a single stream's.
    """
    if count == 1:
        # An existing stream needs no partition query (which brokers before 3.11 do not know).
        if not await client.stream_exists(name):
            found = await existing_partitions(client, name)
            if found:
                raise single_is_super(name, len(found))
        await ensure_stream(client, name, arguments, log, create=create)
        return [name]
    found = await settled_partitions(client, name, count)
    if not found:
        if await client.stream_exists(name):
            raise single_is_not_super(name, count)
        if not create:
            raise StreamDoesNotExist(f"super stream {name!r} does not exist")
        found = await _create(client, name, count, arguments, log)
    check_count(name, count, found)
    checked = partition_arguments(arguments)
    for partition in found:
        await ensure_stream(client, partition, checked, log, create=False)
    return found

"""Create the stream with the arguments the settings ask for, or use an existing one as it is.

RabbitMQ keeps a stream's arguments (``x-max-age``, ...) from its creation: a later create with
other values is refused with ``PreconditionFailed``, and a create with the same values with
``StreamAlreadyExists``. The stream protocol has no command that reports an existing stream's
arguments, so a create is also the only check there is. A difference must never stop
publishing or consuming (records would pile up in the spool for a retention choice), so it is
logged once per process and stream, naming the setting and the value asked for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, Final, Protocol

from rstream.exceptions import (
    AccessRefused,
    PreconditionFailed,
    StreamAlreadyExists,
    StreamDoesNotExist,
)

from audit_logging.errors import AuditLoggingError
from audit_logging.settings import Settings

# Stream argument -> the setting that chooses it (only these are ever asked for).
SETTING_OF: Final[Mapping[str, str]] = {"max-age": "AUDIT_LOG_STREAM_MAX_AGE"}

_SEE: Final = (
    "`rabbitmqctl list_queues name arguments` shows the stream's arguments; set {settings} "
    "to the stream's {arguments} (if it has one) to silence this warning, or, once every "
    "consumer has read it, delete the stream so that it is created again with the settings' "
    "value (what is left in it is lost)"
)

_warned: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
_warned_lock = threading.Lock()


class StreamClient(Protocol):
    """What both rstream's Producer and Consumer offer."""

    async def create_stream(
        self, stream: str, arguments: dict[str, Any] | None = ..., exists_ok: bool = ...
    ) -> None: ...

    async def stream_exists(self, stream: str, on_close_event: bool = ...) -> bool: ...


class StreamArgumentsRefusedError(AuditLoggingError):
    """The stream does not exist and the broker refuses to create it with these arguments."""


def wanted_arguments(settings: Settings) -> dict[str, str]:
    """The arguments a stream is created with, by rstream's names (without ``x-``)."""
    return {"max-age": settings.stream_max_age}


def _named(arguments: Mapping[str, str]) -> str:
    return ", ".join(
        f"{SETTING_OF.get(key, key)}={value!r} (x-{key})" for key, value in arguments.items()
    )


def _first_time(stream: str, arguments: Mapping[str, str]) -> bool:
    key = (stream, tuple(sorted(arguments.items())))
    with _warned_lock:
        if key in _warned:
            return False
        _warned.add(key)
        return True


async def ensure_stream(
    client: StreamClient,
    stream: str,
    arguments: Mapping[str, str],
    log: logging.Logger,
    *,
    create: bool = True,
) -> None:
    """Make sure ``stream`` exists: create it with ``arguments``, or use it as it is.

    An existing stream whose arguments differ is used unchanged, with one warning per process
    naming the setting and both values where the broker can tell. With ``create=False`` (a
    consumer) a missing stream raises rstream's ``StreamDoesNotExist`` instead of being
    created. Connection errors propagate; :class:`StreamArgumentsRefusedError` when the stream is
    missing and the broker refuses the arguments themselves.
    """
    wanted = dict(arguments)
    if not create and not await client.stream_exists(stream):
        raise StreamDoesNotExist(f"stream {stream!r} does not exist")
    try:
        # The check is a create (the protocol has no other): a consumer only gets here for a
        # stream that exists, so at worst it re-creates one deleted in between, as asked.
        await client.create_stream(stream, wanted, exists_ok=False)
    except StreamAlreadyExists:
        return  # the broker found the arguments equal
    except AccessRefused:
        # No "configure" permission: fine for a stream an operator created, nothing to check.
        if not await client.stream_exists(stream):
            raise
        if _first_time(stream, wanted):
            log.info(
                "RabbitMQ stream %r: this user may not create streams, so whether its "
                "arguments match %s is not checked; the stream is used as it is",
                stream,
                _named(wanted),
            )
        return
    except PreconditionFailed:
        if not await client.stream_exists(stream):
            raise StreamArgumentsRefusedError(
                f"RabbitMQ refuses to create stream {stream!r} with {_named(wanted)}"
            ) from None
        if not _first_time(stream, wanted):
            return
        # No second create to learn more (one without arguments would tell "none"): if the
        # stream were deleted in between, that create would make it without retention.
        existing = (
            "not reported by RabbitMQ's stream protocol; the broker refused the value "
            "asked for as different from the existing stream's (or the stream has "
            "arguments the settings do not set, or none)"
        )
        settings = " / ".join(SETTING_OF.get(key, f"x-{key}") for key in wanted)
        names = " / ".join(f"x-{key}" for key in wanted)
        log.warning(
            "RabbitMQ stream %r already exists with other arguments than the settings ask "
            "for, and is used as it is (its own retention applies): asked for %s; the "
            "stream's: %s. %s",
            stream,
            _named(wanted),
            existing,
            _SEE.format(settings=settings, arguments=names),
        )

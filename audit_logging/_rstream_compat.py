"""Every workaround for rstream's behaviour the publisher needs, in one place.

Written for rstream 1.1.1 (``rstream>=1.1.1`` in pyproject.toml; earlier releases lose
publisher confirms). When a newer release fixes one of these, its workaround goes here first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Final

from rstream import Producer
from rstream.recovery import RecoveryStrategy

from audit_logging.settings import Settings

WRITTEN_FOR: Final = "1.1.1"


class NoRecovery(RecoveryStrategy):
    """We reconnect ourselves, so that what was in flight is resent in id order.
    (rstream's BackOffRecoveryStrategy(False) would also do nothing, but it says so through
    the root logging functions, which configure the app's root logger with
    logging.basicConfig as a side effect.)"""

    def __init__(self) -> None:
        super().__init__(enable=False)

    async def recover(self, *args: Any, **kwargs: Any) -> None:
        return None


class _CancelledCloseFilter(logging.Filter):
    """rstream 1.1.1's ``Producer.close`` logs a traceback at ERROR when its
    ``delete_publisher`` call is cancelled: by our close deadline, or by the publisher's loop
    cancelling what is left as it ends (the app is shutting down). The connection goes
    anyway and everything unconfirmed is already in the spool, so the app's stderr must not
    show a traceback for it; it goes to our logger at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, asyncio.CancelledError):
            _log.debug("rstream: %s (cancelled at shutdown)", record.getMessage())
            return False
        return True


_log = logging.getLogger("audit_logging.publisher")
# Once, when the publisher's rstream code is first imported.
logging.getLogger("rstream.producer").addFilter(_CancelledCloseFilter())


def new_producer(
    settings: Settings, connection_name: str, on_closed: Callable[[Any], None] | None = None
) -> Producer:
    """An rstream Producer for ``settings``' broker that never reconnects by itself."""
    options: dict[str, Any] = {}
    if on_closed is not None:
        options["on_close_handler"] = on_closed
    return Producer(
        **settings.stream_client_args(),
        connection_name=connection_name,
        recovery_strategy=NoRecovery(),
        **options,
    )


async def close_quietly(producer: Any) -> None:
    clients = _clients_of(producer)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.close(), 3.0)
    # rstream 1.1.1 leaves the socket of a connection that broke open (Client.close skips
    # it): close what is left ourselves, or every outage leaks a file descriptor.
    for client in clients:
        writer = getattr(getattr(client, "_conn", None), "_writer", None)
        if writer is not None and not writer.transport.is_closing():
            writer.close()


def _clients_of(producer: Any) -> list[Any]:
    pool = getattr(getattr(producer, "_pool", None), "_clients", {})
    found = [client for group in pool.values() for client in group]
    found.extend(getattr(producer, "_clients", {}).values())
    default = getattr(producer, "_default_client", None)
    if default is not None:
        found.append(default)
    return found


"""The publisher's event loop: rstream's background tasks report to our logger, never to
the app's stderr.

rstream runs a listener and a heartbeat task per connection; when a broker hangs up or
answers garbage, those tasks end in errors nobody awaits, and asyncio's default handler
prints them ("Task exception was never retrieved", "Exception in callback") through the
``asyncio`` logger, which an app without logging set up sends to stderr. The link already
reports every connection problem in its own words, so these go to the library's logger at
debug level.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

logger = logging.getLogger("audit_logging.publisher")


def new_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(_on_loop_error)
    return loop


def _on_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    error = context.get("exception")
    detail = f"{type(error).__name__}: {error}" if error is not None else ""
    logger.debug("RabbitMQ client background error: %s %s",
                 context.get("message", ""), detail[:300])


def finish_tasks(loop: asyncio.AbstractEventLoop, timeout: float = 1.0) -> None:
    """Before the loop closes: cancel what rstream left running and retrieve every task's
    outcome, so none is reported as never retrieved when it is collected."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.wait(pending, timeout=timeout))
    for task in pending:
        if task.done() and not task.cancelled():
            task.exception()

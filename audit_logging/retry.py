"""Waiting out an unreachable service: back off, say every 10 s what we wait for.

The consumer never drops a batch because a sink is down; it keeps the batch, does not
advance the offset, and retries until the sink answers again. Only shutdown (its deadline
passed, or a second signal) ends the wait, through :class:`AbandonedError`. A command run by
hand or by cron (the archive's ``reindex``) gives up after a while instead (``give_up_after``),
so a dead service ends it with a message rather than hanging it.

The defaults are the consumer's, whose waits these mostly are: its logger, and its words for
what waiting costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Final

from audit_logging.errors import AuditLoggingError

_log = logging.getLogger("audit_logging.consumer")
REPORT_EVERY: Final = 10.0
CONSUMER_MEANWHILE: Final = "the batch is kept and the offset not advanced"


class AbandonedError(AuditLoggingError):
    """Shutdown gave up on a write that kept failing; its batch stays unacknowledged."""


class Waiter:
    """One retry loop's state. Call :meth:`failed` after each failed attempt (it sleeps) and
    :meth:`succeeded` once the call went through."""

    def __init__(
        self,
        what: str,
        abandon: threading.Event | None = None,
        *,
        initial: float = 0.25,
        maximum: float = 5.0,
        report_every: float = REPORT_EVERY,
        give_up_after: float | None = None,
        log: logging.Logger = _log,
        meanwhile: str = CONSUMER_MEANWHILE,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        """``give_up_after``: seconds of failing without a success after which :meth:`failed`
        raises :class:`AbandonedError` (None: wait until ``abandon`` is set). ``on_retry``:
        called at each failed attempt (the consumer counts them)."""
        self.what = what
        # Only failed() and check() read it: a coroutine's pause() ends on its own event.
        self._abandon = abandon if abandon is not None else threading.Event()
        self._initial = initial
        self._maximum = maximum
        self._report_every = report_every
        self._delay = initial
        self._since: float | None = None
        self._reported_at = 0.0
        self._give_up_after = give_up_after
        self._log = log
        self._meanwhile = meanwhile
        self._on_retry = on_retry
        self.attempts = 0

    def failed(self, reason: str) -> None:
        """For a worker thread: sleep the next delay; shutdown giving up ends it early."""
        if self._abandon.wait(self._next_delay(reason)):
            raise AbandonedError(f"gave up waiting for {self.what} ({reason})")
        waited = time.monotonic() - (self._since or time.monotonic())
        if self._give_up_after is not None and waited >= self._give_up_after:
            raise AbandonedError(f"gave up waiting for {self.what} after {waited:.0f} s ({reason})")

    async def pause(self, reason: str, until: asyncio.Event) -> None:
        """For a coroutine: the same back-off on the event loop, no worker thread; it ends
        early when ``until`` is set (the caller's loop then sees why and stops)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(until.wait(), self._next_delay(reason))

    def _next_delay(self, reason: str) -> float:
        now = time.monotonic()
        self.attempts += 1
        if self._on_retry is not None:
            self._on_retry()
        if self._since is None:
            self._since = now
            self._reported_at = now
            self._log.warning("waiting for %s: %s; %s", self.what, reason, self._meanwhile)
        elif now - self._reported_at >= self._report_every:
            self._reported_at = now
            self._log.warning(
                "still waiting for %s after %.0f s: %s", self.what, now - self._since, reason
            )
        # Full jitter keeps several retry loops from hammering a recovering service in step.
        delay = random.uniform(self._delay / 2, self._delay)  # noqa: S311 - not cryptographic
        self._delay = min(self._maximum, self._delay * 2)
        return delay

    def succeeded(self) -> None:
        if self._since is not None:
            self._log.warning(
                "%s answers again after %.1f s; resuming", self.what, time.monotonic() - self._since
            )
        self._since = None
        self._delay = self._initial

    def check(self) -> None:
        """Raise :class:`AbandonedError` if shutdown gave up; for loops that make progress."""
        if self._abandon.is_set():
            raise AbandonedError(f"gave up waiting for {self.what}")


async def sleep_or_stop(wait: Awaitable[object], stopping: asyncio.Event) -> None:
    """Wait for ``wait`` (a retry's sleep in a worker thread, say) or for ``stopping``,
    whichever comes first; re-raise what ``wait`` raised."""
    waiting = asyncio.ensure_future(wait)
    stop = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    if not waiting.done():
        # A thread ends by itself at its next wake-up; nothing waits for it.
        waiting.cancel()
    elif (error := waiting.exception()) is not None:
        raise error

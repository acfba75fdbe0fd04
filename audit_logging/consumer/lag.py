"""The consumer's lag on each stream it is active on, in messages and in seconds.

Every ``LAG_EVERY`` seconds, on a connection of its own (a plain subscription, no name, so
the group's single-active-consumer never sees it), it asks where each stream ends
(:func:`audit_logging.stream_end.stream_end`: the newest *record*, never an offset-tracking
entry) and compares that with the last offset the service made durable in both sinks (its
offset is stored right after):

* ``lag_messages`` = end offset - last offset processed, 0 when caught up. The offsets
  between also count the offset-tracking entries written meanwhile (one per stored batch, of
  any consumer name), so a consumer that is behind reads a little more than the records it
  has left; a caught-up one reads exactly 0.
* ``lag_seconds`` = now - broker time of the oldest record not yet processed (its chunk's
  timestamp), 0 when caught up. That record is the first of the batch being archived or
  filled if the consumer has read it; otherwise it is read here, at its offset. If that read
  fails the newest record's time is used, which makes the figure a lower bound.

Records read but not yet in a closed batch are not processed: on a quiet stream a batch waits
up to ``AUDIT_LOG_FLUSH_INTERVAL``, and the lag shows that wait. A stream this process is a
standby on has no lag series here (the active member reports it), so ``max by (stream)``
over the group is the group's lag.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from rstream import (
    Consumer,
)
from rstream.recovery import BackOffRecoveryStrategy

from audit_logging.stream_end import first_record_from, stream_ends

if TYPE_CHECKING:
    from audit_logging.consumer.metrics import PrometheusRecorder, Watched
    from audit_logging.settings import Settings

LAG_EVERY: Final = 3.0
_ROUND_TIMEOUT: Final = 20.0
_log = logging.getLogger("audit_logging.consumer")


def lag_of(end_offset: int | None, processed: int | None) -> int:
    """Messages between the last one processed (None: none yet) and the stream's end."""
    if end_offset is None:
        return 0
    return max(0, end_offset - (-1 if processed is None else processed))


class LagWatch:
    """Keeps the lag gauges of ``services()`` current while it runs."""

    def __init__(
        self,
        settings: Settings,
        services: Callable[[], Sequence[Watched]],
        recorder: PrometheusRecorder,
        every: float = LAG_EVERY,
    ) -> None:
        self._settings = settings
        self._services = services
        self._recorder = recorder
        self._every = every
        self._reported: set[str] = set()

    async def run(self) -> None:
        consumer: Consumer | None = None
        try:
            while True:
                active = [service for service in self._services() if service.active]
                self._forget(active)
                if active:
                    try:
                        if consumer is None:
                            consumer = self._connect()
                            await asyncio.wait_for(consumer.start(), 10)
                        await asyncio.wait_for(self._refresh(consumer, active), _ROUND_TIMEOUT)
                    except Exception as exc:  # noqa: BLE001 - the broker's news: try again
                        _log.debug("could not measure the lag: %r", exc)
                        await _close(consumer)
                        consumer = None
                await asyncio.sleep(self._every)
        finally:
            await _close(consumer)

    def _connect(self) -> Consumer:
        return Consumer(
            **self._settings.stream_client_args(),
            connection_name="audit-logging-consumer lag",
            recovery_strategy=BackOffRecoveryStrategy(False),
        )

    def _forget(self, active: Sequence[Watched]) -> None:
        """No lag series for a stream we are not active on (any more)."""
        keep = {service.stream for service in active}
        for stream in self._reported - keep:
            for gauge in (self._recorder.lag_messages, self._recorder.lag_seconds):
                with contextlib.suppress(KeyError):
                    gauge.remove(stream)
        self._reported &= keep

    async def _refresh(self, consumer: Consumer, active: Sequence[Watched]) -> None:
        ends = await stream_ends(consumer, [service.stream for service in active])
        for service in active:
            end = ends[service.stream]
            processed = service.committed
            messages = lag_of(None if end is None else end.offset, processed)
            seconds = 0.0
            if end is not None and messages:
                oldest = service.oldest_unprocessed_timestamp()
                if oldest is None:
                    after = None if processed is None else processed + 1
                    first = await first_record_from(consumer, service.stream, after)
                    oldest = None if first is None else first[1]
                seconds = max(0.0, time.time() - (end.timestamp if oldest is None else oldest))
            if not service.active:
                continue  # stepped down meanwhile: _forget removes it next round
            self._recorder.lag_messages.labels(service.stream).set(messages)
            self._recorder.lag_seconds.labels(service.stream).set(seconds)
            self._reported.add(service.stream)


async def _close(consumer: Consumer | None) -> None:
    if consumer is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(consumer.close(), 5)


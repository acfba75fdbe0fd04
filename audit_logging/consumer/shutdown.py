"""What a consumer service hands its parts: which stream it reads, and how it shuts down."""

from __future__ import annotations

import asyncio
import dataclasses
import threading


@dataclasses.dataclass(frozen=True)
class StreamPlace:
    """The stream one service reads: a single stream, or one partition of a super stream."""

    stream: str
    super_stream: str | None = None

    @property
    def where(self) -> str:
        """For log lines: "stream 'x'" or "partition 'x-0' of super stream 'x'"."""
        if self.super_stream is None:
            return f"stream '{self.stream}'"
        return f"partition '{self.stream}' of super stream '{self.super_stream}'"


@dataclasses.dataclass(frozen=True, eq=False)
class Shutdown:
    """A service's two shutdown stages, for its coroutines and its worker threads alike.

    ``stopping``: stop reading, flush what was read, store the offset. Giving up (a second
    signal, the shutdown deadline, a fault) ends every wait on a sink at once, leaving the
    batch unacknowledged: coroutines see it as ``abandoned``, worker threads (which cannot
    await) as ``abandon``. Only :meth:`give_up` and :meth:`end_threads` set them, so the
    two never disagree about a give-up."""

    stopping: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    abandoned: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    abandon: threading.Event = dataclasses.field(default_factory=threading.Event)

    def give_up(self) -> None:
        self.stopping.set()
        self.abandoned.set()
        self.abandon.set()

    def end_threads(self) -> None:
        """The service is done: a worker thread still retrying stops at its next wake-up."""
        self.abandon.set()

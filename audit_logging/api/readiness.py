"""Whether the API can answer, for ``/readyz``: each dependency it reads, checked within a
bounded time.

A dependency that hangs must neither hang the answer nor pile up checks behind it: each has at
most one check in flight, an answer waits at most :data:`PROBE_SECONDS` for it, and a result
is reused for :data:`FRESH_SECONDS`, so a flood of unauthenticated ``/readyz`` requests costs
each dependency one request a second at most. What went wrong goes to the log, once per
change; the answer holds only a fixed word per dependency.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Final

from audit_logging.errors import describe_error

if TYPE_CHECKING:
    from opensearchpy import AsyncOpenSearch

    from audit_logging.settings import Settings

_log = logging.getLogger("audit_logging.api")

OK: Final = "ok"
UNREACHABLE: Final = "unreachable"
TIMEOUT: Final = "timeout"
STATES: Final = (OK, UNREACHABLE, TIMEOUT)
PROBE_SECONDS: Final = 2.0
FRESH_SECONDS: Final = 1.0

Check = Callable[[], Awaitable[None]]  # returns when the dependency answers, else raises


class Probe:
    """One dependency's check, bounded in time and never more than one in flight."""

    def __init__(
        self,
        name: str,
        check: Check,
        *,
        seconds: float = PROBE_SECONDS,
        fresh: float = FRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._check = check
        self.seconds = seconds
        self.fresh = fresh
        self._clock = clock
        self._task: asyncio.Task[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last: tuple[str, float] | None = None
        self._reported = OK

    async def state(self) -> str:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a task of another (ended) loop can never be awaited here
            self._task, self._last, self._loop = None, None, loop
        if self._last is not None and self._clock() - self._last[1] < self.fresh:
            return self._last[0]
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        try:
            # Shielded: a caller that gives up leaves the check to finish for the next one.
            return await asyncio.wait_for(asyncio.shield(self._task), self.seconds + 0.5)
        except TimeoutError:
            return TIMEOUT

    async def _run(self) -> str:
        problem = ""
        try:
            await asyncio.wait_for(self._check(), self.seconds)
            state = OK
        except TimeoutError:
            state, problem = TIMEOUT, f"no answer within {self.seconds:g} s"
        except Exception as exc:  # noqa: BLE001 - whatever fails, the dependency is not usable
            state, problem = UNREACHABLE, describe_error(exc)
        self._last = (state, self._clock())
        if state != self._reported:
            if state == OK:
                _log.info("readiness: %s answers again", self.name)
            else:
                _log.warning("readiness: %s is %s: %s", self.name, state, problem)
            self._reported = state
        return state


class Readiness:
    """The probes of every dependency the API reads, run side by side."""

    def __init__(self, probes: Mapping[str, Probe], close: Callable[[], None] = lambda: None):
        self.probes = dict(probes)
        self._close = close

    async def check(self) -> dict[str, str]:
        """Each dependency's state (one of :data:`STATES`)."""
        states = await asyncio.gather(*(probe.state() for probe in self.probes.values()))
        return dict(zip(self.probes, states, strict=True))

    def close(self) -> None:
        self._close()


def opensearch_check(client: AsyncOpenSearch) -> Check:
    async def check() -> None:
        # info (GET /) rather than ping (HEAD /): it raises with the cluster's reason, for
        # the log, where ping answers a bare False.
        await client.info(request_timeout=PROBE_SECONDS)

    return check


class S3Check:
    """The archive's bucket answers (HeadBucket through pyarrow, as the archive is read).

    pyarrow blocks, so the request runs in a thread of its own: one thread, and a new request
    only once the last has returned, however long S3 hangs (its own timeouts end it)."""

    def __init__(self, settings: Settings) -> None:
        from audit_logging.archive.store import s3_filesystem

        bucket = settings.s3_bucket
        assert bucket is not None
        self.bucket = bucket
        self._fs = s3_filesystem(
            settings, connect_timeout=PROBE_SECONDS, request_timeout=PROBE_SECONDS, attempts=1
        )
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="readyz-s3")
        self._pending: concurrent.futures.Future[None] | None = None

    async def __call__(self) -> None:
        if self._pending is None or self._pending.done():
            self._pending = self._thread.submit(self._head_bucket)
        await asyncio.shield(asyncio.wrap_future(self._pending))

    def _head_bucket(self) -> None:
        from pyarrow.fs import FileType

        if self._fs.get_file_info(self.bucket).type == FileType.NotFound:
            raise LookupError(f"bucket {self.bucket!r} does not exist")

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)


def readiness(client: AsyncOpenSearch, settings: Settings, *, archive: bool) -> Readiness:
    """OpenSearch, and the archive's S3 when the API reads it (``archive``)."""
    probes = {"opensearch": Probe("opensearch", opensearch_check(client))}
    if not archive:
        return Readiness(probes)
    s3 = S3Check(settings)
    probes["s3"] = Probe("s3", s3)
    return Readiness(probes, close=s3.close)

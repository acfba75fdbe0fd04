"""The ASGI middleware drains the audit handlers at the end of the app's lifespan, before
the server hears that shutdown is complete (under ``uvicorn --workers`` the worker process
ends right after, without running atexit)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette

from audit_logging.errors import ConfigurationError
from audit_logging.handlers.handler import AuditHandler
from audit_logging.middleware import AuditMiddleware
from audit_logging.publisher import Encode
from audit_logging.settings import Settings
from tests.middleware._drive import SETTINGS

audit = logging.getLogger("audit")


class SlowTransport:
    """Confirms records only when flushed, and says when that happened."""

    events: list[str]

    def __init__(self, settings: Settings, encode: Encode) -> None:
        self.encode = encode
        self.pending = 0
        self.flushes: list[float] = []
        self.fail = False
        self.keep = 0  # records that stay unconfirmed, whatever the flush

    def submit(self, item: Any) -> None:
        self.encode(item)
        self.pending += 1

    def flush(self, timeout: float) -> int:
        assert threading.current_thread() is not threading.main_thread(), "blocks the loop"
        self.flushes.append(timeout)
        SlowTransport.events.append(f"flush({self.pending})")
        if self.fail:
            raise RuntimeError("transport broke")
        self.pending = self.keep
        return self.pending

    def close(self, timeout: float) -> int:
        return 0

    def stats(self) -> dict[str, int]:
        return {"pending": self.pending}


@contextlib.contextmanager
def slow_handler() -> Iterator[SlowTransport]:
    SlowTransport.events = []
    handler = AuditHandler(settings=SETTINGS, transport_factory=SlowTransport)
    audit.handlers[:] = [handler]
    audit.setLevel(logging.INFO)
    transport = handler.transport
    assert isinstance(transport, SlowTransport)
    yield transport


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    for i in range(3):  # shutdown handlers may still audit
        audit.info("stopped", extra={"action": "STOP", "object_id": str(i)})


async def run_lifespan(app: Any) -> list[str]:
    """Drive the lifespan protocol as a server does; the messages the server got."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for message in ("lifespan.startup", "lifespan.shutdown"):
        inbox.put_nowait({"type": message})

    async def send(message: Any) -> None:
        SlowTransport.events.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, send)
    return SlowTransport.events


def test_shutdown_drains_before_the_server_is_told_it_is_complete() -> None:
    app = AuditMiddleware(Starlette(lifespan=lifespan), settings=SETTINGS, drain_at_shutdown=2.5)
    with slow_handler() as transport:
        events = asyncio.run(run_lifespan(app))
    assert events == [
        "lifespan.startup.complete", "flush(3)", "lifespan.shutdown.complete"]
    assert transport.flushes == [2.5]
    assert transport.pending == 0


def test_zero_turns_the_drain_off() -> None:
    app = AuditMiddleware(Starlette(lifespan=lifespan), settings=SETTINGS, drain_at_shutdown=0)
    with slow_handler() as transport:
        events = asyncio.run(run_lifespan(app))
    assert events == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert transport.flushes == []


def test_what_stays_unconfirmed_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    app = AuditMiddleware(Starlette(lifespan=lifespan), settings=SETTINGS)
    with slow_handler() as transport, caplog.at_level(logging.WARNING, "audit_logging"):
        transport.keep = 2
        events = asyncio.run(run_lifespan(app))
    assert events[-1] == "lifespan.shutdown.complete"
    assert "2 audit records were not confirmed within 5.0 s" in caplog.text


def test_a_failing_drain_does_not_fail_the_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    app = AuditMiddleware(Starlette(lifespan=lifespan), settings=SETTINGS)
    with slow_handler() as transport, caplog.at_level(logging.ERROR, "audit_logging"):
        transport.fail = True
        events = asyncio.run(run_lifespan(app))
    assert events[-1] == "lifespan.shutdown.complete"
    assert "Draining the audit handlers at shutdown failed" in caplog.text


@pytest.mark.parametrize("bad", [-1.0, float("inf"), float("nan")])
def test_a_bad_drain_time_is_named(bad: float) -> None:
    with pytest.raises(ConfigurationError, match="drain_at_shutdown"):
        AuditMiddleware(Starlette(), settings=SETTINGS, drain_at_shutdown=bad)


def test_records_are_confirmed_by_the_real_broker_when_shutdown_completes(
    settings: Settings,
) -> None:
    """Against RabbitMQ: what the app logged is confirmed before shutdown.complete."""
    seen: dict[str, int] = {}
    handler = AuditHandler(settings=settings)
    audit.handlers[:] = [handler]
    audit.setLevel(logging.INFO)

    @contextlib.asynccontextmanager
    async def busy_lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for i in range(500):
            audit.info("stopped", extra={"action": "STOP", "object_id": str(i)})

    app = AuditMiddleware(Starlette(lifespan=busy_lifespan), settings=settings,
                          session_cookie=None, drain_at_shutdown=30)

    async def run() -> None:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        inbox.put_nowait({"type": "lifespan.startup"})
        inbox.put_nowait({"type": "lifespan.shutdown"})

        async def send(message: Any) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                seen.update(handler.stats())

        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, send)

    try:
        asyncio.run(run())
    finally:
        handler.close(timeout=10)
    assert (seen["published"], seen["pending"]) == (500, 0)


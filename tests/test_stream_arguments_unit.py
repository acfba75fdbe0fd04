"""ensure_stream against a stand-in broker that answers creates as RabbitMQ does (checked
against the real one in tests/handlers/test_stream_arguments.py and
tests/consumer/test_stream_arguments.py): equal arguments -> StreamAlreadyExists, other
arguments (an absent one counts) -> PreconditionFailed."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from rstream.exceptions import (
    AccessRefused,
    PreconditionFailed,
    StreamAlreadyExists,
    StreamDoesNotExist,
)

from audit_logging.errors import AuditLoggingError
from audit_logging.settings import Settings
from audit_logging.stream_arguments import (
    StreamArgumentsRefusedError,
    ensure_stream,
    wanted_arguments,
)
from tests._stack import unique

LOGGER = "tests.stream_arguments"


class FakeBroker:
    def __init__(self, *, may_create: bool = True, refuses: bool = False) -> None:
        self.streams: dict[str, dict[str, str]] = {}
        self.may_create = may_create
        self.refuses = refuses
        self.creates: list[tuple[str, dict[str, str]]] = []

    async def create_stream(
        self, stream: str, arguments: dict[str, Any] | None = None, exists_ok: bool = False
    ) -> None:
        wanted = {key: str(value) for key, value in (arguments or {}).items()}
        self.creates.append((stream, wanted))
        if not self.may_create:
            raise AccessRefused()
        if stream in self.streams:
            if self.streams[stream] != wanted:
                raise PreconditionFailed()
            if not exists_ok:
                raise StreamAlreadyExists()
            return
        if self.refuses:
            raise PreconditionFailed()
        self.streams[stream] = wanted

    async def stream_exists(self, stream: str, on_close_event: bool = False) -> bool:
        return stream in self.streams


def run(broker: FakeBroker, stream: str, arguments: dict[str, str], **kw: Any) -> None:
    asyncio.run(ensure_stream(broker, stream, arguments, logging.getLogger(LOGGER), **kw))


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_arguments_come_from_the_settings() -> None:
    assert wanted_arguments(Settings(stream_max_age="36h")) == {"max-age": "36h"}


def test_a_missing_stream_is_created_with_the_wanted_arguments(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, name = FakeBroker(), unique("s")
    run(broker, name, {"max-age": "7D"})
    assert broker.streams == {name: {"max-age": "7D"}}
    assert warnings_of(caplog) == []


def test_an_equal_stream_is_used_silently(caplog: pytest.LogCaptureFixture) -> None:
    broker, name = FakeBroker(), unique("s")
    broker.streams[name] = {"max-age": "7D"}
    run(broker, name, {"max-age": "7D"})
    run(broker, name, {"max-age": "7D"}, create=False)
    assert warnings_of(caplog) == []


def test_other_arguments_are_used_as_they_are_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, name = FakeBroker(), unique("s")
    broker.streams[name] = {"max-age": "1h"}
    for _ in range(5):  # every reconnect checks again; the warning is said once
        run(broker, name, {"max-age": "2h"})
    run(broker, name, {"max-age": "2h"}, create=False)
    assert broker.streams == {name: {"max-age": "1h"}}
    [warning] = warnings_of(caplog)
    assert name in warning
    assert "AUDIT_LOG_STREAM_MAX_AGE='2h'" in warning
    assert "used as it is" in warning
    assert "refused" in warning and "rabbitmqctl list_queues name arguments" in warning


def test_a_stream_without_arguments_is_named_as_such(caplog: pytest.LogCaptureFixture) -> None:
    broker, name = FakeBroker(), unique("s")
    broker.streams[name] = {}
    run(broker, name, {"max-age": "7D"})
    assert broker.streams == {name: {}}
    [warning] = warnings_of(caplog)
    assert "AUDIT_LOG_STREAM_MAX_AGE='7D'" in warning
    assert "refused" in warning and "used as it is" in warning


def test_a_consumer_never_creates_the_stream() -> None:
    broker, name = FakeBroker(), unique("s")
    with pytest.raises(StreamDoesNotExist):
        run(broker, name, {"max-age": "7D"}, create=False)
    assert broker.creates == [] and broker.streams == {}


def test_arguments_refused_for_a_new_stream_raise_an_error_naming_the_setting() -> None:
    broker, name = FakeBroker(refuses=True), unique("s")
    with pytest.raises(StreamArgumentsRefusedError) as caught:
        run(broker, name, {"max-age": "7D"})
    assert isinstance(caught.value, AuditLoggingError)
    assert "AUDIT_LOG_STREAM_MAX_AGE='7D'" in str(caught.value) and name in str(caught.value)


def test_without_permission_to_create_an_existing_stream_is_used(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    broker, name = FakeBroker(may_create=False), unique("s")
    broker.streams[name] = {"max-age": "1h"}
    run(broker, name, {"max-age": "2h"}, create=False)
    run(broker, name, {"max-age": "2h"}, create=False)
    assert warnings_of(caplog) == []
    assert [r.levelno for r in caplog.records if r.name == LOGGER] == [logging.INFO]
    del broker.streams[name]
    with pytest.raises(AccessRefused):
        run(broker, name, {"max-age": "2h"})

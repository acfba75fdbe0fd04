"""A stream that already exists with other arguments than the settings ask for, against the
real broker: it is used as it is and one warning names the setting; publishing never stops.

Before the link called audit_logging.stream_arguments.ensure_stream, the broker's
PreconditionFailed made the publisher retry forever and keep everything in the spool.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest
from rstream import Producer
from rstream.exceptions import PreconditionFailed, StreamAlreadyExists

from audit_logging.handlers import AuditHandler
from audit_logging.settings import Settings
from audit_logging.stream_arguments import ensure_stream, wanted_arguments
from tests._stack import broker_version, stream_records

pytestmark = pytest.mark.services
LOGGER = "tests.stream_arguments.publisher"


def _producer(settings: Settings) -> Producer:
    return Producer(**settings.stream_client_args())


async def _create(settings: Settings, arguments: dict[str, str]) -> None:
    async with _producer(settings) as producer:
        await producer.create_stream(settings.rabbitmq_stream_name, arguments=arguments)


def _setting_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "AUDIT_LOG_STREAM_MAX_AGE" in r.getMessage()
    ]


def test_the_broker_answers_as_ensure_stream_expects(settings: Settings) -> None:
    """What the module relies on: equal arguments -> StreamAlreadyExists, another value or
    none at all -> PreconditionFailed; a create with no arguments matches a stream that has
    none (the one existing value the warning can tell)."""

    async def probe() -> list[str]:
        name = settings.rabbitmq_stream_name
        answers = []
        async with _producer(settings) as producer:
            await producer.create_stream(name, arguments={"max-age": "1h"})
            for arguments in ({"max-age": "1h"}, {"max-age": "2h"}, {"max-age": "3600s"}, {}):
                try:
                    await producer.create_stream(name, arguments=arguments)
                except (StreamAlreadyExists, PreconditionFailed) as exc:
                    answers.append(type(exc).__name__)
            await producer.delete_stream(name)
            await producer.create_stream(name, arguments={})
            try:
                await producer.create_stream(name, arguments={})
            except StreamAlreadyExists as exc:
                answers.append(type(exc).__name__)
        return answers

    # The same duration spelt otherwise: RabbitMQ 4.0 compares the text, 4.1 and later the
    # duration. Either way the module uses the stream (it warns for the 4.0 answer).
    same_duration = "StreamAlreadyExists" if broker_version() >= (4, 1) else "PreconditionFailed"
    assert asyncio.run(probe()) == [
        "StreamAlreadyExists",
        "PreconditionFailed",
        same_duration,
        "PreconditionFailed",
        "StreamAlreadyExists",
    ]


def test_ensure_stream_uses_an_existing_stream_with_another_max_age(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    asyncio.run(_create(settings, {"max-age": "1h"}))
    wanted = wanted_arguments(dataclasses.replace(settings, stream_max_age="2h"))

    async def check_twice() -> None:
        async with _producer(settings) as producer:
            for _ in range(2):
                await ensure_stream(
                    producer, settings.rabbitmq_stream_name, wanted, logging.getLogger(LOGGER)
                )

    asyncio.run(check_twice())
    [warning] = _setting_warnings(caplog)
    assert settings.rabbitmq_stream_name in warning and "'2h'" in warning


def test_ensure_stream_names_a_stream_without_retention(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    asyncio.run(_create(settings, {}))

    async def check() -> None:
        async with _producer(settings) as producer:
            await ensure_stream(
                producer,
                settings.rabbitmq_stream_name,
                {"max-age": "7D"},
                logging.getLogger(LOGGER),
            )

    asyncio.run(check())
    [warning] = _setting_warnings(caplog)
    assert "refused" in warning and "used as it is" in warning


def test_a_handler_publishes_to_a_stream_with_another_max_age(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Once failed: PreconditionFailed was taken for an unreachable broker, forever."""
    asyncio.run(_create(settings, {"max-age": "1h"}))
    caplog.set_level(logging.INFO, "audit_logging")
    handler = AuditHandler(settings=dataclasses.replace(settings, stream_max_age="2h"))
    audit = logging.getLogger("audit.stream_arguments")
    audit.addHandler(handler)
    audit.setLevel(logging.INFO)
    audit.propagate = False
    try:
        for i in range(20):
            audit.info("Viewed %d", i, extra={"action": "VIEW", "object_id": f"o{i}"})
        assert handler.flush(timeout=20) == 0, handler.stats()
    finally:
        handler.close(timeout=10)
    records = stream_records(settings, settings.rabbitmq_stream_name, 20)
    assert [r["object_id"] for r in records] == [f"o{i}" for i in range(20)]
    [warning] = _setting_warnings(caplog)
    assert "'2h'" in warning and settings.rabbitmq_stream_name in warning
    assert not [r for r in caplog.records if "unreachable" in r.getMessage()]

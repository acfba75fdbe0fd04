"""The consumer on a stream that exists with another max-age than its settings ask for: it
starts, reads everything and says so once, naming the setting (against the real stack)."""

from __future__ import annotations

import asyncio

import pytest
from rstream import AMQPMessage, ConfirmationStatus, Producer, Properties

from audit_logging.settings import Settings
from tests.consumer._helpers import bodies_of, connect_args, make_records, stored_offset, wait_until
from tests.consumer._sinks import opensearch_ids
from tests.consumer.conftest import StartConsumer

pytestmark = pytest.mark.services
NAME = "audit-logging-consumer"


def publish_to_new_stream(settings: Settings, max_age: str, bodies: list[bytes]) -> None:
    """Create the stream with ``max_age`` (as an operator would) and publish ``bodies``."""

    async def run() -> None:
        confirmed = asyncio.Event()
        pending = len(bodies)

        def on_confirm(status: ConfirmationStatus) -> None:
            nonlocal pending
            assert status.is_confirmed
            pending -= 1
            if pending == 0:
                confirmed.set()

        async with Producer(**connect_args(settings)) as producer:
            await producer.create_stream(
                settings.rabbitmq_stream_name, arguments={"max-age": max_age}
            )
            await producer.send_batch(
                settings.rabbitmq_stream_name,
                [
                    AMQPMessage(body=body, properties=Properties(content_type="application/json"))
                    for body in bodies
                ],
                on_publish_confirm=on_confirm,
            )
            await asyncio.wait_for(confirmed.wait(), 60)

    asyncio.run(run())


def max_age_warnings(log: str) -> list[str]:
    return [line for line in log.splitlines() if "AUDIT_LOG_STREAM_MAX_AGE" in line]


def read_all(
    settings: Settings, start_consumer: StartConsumer, max_age: str, count: int
) -> str:
    records = make_records(count)
    publish_to_new_stream(settings, "1h", bodies_of(records))
    consumer = start_consumer(
        "--batch-size", "100", "--flush-interval", "0.5",
        env={"AUDIT_LOG_STREAM_MAX_AGE": max_age},
    )
    wait_until(
        f"stored offset {count - 1}",
        lambda: stored_offset(settings, NAME),
        lambda value: value == count - 1,
        120,
    )
    assert consumer.stop() == 0, consumer.log()
    assert sorted(opensearch_ids(settings)) == sorted(r["log_id"] for r in records)
    return consumer.log()


def test_the_consumer_reads_a_stream_with_another_max_age_and_warns_once(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    log = read_all(settings, start_consumer, "2h", 50)
    [warning] = max_age_warnings(log)
    assert "WARNING" in warning and settings.rabbitmq_stream_name in warning
    assert "AUDIT_LOG_STREAM_MAX_AGE='2h'" in warning and "used as it is" in warning


def test_the_consumer_says_nothing_when_the_max_age_matches(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    log = read_all(settings, start_consumer, "1h", 10)
    assert max_age_warnings(log) == []


def test_a_consumer_started_first_waits_never_creates_the_stream_then_warns_once(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    consumer = start_consumer(
        "--batch-size", "100", "--flush-interval", "0.5",
        env={"AUDIT_LOG_STREAM_MAX_AGE": "2h"},
    )
    wait_until(
        "the consumer to wait for the stream",
        consumer.log,
        lambda log: "does not exist yet" in log,
        60,
    )

    async def exists() -> bool:
        async with Producer(**connect_args(settings)) as producer:
            found: bool = await producer.stream_exists(settings.rabbitmq_stream_name)
            return found

    # The consumer leaves the stream's creation (and its arguments) to the producer.
    assert not asyncio.run(exists())
    records = make_records(20)
    publish_to_new_stream(settings, "1h", bodies_of(records))
    wait_until(
        "stored offset 19",
        lambda: stored_offset(settings, NAME),
        lambda value: value == 19,
        120,
    )
    assert consumer.stop() == 0, consumer.log()
    assert sorted(opensearch_ids(settings)) == sorted(r["log_id"] for r in records)
    [warning] = max_age_warnings(consumer.log())
    assert "AUDIT_LOG_STREAM_MAX_AGE='2h'" in warning

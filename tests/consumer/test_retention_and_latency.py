"""Index retention at start, and the search latency the contract promises (≤ 2 s)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from opensearchpy.exceptions import TransportError
from rstream import AMQPMessage, Producer, Properties

from audit_logging.record import record_to_json
from audit_logging.settings import Settings
from tests._stack import opensearch_client
from tests.consumer._helpers import (
    STREAM_ARGUMENTS,
    connect_args,
    create_stream,
    make_records,
    wait_until,
)
from tests.consumer.conftest import StartConsumer

pytestmark = [pytest.mark.services]


def _months_ago(today: dt.date, months: int) -> str:
    index = today.year * 12 + today.month - 1 - months
    return f"{index // 12:04d}.{index % 12 + 1:02d}"


def test_retention_deletes_a_13_month_old_index_and_keeps_11_and_12_month_old_ones(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    prefix = settings.opensearch_index_prefix
    today = dt.datetime.now(dt.UTC).date()
    names = {age: f"{prefix}-{_months_ago(today, age)}" for age in (11, 12, 13)}
    unrelated = f"{prefix}-archive"
    client = opensearch_client(settings)
    try:
        for name in [*names.values(), unrelated]:
            client.indices.create(index=name)
        create_stream(settings)
        consumer = start_consumer()
        wait_until(
            "the 13-month-old index to be deleted",
            lambda: bool(client.indices.exists(index=names[13])),
            lambda exists: not exists,
            60,
        )
        assert consumer.stop() == 0, consumer.log()
        assert client.indices.exists(index=names[11])
        assert client.indices.exists(index=names[12])
        assert client.indices.exists(index=unrelated)
        assert f"retention: deleted index {names[13]}" in consumer.log()
    finally:
        client.close()


def test_a_record_is_searchable_within_2_s_of_being_logged_at_low_load(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    create_stream(settings)
    # Default batch size and flush interval: searchability must not wait for a batch.
    consumer = start_consumer()
    client = opensearch_client(settings)
    pattern = f"{settings.opensearch_index_prefix}-*"
    latencies: list[float] = []

    async def log_and_search(records: list[dict[str, object]]) -> None:
        async with Producer(**connect_args(settings)) as producer:
            await producer.create_stream(
                settings.rabbitmq_stream_name, exists_ok=True, arguments=STREAM_ARGUMENTS
            )
            for record in records:
                logged = time.monotonic()
                await producer.send_wait(
                    settings.rabbitmq_stream_name,
                    AMQPMessage(
                        body=record_to_json(record),
                        properties=Properties(content_type="application/json"),
                    ),
                )
                query = {"query": {"term": {"log_id": record["log_id"]}}}
                while True:
                    try:
                        found = await asyncio.to_thread(
                            client.count,
                            index=pattern,
                            body=query,
                            params={"allow_no_indices": "true"},
                        )
                    except TransportError:
                        found = {"count": 0}  # the month's index is still being created
                    if found["count"] == 1:
                        break
                    assert time.monotonic() - logged < 10, "never became searchable"
                    await asyncio.sleep(0.02)
                latencies.append(time.monotonic() - logged)
                await asyncio.sleep(0.7)

    try:
        # The first record also creates the month's index; give the consumer that one.
        asyncio.run(log_and_search(make_records(1)))
        latencies.clear()
        asyncio.run(log_and_search(make_records(8)))
    finally:
        client.close()
    assert consumer.stop() == 0, consumer.log()
    assert max(latencies) <= 2.0, latencies

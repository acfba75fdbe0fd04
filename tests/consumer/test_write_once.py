"""Issue 8, item 2: a log_id is write-once. A message reusing the log_id of a record archived
long ago (out of the duplicate memory, in another month) is dead-lettered as
``duplicate_log_id`` and the first version stays in OpenSearch and S3; the same record sent
again is dropped without a dead letter. Against the real RabbitMQ, OpenSearch and S3."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Iterator

import pytest

from audit_logging.record import format_timestamp, record_to_json
from audit_logging.settings import Settings
from tests._stack import delete_stream, opensearch_client, unique
from tests.consumer._helpers import make_records, publish, wait_for_offset
from tests.consumer._sinks import archived_rows, dead_letters, opensearch_ids
from tests.consumer.conftest import StartConsumer

pytestmark = [pytest.mark.services]
ARGS = ("--batch-size", "100", "--flush-interval", "0.5")


@pytest.fixture
def later_stream(settings: Settings) -> Iterator[Settings]:
    """The same sinks fed by another stream: a consumer that never saw the first records,
    as one long after them would (their log_ids are far out of its duplicate memory)."""
    later = dataclasses.replace(settings, rabbitmq_stream_name=unique("test-stream-later"))
    yield later
    asyncio.run(delete_stream(settings, later.rabbitmq_stream_name))


def test_a_reused_log_id_is_dead_lettered_and_a_resend_dropped(
    settings: Settings, later_stream: Settings, start_consumer: StartConsumer
) -> None:
    # The first versions, logged two months ago (within the index retention).
    then = dt.datetime.now(dt.UTC) - dt.timedelta(days=62)
    first = make_records(3, timestamp=format_timestamp(then))
    publish(settings, [record_to_json(record) for record in first])
    consumer = start_consumer(*ARGS)
    wait_for_offset(settings, 2, timeout=60)
    assert consumer.stop() == 0, consumer.log()

    fresh = make_records(2)
    # Now: the same log_id with other content (this month), and the very same record again.
    reused = {**fresh[0], "log_id": first[0]["log_id"], "user_id": "mallory"}
    resent = first[1]
    bodies = [record_to_json(r) for r in (fresh[1], reused, resent)]
    publish(later_stream, bodies)
    consumer = start_consumer(*ARGS, sinks=later_stream, workdir="later")
    wait_for_offset(later_stream, 2, timeout=60)
    assert consumer.running(), consumer.log()
    assert consumer.stop() == 0, consumer.log()

    [letter] = dead_letters(settings)
    assert letter["stream"] == later_stream.rabbitmq_stream_name and letter["offset"] == 1
    assert letter["code"] == "duplicate_log_id" and letter["stage"] == "dedup"
    assert letter["reason"].startswith("duplicate_log_id:"), letter["reason"]
    assert letter["log_id"] == first[0]["log_id"]

    # One row per log_id in S3, the first version's.
    rows = list(archived_rows(settings))
    counts = Counter(row["log_id"] for row in rows)
    expected = {r["log_id"] for r in [*first, fresh[1]]}
    assert set(counts) == expected and set(counts.values()) == {1}, counts
    [kept] = [row for row in rows if row["log_id"] == first[0]["log_id"]]
    assert kept["user_id"] == first[0]["user_id"]

    # OpenSearch holds each log_id once, the first version.
    assert Counter(opensearch_ids(settings)) == Counter(expected)
    client = opensearch_client(settings)
    try:
        hits = client.search(
            index=f"{settings.opensearch_index_prefix}-*",
            body={"query": {"term": {"log_id": first[0]["log_id"]}}},
        )["hits"]["hits"]
    finally:
        client.close()
    [hit] = hits
    assert hit["_index"].endswith(f"-{then:%Y.%m}")
    assert hit["_source"]["user_id"] == first[0]["user_id"]

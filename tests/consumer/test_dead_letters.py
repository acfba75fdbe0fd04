"""Messages that are not records, and records OpenSearch refuses, go to dead-letter with
the reason; the consumer carries on with everything else."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re

import pytest
from rstream import Producer

from audit_logging.record import format_timestamp, new_log_id
from audit_logging.settings import Settings
from tests._stack import opensearch_client
from tests.consumer._helpers import bodies_of, connect_args, make_records, publish, wait_for_offset
from tests.consumer._sinks import archived_log_ids, dead_letters, opensearch_ids
from tests.consumer.conftest import StartConsumer

pytestmark = [pytest.mark.services]


def _now() -> str:
    import datetime as dt

    return format_timestamp(dt.datetime.now(dt.UTC))


def _publish_raw(settings: Settings, payload: bytes) -> None:
    """A message that is not AMQP 1.0 at all (rstream sends bytes as they are)."""

    async def send() -> None:
        async with Producer(**connect_args(settings)) as producer:
            await producer.send_wait(settings.rabbitmq_stream_name, payload)

    asyncio.run(send())


def test_poison_messages_are_dead_lettered_with_the_reason_and_the_rest_indexed(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    good = make_records(2)
    ids = {"log_id": new_log_id(), "timestamp": _now()}
    poison = {
        "not JSON": b"this is not json",
        "not UTF-8": b'{"action": "\xff\xfe"}',
        "no action": json.dumps(ids).encode(),
        # Over MAX_RECORD_BYTES (512 KiB). It is larger than the broker's default 1 MiB
        # frame_max too: this RabbitMQ (3.10) takes it from a producer that asks for a
        # larger frame; a broker that refused it would never deliver it at all.
        "too large": json.dumps(
            {**ids, "action": "CREATE", "extra": {"blob": "x" * 2_000_000}}
        ).encode(),
        "wrong type": json.dumps({**ids, "action": "CREATE", "username": ["a", "list"]}).encode(),
    }
    bodies = [bodies_of(good)[0], *poison.values(), bodies_of(good)[1]]
    publish(settings, bodies, chunk=1, frame_max=8 * 1024 * 1024)
    _publish_raw(settings, b"hello, not AMQP")

    consumer = start_consumer("--batch-size", "100", "--flush-interval", "1")
    wait_for_offset(settings, len(bodies), timeout=60)
    assert consumer.running(), consumer.log()
    assert consumer.stop() == 0, consumer.log()

    expected_ids = {record["log_id"] for record in good}
    assert set(opensearch_ids(settings)) == expected_ids
    assert sorted(archived_log_ids(settings)) == sorted(expected_ids)

    letters = {entry["offset"]: entry for entry in dead_letters(settings)}
    assert sorted(letters) == [1, 2, 3, 4, 5, 7]
    reasons = {
        1: "is not JSON",
        2: "is not valid UTF-8",
        3: "'action': is required",
        4: "over the 524288 limit",
        5: "'username': must be a string, got list",
        7: "not an AMQP 1.0 message",
    }
    for offset, fragment in reasons.items():
        entry = letters[offset]
        assert fragment in entry["reason"], entry["reason"]
        assert entry["stage"] == "decode"
        assert entry["stream"] == settings.rabbitmq_stream_name
        kept = base64.b64decode(entry["body_base64"])
        assert entry["body_sha256"] == hashlib.sha256(kept).hexdigest() or entry["body_truncated"]
    for offset, body in zip(
        [1, 2, 3, 5],
        [poison[k] for k in ("not JSON", "not UTF-8", "no action", "wrong type")],
        strict=True,
    ):
        assert base64.b64decode(letters[offset]["body_base64"]) == body
    big = letters[4]
    assert big["body_bytes"] == len(poison["too large"]) and big["body_truncated"] is True
    assert big["body_sha256"] == hashlib.sha256(poison["too large"]).hexdigest()
    assert re.search(r"\b6 dead-lettered", consumer.log()), consumer.log()


def test_a_record_opensearch_refuses_is_dead_lettered_and_still_archived(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    # Valid as a record, but its month's index was created by hand with user_id as a number
    # (records before 1970, the earlier example, are now refused by the decoder).
    import datetime as dt

    then = dt.datetime.now(dt.UTC) - dt.timedelta(days=150)
    refused = make_records(1, timestamp=format_timestamp(then))[0]
    client = opensearch_client(settings)
    try:
        client.indices.create(
            index=f"{settings.opensearch_index_prefix}-{then:%Y.%m}",
            body={"mappings": {"properties": {"user_id": {"type": "long"}}}},
        )
    finally:
        client.close()
    good = make_records(3)
    publish(settings, bodies_of([good[0], refused, *good[1:]]))

    consumer = start_consumer("--batch-size", "100", "--flush-interval", "1")
    wait_for_offset(settings, 3, timeout=60)
    assert consumer.stop() == 0, consumer.log()

    assert set(opensearch_ids(settings)) == {record["log_id"] for record in good}
    # S3 is the source of truth: the record is archived all the same.
    assert sorted(archived_log_ids(settings)) == sorted(
        record["log_id"] for record in [*good, refused]
    )
    [letter] = dead_letters(settings)
    assert letter["offset"] == 1 and letter["stage"] == "index"
    assert letter["log_id"] == refused["log_id"]
    assert "OpenSearch refused it (HTTP 400)" in letter["reason"], letter["reason"]
    assert json.loads(base64.b64decode(letter["body_base64"]))["log_id"] == refused["log_id"]

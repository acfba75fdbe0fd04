"""Faults around the consumer process: a sink unreachable for 30 s, the RabbitMQ connection
cut, SIGTERM mid-batch. Nothing is lost, nothing is written twice, the offset waits."""

from __future__ import annotations

import dataclasses
import re
import signal
import time

import pytest

from audit_logging.settings import Settings
from tests._ports import cut_own_connections, own_connections
from tests._proxy import tcp_proxy
from tests._stack import opensearch_client
from tests.consumer._helpers import (
    NAME,
    PacedPublisher,
    bodies_of,
    create_stream,
    make_records,
    publish_records,
    stored_offset,
    wait_until,
)
from tests.consumer._sinks import archived_log_ids, assert_exactly_once, opensearch_count
from tests.consumer.conftest import StartConsumer


def wait_for_sinks(settings: Settings, count: int, timeout: float) -> None:
    """Until both sinks hold ``count`` records. (Publishing while the consumer stores offsets
    makes the last offset unknowable: the broker's offset-tracking entries take offsets.)"""
    wait_until(
        f"{count} records in OpenSearch and S3",
        lambda: (opensearch_count(settings), len(archived_log_ids(settings))),
        lambda counts: counts == (count, count),
        timeout,
    )


def wait_for_first_batches(settings: Settings, offset: int) -> None:
    """Until the consumer stored ``offset`` or a later one: it is reading and archiving."""
    wait_until(
        "the first batches",
        lambda: stored_offset(settings, NAME),
        lambda stored: stored is not None and stored >= offset,
        60,
    )


pytestmark = [pytest.mark.services, pytest.mark.slow]
OUTAGE = 30.0


@pytest.mark.parametrize("sink", ["opensearch", "s3"])
def test_a_sink_unreachable_for_30_s_loses_nothing_and_holds_the_offset(
    sink: str, settings: Settings, start_consumer: StartConsumer
) -> None:
    records = make_records(12_000)
    create_stream(settings)
    if sink == "opensearch":
        target = (settings.opensearch_host, settings.opensearch_port)
    else:
        endpoint = settings.require("aws_endpoint_url_s3").split("://", 1)[1]
        host, _, port = endpoint.partition(":")
        target = (host, int(port or 80))
    with tcp_proxy(*target) as proxy:
        if sink == "opensearch":
            through = dataclasses.replace(
                settings, opensearch_host="127.0.0.1", opensearch_port=proxy.port
            )
        else:
            through = dataclasses.replace(settings, aws_endpoint_url_s3=proxy.url)
        consumer = start_consumer("--batch-size", "1000", "--flush-interval", "1", sinks=through)
        publisher = PacedPublisher(settings, bodies_of(records), per_second=300)
        publisher.start()
        wait_for_first_batches(settings, 999)

        proxy.down()
        outage_began = time.monotonic()
        # A batch that was already through that sink may still be acknowledged.
        time.sleep(3)
        held = stored_offset(settings, NAME)
        while time.monotonic() - outage_began < OUTAGE:
            assert stored_offset(settings, NAME) == held, "the offset moved during the outage"
            time.sleep(1)
        assert held is not None
        proxy.up()

        publisher.join_checked(120)
        wait_for_sinks(settings, len(records), timeout=180)
        assert consumer.stop() == 0, consumer.log()
        final = stored_offset(settings, NAME)
        assert final is not None and final > held
        assert f"offset {final} stored\n" in consumer.log(), consumer.log()

    what = "OpenSearch" if sink == "opensearch" else "S3"
    log = consumer.log()
    assert f"waiting for {what}" in log and f"still waiting for {what}" in log, log
    assert re.search(rf"{what}[^\n]* answers again after", log), log
    assert_exactly_once(settings, {record["log_id"] for record in records})


def test_rabbitmq_connection_lost_reconnects_and_resumes(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    records = make_records(6000)
    create_stream(settings)
    consumer = start_consumer("--batch-size", "500", "--flush-interval", "1")
    publisher = PacedPublisher(settings, bodies_of(records), per_second=500)
    publisher.start()
    wait_for_first_batches(settings, 499)

    # Cut the consumer's own connections to the broker (and nobody else's), as a network
    # failure would.
    ports = cut_own_connections(settings.rabbitmq_stream_port, consumer.pid)
    wait_until(
        "the connections to be cut",
        lambda: own_connections(settings.rabbitmq_stream_port, consumer.pid),
        lambda now: not set(now) & set(ports),
        10,
    )

    publisher.join_checked(120)
    wait_for_sinks(settings, len(records), timeout=120)
    assert consumer.stop() == 0, consumer.log()
    assert f"offset {stored_offset(settings, NAME)} stored\n" in consumer.log()
    assert "RabbitMQ connection lost; reconnecting" in consumer.log(), consumer.log()
    assert_exactly_once(settings, {record["log_id"] for record in records})


def test_sigterm_flushes_what_was_read_stores_the_offset_and_exits_0(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    records = publish_records(settings, 3000)
    # A batch this large and this patient is never archived by itself during the test:
    # only the shutdown flush can put it in S3.
    consumer = start_consumer("--batch-size", "100000", "--flush-interval", "3600")
    wait_until("all records indexed", lambda: opensearch_count(settings), lambda n: n == 3000, 120)
    assert archived_log_ids(settings) == []
    assert stored_offset(settings, NAME) is None

    assert consumer.stop() == 0, consumer.log()
    assert stored_offset(settings, NAME) == 2999
    assert_exactly_once(settings, {record["log_id"] for record in records})


def test_sigint_works_like_sigterm(settings: Settings, start_consumer: StartConsumer) -> None:
    records = publish_records(settings, 200)
    consumer = start_consumer("--batch-size", "100000", "--flush-interval", "3600")
    wait_until("all records indexed", lambda: opensearch_count(settings), lambda n: n == 200, 60)
    consumer.signal(signal.SIGINT)
    assert consumer.wait(60) == 0, consumer.log()
    assert stored_offset(settings, NAME) == 199
    assert_exactly_once(settings, {record["log_id"] for record in records})


def test_bad_flags_and_settings_exit_2_naming_them(
    stack_env: dict[str, str], settings: Settings, start_consumer: StartConsumer
) -> None:
    cases = [
        (["--batch-size", "lots"], {}, "--batch-size (AUDIT_LOG_BATCH_SIZE): must be an integer"),
        (
            ["--flush-interval", "0"],
            {},
            "--flush-interval (AUDIT_LOG_FLUSH_INTERVAL): must be from",
        ),
        (["--from", "yesterday"], {}, "--from: must be first, last, next"),
        (["--consumer-name", "a b"], {}, "--consumer-name: must be"),
        (["--index-delay", "-1"], {}, "--index-delay: must be from 0"),
        ([], {"AUDIT_LOG_BATCH_SIZE": "0"}, "AUDIT_LOG_BATCH_SIZE: must be from 1 to 100000"),
        ([], {"AUDIT_LOG_AWS_S3_BUCKET": ""}, "AUDIT_LOG_AWS_S3_BUCKET: is required"),
        ([], {"AWS_SECRET_ACCESS_KEY": ""}, "AWS_SECRET_ACCESS_KEY: must be set together"),
    ]
    for number, (args, env, message) in enumerate(cases):
        process = start_consumer(*args, env=env, workdir=f"bad-{number}")
        assert process.wait(30) == 2, (args, env, process.log())
        assert message in process.log(), (message, process.log())
        assert "Traceback" not in process.log()


def test_an_index_prefix_opensearch_refuses_is_a_settings_error(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    client = opensearch_client(settings)
    # Another template whose pattern overlaps ours at the same priority: OpenSearch refuses
    # ours with a 400, which no amount of waiting fixes.
    overlapping = f"{settings.opensearch_index_prefix}-eu"
    client.indices.put_index_template(
        name=overlapping, body={"index_patterns": [f"{overlapping}-*"], "priority": 100}
    )
    try:
        process = start_consumer()
        assert process.wait(60) == 2, process.log()
        assert "Setting OPENSEARCH_INDEX_PREFIX: OpenSearch refuses the index template" in (
            process.log()
        )
    finally:
        client.indices.delete_index_template(name=overlapping, ignore=[404])
        client.close()

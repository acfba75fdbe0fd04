"""The consumer's --metrics-port on the real stack: what /metrics, /healthz and /readyz say
while it reads, archives and catches up, scraped over HTTP; and the consumer without the
metrics extra."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time

import pytest

from audit_logging.partitions import partition_names
from audit_logging.publisher import StreamPublisher
from audit_logging.settings import Settings
from tests._ports import free_port
from tests._stack import delete_super_stream
from tests.consumer._helpers import (
    NAME,
    bodies_of,
    make_records,
    publish,
    stored_offset,
    wait_until,
)
from tests.consumer._scrape import get, readyz, sample, scrape
from tests.consumer._sinks import opensearch_count
from tests.consumer.conftest import StartConsumer

pytestmark = [pytest.mark.services, pytest.mark.slow]
PREFIX = "audit_logging_consumer_"


def test_metrics_readyz_and_lag_while_reading_and_after_catching_up(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    stream = settings.rabbitmq_stream_name
    # 150 records before the consumer starts: offsets 0-149, no tracking entry among them.
    publish(settings, bodies_of(make_records(150)))
    port = free_port()
    consumer = start_consumer(
        "--batch-size", "100", "--flush-interval", "3600", "--metrics-port", str(port)
    )
    _, body = wait_until("/healthz", lambda: get(port, "/healthz"), lambda a: a[0] == 200, 30)
    assert body == b'{"status": "alive"}\n'
    wait_until("/readyz 200", lambda: readyz(port), lambda answer: answer[0] == 200, 30)
    assert readyz(port)[1] == {
        "status": "ready",
        "dependencies": {"broker": True, "opensearch": True, "s3": True},
        "partitions": {stream: "active"},
        "problems": [],
    }

    # One batch of 100 is archived; 50 records wait in a batch that closes only when full.
    def first_batch(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> bool:
        return (
            samples.get((PREFIX + "lag_messages", (("stream", stream),))) == 50
            and samples.get((PREFIX + "records_indexed_total", (("stream", stream),))) == 150
        )

    samples = wait_until("the first batch and the lag", lambda: scrape(port), first_batch, 30)
    by_stream = (("stream", stream),)
    assert samples[(PREFIX + "records_consumed_total", by_stream)] == 150
    assert samples[(PREFIX + "records_archived_total", by_stream)] == 100
    assert samples[(PREFIX + "stored_offset", by_stream)] == 99 == stored_offset(settings, NAME)
    assert samples[(PREFIX + "active", by_stream)] == 1
    assert samples[(PREFIX + "lag_seconds", by_stream)] > 0
    assert samples[(PREFIX + "duplicates_dropped_total", by_stream)] == 0
    assert samples[(PREFIX + "batch_duration_seconds_count", ())] == 1
    assert samples[(PREFIX + "bulk_duration_seconds_count", ())] >= 1
    assert samples[(PREFIX + "s3_put_duration_seconds_count", ())] >= 1
    assert samples[(PREFIX + "last_archive_timestamp_seconds", by_stream)] > time.time() - 60
    assert samples[(PREFIX + "flush_interval_seconds", ())] == 3600
    for dependency in ("broker", "opensearch", "s3"):
        assert samples[(PREFIX + "dependency_up", (("dependency", dependency),))] == 1
    for sink in ("broker", "opensearch", "s3"):
        assert samples[(PREFIX + "retries_total", (("sink", sink),))] == 0
    # The waiting records' age grows with every refresh: they are not processed yet.
    first_age = samples[(PREFIX + "lag_seconds", by_stream)]
    wait_until(
        "the lag in seconds to grow",
        lambda: sample(port, PREFIX + "lag_seconds", stream=stream),
        lambda seconds: seconds is not None and seconds > first_age,
        30,
    )

    # 50 more fill the batch: everything is processed, the lag is 0 (the offset-tracking
    # entries written meanwhile do not count).
    publish(settings, bodies_of(make_records(50)))
    wait_until(
        "no lag",
        lambda: (
            sample(port, PREFIX + "lag_messages", stream=stream),
            sample(port, PREFIX + "lag_seconds", stream=stream),
        ),
        lambda lag: lag == (0, 0),
        30,
    )
    assert sample(port, PREFIX + "records_archived_total", stream=stream) == 200
    assert sample(port, PREFIX + "stored_offset", stream=stream) == stored_offset(settings, NAME)
    assert opensearch_count(settings) == 200
    assert consumer.stop() == 0, consumer.log()
    assert "serving /metrics, /healthz and /readyz on http://127.0.0.1:" in consumer.log()
    assert get(port, "/healthz") == (0, b"")


def test_without_the_metrics_extra_it_runs_and_refuses_only_metrics_port(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    publish(settings, bodies_of(make_records(20)))
    without = ["tests.consumer._without_prometheus"]
    consumer = start_consumer("--batch-size", "20", wrapper=without)
    wait_until("20 records indexed", lambda: opensearch_count(settings), lambda n: n == 20, 60)
    wait_until("offset 19", lambda: stored_offset(settings, NAME), lambda n: n == 19, 60)
    assert consumer.stop() == 0, consumer.log()
    assert "serving /metrics" not in consumer.log()

    refused = start_consumer("--metrics-port", "9464", wrapper=without, workdir="refused")
    assert refused.wait(30) == 2, refused.log()
    assert "needs the 'prometheus-client' package" in refused.log()
    assert "audit-logging-pipeline[metrics]" in refused.log()
    assert "Traceback" not in refused.log()


def has_lag_series_only_if_active(role: str, lag: float | None) -> bool:
    return (lag is None) == (role == "standby")


def test_on_a_super_stream_each_partition_is_active_in_one_member_and_standby_in_the_other(
    settings: Settings, start_consumer: StartConsumer
) -> None:
    partitioned = dataclasses.replace(settings, stream_partitions=2)
    names = partition_names(settings.rabbitmq_stream_name, 2)
    try:
        publisher = StreamPublisher(partitioned, lambda body: body)
        for body in bodies_of(make_records(40)):
            publisher.submit(body)
        assert publisher.close(timeout=60) == 0
        args = ("--batch-size", "100", "--flush-interval", "1", "--consumer-name", "parts")
        env = {"AUDIT_LOG_STREAM_PARTITIONS": "2"}
        ports = [free_port(), free_port()]
        first = start_consumer(*args, "--metrics-port", str(ports[0]), env=env)
        wait_until(
            "the first member active on both partitions",
            lambda: readyz(ports[0]),
            lambda answer: (
                answer[0] == 200 and answer[1]["partitions"] == dict.fromkeys(names, "active")
            ),
            30,
        )
        second = start_consumer(*args, "--metrics-port", str(ports[1]), env=env, workdir="b")

        def roles() -> list[dict[str, str]]:
            return [readyz(port)[1].get("partitions", {}) for port in ports]

        def spread(seen: list[dict[str, str]]) -> bool:
            return all(sorted(r.values()) == ["active", "standby"] for r in seen) and all(
                sorted(r[name] for r in seen) == ["active", "standby"] for name in names
            )

        seen = wait_until("one partition active in each member", roles, spread, 60)
        for port, partitions in zip(ports, seen, strict=True):
            assert readyz(port)[0] == 200
            for name, role in partitions.items():
                assert sample(port, PREFIX + "active", stream=name) == (role == "active")
                # Only the active member reports a partition's lag.
                wait_until(
                    f"lag series of {name} on {port} ({role})",
                    functools.partial(sample, port, PREFIX + "lag_messages", stream=name),
                    functools.partial(has_lag_series_only_if_active, role),
                    10,
                )
        assert first.stop() == 0, first.log()
        assert second.stop() == 0, second.log()
    finally:
        asyncio.run(delete_super_stream(partitioned))
